"""Events for the dashboard tests: a few issues over two services, two of them alike (the
similar-issues merge candidates), and one whose message and tag are XSS attempts. The
expected answers (per-issue counts, users, tags) are computed here, in Python."""

from __future__ import annotations

import collections
import time
import uuid
from typing import Any

import orjson

from pipeline.grouping import GroupingConfig, group_event
from pipeline.stages.decode import DecodedEvent, decode_event

XSS_MESSAGE = "<img src=x onerror=alert('message')> payment failed"
XSS_TAG = "<script>alert('tag')</script>"
NOW = time.time()


def _frame(module: str, function: str, lineno: int, in_app: bool = True) -> dict[str, Any]:
    return {
        "module": module,
        "function": function,
        "filename": module.replace(".", "/") + ".py",
        "lineno": lineno,
        "in_app": in_app,
    }


def _exception(type_: str, value: str, frames: list[dict[str, Any]]) -> dict[str, Any]:
    return {"values": [{"type": type_, "value": value, "stacktrace": {"frames": frames}}]}


LIB = _frame("urllib3.connectionpool", "urlopen", 700, in_app=False)
CART = [
    _frame("app.views", "checkout", 12),
    _frame("app.cart", "total", 40),
    _frame("app.cart", "price_of", 57),
]
CART_ALIKE = [
    _frame("app.views", "checkout", 12),
    _frame("app.cart", "total", 40),
    _frame("app.cart", "price_of_item", 61),
]
KINDS: dict[str, dict[str, Any]] = {
    "db": {
        "service": "checkout",
        "environment": "production",
        "exception": _exception(
            "ConnectionError", "Connection to db timed out", [LIB, _frame("app.db", "connect", 41)]
        ),
        "n": 12,
    },
    "cart": {
        "service": "checkout",
        "environment": "production",
        "exception": _exception("KeyError", "'sku-1'", CART),
        "n": 8,
    },
    "cart_alike": {
        "service": "checkout",
        "environment": "production",
        "exception": _exception("KeyError", "'sku-2'", CART_ALIKE),
        "n": 4,
    },
    "tax": {
        "service": "billing",
        "environment": "staging",
        "exception": _exception(
            "ZeroDivisionError", "division by zero", [_frame("billing.tax", "rate", 99)]
        ),
        "n": 5,
    },
    "xss": {
        "service": "web",
        "environment": "production",
        "message": XSS_MESSAGE,
        "tags": {"note": XSS_TAG},
        "n": 3,
    },
}


def make_events() -> list[dict[str, Any]]:
    events = []
    i = 0
    for name, kind in KINDS.items():
        for j in range(kind["n"]):
            event = {
                "event_id": uuid.uuid4().hex,
                "timestamp": NOW - 1200 + i * 20,  # the last 20 minutes
                "service": kind["service"],
                "environment": kind["environment"],
                "release": f"{kind['service']}@2.{j % 2}.0",
                "level": "error",
                "platform": "python",
                "user": {"id": f"u-{name}-{j % 3}"},
                "tags": kind.get("tags") or {"region": ("eu-west-1", "us-east-1")[j % 2]},
            }
            for key in ("exception", "message"):
                if key in kind:
                    event[key] = kind[key]
            events.append(event)
            i += 1
    return events


def fingerprints(events: list[dict[str, Any]]) -> dict[str, str]:
    """kind name → the fingerprint the pipeline gives its events."""
    config = GroupingConfig()
    out: dict[str, str] = {}
    for name, kind in KINDS.items():
        sample = next(e for e in events if e["service"] == kind["service"] and _is(e, kind))
        decoded = decode_event(orjson.dumps(sample))
        assert isinstance(decoded, DecodedEvent)
        out[name] = group_event(decoded.event, config).fingerprint
    assert len(set(out.values())) == len(KINDS), out
    return out


def _is(event: dict[str, Any], kind: dict[str, Any]) -> bool:
    return event.get("exception") == kind.get("exception") and event.get("message") == kind.get(
        "message"
    )


def expected_users(events: list[dict[str, Any]], kind: dict[str, Any]) -> collections.Counter:
    return collections.Counter(e["user"]["id"] for e in events if _is(e, kind))
