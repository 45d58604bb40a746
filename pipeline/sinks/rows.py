"""Rows for ClickHouse, built by pure functions from enriched event records."""

from __future__ import annotations

from typing import Any

import orjson

EVENT_COLUMNS = (
    "event_id",
    "timestamp",
    "received_at",
    "service",
    "environment",
    "release",
    "level",
    "platform",
    "logger",
    "fingerprint",
    "grouping_variant",
    "title",
    "culprit",
    "category",
    "exception_type",
    "message",
    "user_id",
    "tags",
    "payload",
)


class RowError(ValueError):
    """A record that cannot become a row; it goes to the dead-letter topic."""


def _message_text(event: dict[str, Any]) -> str:
    msg = event.get("message")
    if isinstance(msg, dict):
        return str(msg.get("formatted") or msg.get("message") or "")
    if msg:
        return str(msg)
    values = (event.get("exception") or {}).get("values") or []
    return str(values[-1].get("value") or "") if values else ""


def to_event_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """One ``events`` row (in ``EVENT_COLUMNS`` order) from an enriched record."""
    try:
        meta = record["_meta"]
        values = (record.get("exception") or {}).get("values") or []
        user = record.get("user") or {}
        body = {k: v for k, v in record.items() if k != "_meta"}
        return (
            record["event_id"],
            round(float(meta["ts"]), 3),
            round(float(meta["received_at"]), 3),
            record["service"],
            record.get("environment") or "",
            record.get("release") or "",
            record.get("level") or "error",
            record.get("platform") or "",
            record.get("logger") or "",
            meta["fingerprint"],
            meta.get("grouping_variant", ""),
            meta.get("title", ""),
            meta.get("culprit", ""),
            meta.get("category", "unknown"),
            str(values[-1].get("type") or "") if values else "",
            _message_text(record),
            str(user.get("id") or user.get("email") or user.get("ip_address") or ""),
            {str(k): str(v) for k, v in (record.get("tags") or {}).items()},
            orjson.dumps(body).decode("utf-8"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RowError(f"cannot build an events row: {type(exc).__name__}: {exc}") from exc
