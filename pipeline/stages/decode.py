"""Stage 1: decode and validate raw bytes from the ingest topic.

Pure: bytes in, either a ``DecodedEvent`` or an ``Invalid`` (reason code + a message that
names the field) out. Invalid input goes to the dead-letter topic; nothing is dropped silently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import fastjsonschema
import orjson

from schemas import load_schema

MAX_EVENT_BYTES = 1024 * 1024

# Reason codes, also the label values of the invalid-events metric.
REASON_JSON = "json"
REASON_TOO_LARGE = "too_large"
REASON_SCHEMA = "schema"
REASON_TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    event: dict[str, Any]
    ts: float  # event time, seconds since the epoch


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str
    error: str


@cache
def _validator():
    return fastjsonschema.compile(load_schema("event", 1))


def _schema_error(exc: fastjsonschema.JsonSchemaValueException, event: Any) -> str:
    field = exc.name[5:] if exc.name.startswith("data.") else ""
    if exc.rule == "anyOf" and not field:
        return "event needs an `exception` or a `message` field"
    if exc.rule == "required":
        obj: Any = event
        for part in exc.path[1:]:
            obj = obj[int(part)] if isinstance(obj, list) else obj.get(part, {})
        have = obj if isinstance(obj, dict) else {}
        missing = ", ".join(str(x) for x in (exc.rule_definition or []) if x not in have)
        where = f" in `{field}`" if field else ""
        return f"missing required field{where}: {missing}"
    message = exc.message[5:] if exc.message.startswith("data.") else exc.message
    if not field:
        message = message.replace("data ", "event ", 1)
        return message
    return f"field `{field}`: {message[len(field) :].strip()}"


def parse_timestamp(value: Any) -> float:
    """RFC 3339 string or epoch seconds → epoch seconds (UTC). Raises ValueError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ts = dt.timestamp()
    else:
        raise ValueError(f"unsupported timestamp {value!r}")
    if not 0 <= ts < 32503680000:  # year 3000
        raise ValueError(f"timestamp out of range: {value!r}")
    return ts


def decode_event(raw: bytes, max_bytes: int = MAX_EVENT_BYTES) -> DecodedEvent | Invalid:
    if len(raw) > max_bytes:
        return Invalid(REASON_TOO_LARGE, f"event of {len(raw)} bytes exceeds {max_bytes}")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Invalid(REASON_JSON, f"not valid JSON: {exc}")
    return validate_event(event)


def validate_event(event: Any) -> DecodedEvent | Invalid:
    """Check a parsed event against schema v1 and its timestamp; normalize ``event_id``
    (32 lower-case hex digits) and ``level`` (default ``error``) in place."""
    try:
        _validator()(event)
    except fastjsonschema.JsonSchemaValueException as exc:
        return Invalid(REASON_SCHEMA, _schema_error(exc, event))
    try:
        ts = parse_timestamp(event["timestamp"])
    except ValueError as exc:
        return Invalid(REASON_TIMESTAMP, f"field `timestamp`: {exc}")
    event["event_id"] = uuid.UUID(event["event_id"]).hex
    event.setdefault("level", "error")
    return DecodedEvent(event, ts)


def dead_letter(
    raw: bytes, invalid: Invalid, source: dict[str, Any], format: str | None = None
) -> bytes:
    """The dead-letter record: reason, error, the message's format (``v1``, ``sentry``,
    ``sentry_envelope`` or ``unknown``, see ``pipeline.stages.formats``), where it came
    from, and the original bytes."""
    record = {"reason": invalid.reason, "error": invalid.error}
    if format is not None:
        record["format"] = format
    record["source"] = source
    record["payload"] = raw.decode("utf-8", errors="replace")
    return orjson.dumps(record)
