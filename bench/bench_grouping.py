"""Benchmark the grouping engine on one core.

Builds a realistic mix of ~10,000 events as JSON bytes (Python / JavaScript / Java / Go
exceptions with varying ids, hosts, line numbers and deploy paths, plus log messages), then
measures events/s of ``orjson.loads`` alone (the baseline) and of ``orjson.loads`` + what the
worker runs per event to group it (``decode_batch`` in ``pipeline/decoder.py``):
``enrich(DecodedEvent(event, ts), config, received_at)`` from ``pipeline/stages/fingerprint.py``,
i.e. ``group_event`` (normalize + fingerprint + title + culprit + categorize) and the
``_meta`` dict. (Decoding there also validates the schema, parses the timestamp and the
event id; that is not grouping and is not measured here.)

    python bench/bench_grouping.py [--events 10000] [--repeat 5] [--grouping-version v2]

Prints human-readable numbers, then one JSON line per figure (last lines of the output):
``events_per_s`` is the steady state of a long-running worker (caches warmed by other events
of the same mix), ``events_per_s_cold_cache`` starts from empty caches (every memo of the
grouping code: ``engine.clear_caches()``), ``events_per_s_no_message_cache`` empties the
message cache (raw text -> normalized) before every event, as if every message were new
(frames, hashes and keyword ranks of normalized text stay cached; timed event by event, so
it also pays two clock reads per event). Best of
``--repeat``. Every event has its own ids / numbers, so normalized messages are mostly cache
misses even in the steady state; the hit rate of the message cache is printed per figure.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.grouping import (  # noqa: E402
    GroupingConfig,
    group_event,
    parameterize,  # noqa: E402
)
from pipeline.grouping.config import DEFAULT_VERSION  # noqa: E402
from pipeline.grouping.engine import clear_caches, clear_message_cache  # noqa: E402
from pipeline.stages.decode import DecodedEvent  # noqa: E402
from pipeline.stages.fingerprint import enrich  # noqa: E402

# What changes per deploy or per instance (bundle hashes, CGLIB class suffixes) comes from a
# few values, as in production; what changes per event (ids, hosts, lines) is random.
BUNDLES = ["3f2a9c1b", "9d8e7f60", "c0ffee42"]
CGLIB = ["8a7b6c5d", "1b2c3d4e", "77aa88bb", "e5f6a7b8"]
VENVS = ["/home/alice/.venvs/app", "/opt/venv", "/srv/app/.venv", "/usr/local"]
ROOTS = ["/srv/app", "/app", "/home/deploy/releases/20240501T1000", "/code"]


def _py_frames(rng: random.Random, bug: int) -> list[dict]:
    venv = rng.choice(VENVS)
    root = rng.choice(ROOTS)
    lib = f"{venv}/lib/python3.11/site-packages"
    frames = [
        {
            "filename": "django/core/handlers/base.py",
            "abs_path": f"{lib}/django/core/handlers/base.py",
            "module": "django.core.handlers.base",
            "function": "_get_response",
            "lineno": 197,
            "in_app": False,
        },
        {
            "filename": "shop/api/views.py",
            "abs_path": f"{root}/shop/api/views.py",
            "module": "shop.api.views",
            "function": f"view_{bug % 7}",
            "lineno": rng.randint(10, 400),
            "in_app": True,
            "context_line": "        return service.handle(request)",
        },
        {
            "filename": "shop/services/orders.py",
            "abs_path": f"{root}/shop/services/orders.py",
            "module": "shop.services.orders",
            "function": f"step_{bug}",
            "lineno": rng.randint(10, 400),
            "in_app": True,
            "context_line": f"    result = self.repo.load(order_id)  # {bug}",
        },
    ]
    frames += [
        {"filename": "sqlalchemy/engine/base.py", "abs_path": f"{lib}/sqlalchemy/engine/base.py",
         "module": "sqlalchemy.engine.base", "function": f"_execute_{i}", "lineno": 1800 + i, "in_app": False}
        for i in range(rng.randint(3, 12))
    ]  # fmt: skip
    return frames


def python_exception(rng: random.Random, bug: int) -> dict:
    kind = ["OperationalError", "KeyError", "ValueError", "ConnectionError", "TimeoutError"][
        bug % 5
    ]
    value = rng.choice([
        f"could not connect to server: Connection refused (host 10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}, port 5432)",
        f"'order_{rng.randint(1, 10**6)}'",
        f"invalid literal for int() with base 10: '{rng.getrandbits(32):x}'",
        f"Order {rng.randint(1, 10**7)} for user {rng.randint(1, 10**5)} not found",
    ])  # fmt: skip
    return {"platform": "python", "service": "shop", "level": "error", "logger": "shop.api",
            "event_id": f"{rng.getrandbits(128):032x}", "timestamp": time.time(),
            "tags": {"region": rng.choice(["eu-west-1", "us-east-1"]), "release": "1.4.2"},
            "exception": {"values": [{"type": kind, "value": value, "module": "builtins",
                                      "stacktrace": {"frames": _py_frames(rng, bug)}}]}}  # fmt: skip


def js_exception(rng: random.Random, bug: int) -> dict:
    bundle = rng.choice(BUNDLES)
    frames = [
        {"filename": f"https://cdn.shop.example.com/static/js/vendor.{bundle}.js", "function": "Object.<anonymous>",
         "lineno": 1, "colno": rng.randint(1, 90000), "in_app": False},
        {"filename": f"https://cdn.shop.example.com/static/js/main.{bundle}.js", "function": f"render{bug % 9}",
         "lineno": 1, "colno": rng.randint(1, 90000), "in_app": True},
        {"filename": f"https://cdn.shop.example.com/static/js/main.{bundle}.js", "function": f"compute{bug}",
         "lineno": 1, "colno": rng.randint(1, 90000), "in_app": True},
    ]  # fmt: skip
    value = rng.choice([
        "Cannot read properties of undefined (reading 'total')",
        f"Request failed with status code {rng.choice([404, 500, 502])}",
        f"Loading chunk {rng.randint(1, 400)} failed.",
    ])  # fmt: skip
    return {"platform": "javascript", "service": "web", "level": "error",
            "event_id": f"{rng.getrandbits(128):032x}", "user": {"id": str(rng.randint(1, 10**6))},
            "exception": {"values": [{"type": "TypeError", "value": value, "stacktrace": {"frames": frames}}]}}  # fmt: skip


def java_exception(rng: random.Random, bug: int) -> dict:
    frames = [
        {"module": f"org.springframework.web.servlet.FrameworkServlet{i}", "function": "service", "in_app": False}
        for i in range(rng.randint(5, 20))
    ] + [
        {"module": f"com.acme.orders.OrderService$$EnhancerBySpringCGLIB$${rng.choice(CGLIB)}",
         "function": "placeOrder", "in_app": True},
        {"module": "com.acme.orders.OrderService", "function": f"lambda$place{bug}${rng.randint(0, 3)}",
         "filename": "OrderService.java", "lineno": rng.randint(10, 500), "in_app": True},
    ]  # fmt: skip
    return {"platform": "java", "service": "orders", "level": "error",
            "exception": {"values": [{"type": "java.lang.IllegalStateException",
                                      "value": f"Order {rng.randint(1, 10**8)} in state PAID cannot be cancelled",
                                      "stacktrace": {"frames": frames}}]}}  # fmt: skip


def go_exception(rng: random.Random, bug: int) -> dict:
    frames = [
        {"module": "main", "function": "main", "filename": "main.go", "lineno": 12, "in_app": True},
        {"module": "github.com/acme/ingest/internal/store", "function": f"(*Store).Op{bug}.func{rng.randint(1, 3)}",
         "filename": "store.go", "lineno": rng.randint(10, 300), "in_app": True},
        {"module": "github.com/lib/pq", "function": "(*conn).query",
         "abs_path": "/root/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go", "lineno": 301, "in_app": False},
    ]  # fmt: skip
    value = f"dial tcp 10.2.{rng.randint(0, 255)}.{rng.randint(1, 254)}:5432: connect: connection refused"
    return {"platform": "go", "service": "ingest", "level": "error",
            "exception": {"values": [{"type": "*net.OpError", "value": value, "stacktrace": {"frames": frames}}]}}  # fmt: skip


def log_message(rng: random.Random, bug: int) -> dict:
    message = rng.choice([
        f"Payment {rng.randint(1, 10**6)} failed for {rng.choice(['bob', 'eve'])}@shop.example.com after {rng.randint(1, 5000)}ms",
        f"upstream https://api.partner.com/v2/orders/{rng.randint(1, 10**6)} returned {rng.choice([500, 503])}",
        f"cache miss for key user:{rng.randint(1, 10**6)}:profile",
        f"job {rng.getrandbits(128):032x} retried {rng.randint(1, 9)} times, next at 2024-05-01T10:{rng.randint(10, 59)}:00Z",
        f"worker {bug} heartbeat late",
    ])  # fmt: skip
    return {"platform": "python", "service": "worker", "level": "warning", "logger": "worker",
            "message": message}  # fmt: skip


MAKERS = [(python_exception, 35), (js_exception, 20), (java_exception, 15), (go_exception, 10), (log_message, 20)]  # fmt: skip


def build_events(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    makers = [maker for maker, weight in MAKERS for _ in range(weight)]
    return [orjson.dumps(rng.choice(makers)(rng, rng.randint(0, 60))) for _ in range(count)]


def _clear_caches() -> None:
    clear_caches()  # every memo: messages, fixed points, frame views, frame parts, keywords


def _rate(payloads: list[bytes], work) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for payload in payloads:
        work(payload)
    return len(payloads) / (time.perf_counter() - start)


def _message_hits() -> tuple[int, int]:
    return parameterize.message_cache_info()  # every grouping version's message cache


def _rate_without_message_cache(payloads: list[bytes], work, counts: list[int]) -> float:  # type: ignore[no-untyped-def]
    clock = time.perf_counter
    elapsed = 0.0
    for payload in payloads:
        clear_message_cache()  # also zeroes its hit / miss counts
        start = clock()
        work(payload)
        elapsed += clock() - start
        hits, misses = _message_hits()
        counts[0] += hits
        counts[1] += misses
    return len(payloads) / elapsed


def measure(
    payloads: list[bytes], warmup: list[bytes], repeat: int, version: str = DEFAULT_VERSION
) -> tuple[dict[str, float], dict[str, float]]:
    """Best of ``repeat`` runs each: loads alone; loads + grouping cold, steady, uncached.

    cold:     all caches cleared before the run (messages, frame views, frame parts, hashes);
    steady:   caches warmed by a *different* set of events from the same mix (as a
              long-running worker's would be); per-event values (ids, hosts) still miss;
    uncached: the message caches cleared before every event (every message is new).
    Also returns the hit rate of the message cache in each kind of run.
    """
    config = GroupingConfig(version=version)
    loads = orjson.loads
    received_at = time.time()  # the worker reads the clock once per batch

    def grouped(payload: bytes) -> None:  # what the worker runs after decoding
        enrich(DecodedEvent(loads(payload), 0.0), config, received_at=received_at)

    best = {"loads": 0.0, "cold": 0.0, "steady": 0.0, "uncached": 0.0}
    hit_rate = {}

    def run(name: str) -> None:
        if name == "uncached":
            counts = [0, 0]
            rate = _rate_without_message_cache(payloads, grouped, counts)
            hits, misses = counts
        else:
            before = _message_hits()
            rate = _rate(payloads, grouped)
            hits, misses = (a - b for a, b in zip(_message_hits(), before, strict=True))
        best[name] = max(best[name], rate)
        hit_rate[name] = hits / max(1, hits + misses)

    for _ in range(repeat):
        best["loads"] = max(best["loads"], _rate(payloads, loads))
        _clear_caches()
        run("cold")
        _clear_caches()
        _rate(warmup, grouped)
        run("steady")
        _clear_caches()
        _rate(warmup, grouped)
        run("uncached")
    return best, hit_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--grouping-version", default=DEFAULT_VERSION)
    args = parser.parse_args()
    payloads = build_events(args.events)
    warmup = build_events(args.events, seed=11)
    mean_size = sum(map(len, payloads)) / len(payloads)
    config = GroupingConfig(version=args.grouping_version)
    issues = len({group_event(orjson.loads(p), config).fingerprint for p in payloads})
    rates, hit_rate = measure(payloads, warmup, args.repeat, args.grouping_version)
    loads_rate = rates["loads"]
    print(f"events: {len(payloads)} (mean {mean_size:.0f} bytes of JSON), issues: {issues}")
    print(f"orjson.loads alone:                              {loads_rate:10,.0f} events/s")
    labels = (
        ("steady", "steady state (warm caches)"),
        ("cold", "cold caches"),
        ("uncached", "no message cache"),
    )
    for name, label in labels:
        rate = rates[name]
        print(
            f"loads + enrich, {label:<30}{rate:10,.0f} events/s  ({1e6 / rate:.1f} us/event,"
            f" message cache hits {hit_rate[name]:.0%})"
        )
    print("single core, best of", args.repeat, "runs, grouping", args.grouping_version)
    figures = (
        ("steady", "events_per_s"),
        ("cold", "events_per_s_cold_cache"),
        ("uncached", "events_per_s_no_message_cache"),
    )
    for name, figure in figures:
        line = {
            "bench": "grouping",
            "figure": figure,
            "value": round(rates[name]),
            "unit": "events/s",
            "baseline": round(loads_rate),
            "ratio": round(rates[name] / loads_rate, 4),
        }
        print(json.dumps(line))


if __name__ == "__main__":
    main()
