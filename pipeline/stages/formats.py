"""Stage 1a: which format an ingest-topic message is in, and its schema v1 event(s).

Pure: (bytes, Kafka headers) in, a ``Message`` out: its format, the decoded events, or the
``Invalid`` that sends it to the dead-letter topic (docs/ingest-formats.md).

    Kafka header `content-type` ─┬─ application/vnd.errorstream.event.v1+json -> v1
                                 ├─ application/vnd.sentry.event+json         -> Sentry event
                                 ├─ application/x-sentry-envelope             -> Sentry envelope
                                 ├─ absent or application/json                -> by shape:
                                 └─ anything else: dead letter `content_type`
    by shape (one JSON parse, then at most a few dict look-ups):
        a JSON object with `service`                                      -> v1
        else a JSON object with a Sentry key (exception, logentry, stacktrace, threads,
             platform, sdk, template, culprit, sentry.interfaces.*)       -> Sentry event
        not one JSON value, but a JSON object line followed by an item header line
             ({"type": ...})                                              -> Sentry envelope
        anything else                                                     -> v1 (its schema
             error names what is missing)

    v1               pipeline.stages.decode.validate_event, as before
    Sentry event     pipeline.gateway.ingest.from_sentry_payload  } the gateway's conversion
    Sentry envelope  pipeline.gateway.ingest.from_envelope        } (pipeline.sentry), limits,
                                                                    scrubbing, v1 check

The ``service`` of a Sentry event: the first of ``service_from`` that has a value (a Kafka
header, a tag, ``server_name``, ``sdk.name``), else ``default_service``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from errorstream_sdk.scrub import Scrubber

from pipeline.gateway.envelope import EnvelopeError, parse_envelope
from pipeline.gateway.ingest import IngestLimits, Refused, from_envelope, from_sentry_payload
from pipeline.gateway.scrub import GatewayScrubber
from pipeline.stages.decode import (
    MAX_EVENT_BYTES,
    REASON_JSON,
    REASON_TOO_LARGE,
    DecodedEvent,
    Invalid,
    validate_event,
)

if TYPE_CHECKING:
    from pipeline.settings import Settings

# format names: the `format` label of the ingest metrics and field of a dead letter
V1 = "v1"
SENTRY = "sentry"
ENVELOPE = "sentry_envelope"
UNKNOWN = "unknown"  # not JSON and no content-type header saying what it should be
FORMATS = (V1, SENTRY, ENVELOPE, UNKNOWN)

REASON_CONTENT_TYPE = "content_type"
REASON_ENVELOPE = "envelope"

CONTENT_TYPES = {
    "application/vnd.errorstream.event.v1+json": V1,
    "application/vnd.sentry.event+json": SENTRY,
    "application/x-sentry-envelope": ENVELOPE,
    "application/json": None,  # by shape
}
CONTENT_TYPE_HEADER = "content-type"

# top-level keys of a Sentry event payload that a v1 event never has without `service`
SENTRY_KEYS = frozenset(
    {
        "exception",
        "logentry",
        "stacktrace",
        "threads",
        "platform",
        "sdk",
        "template",
        "culprit",
        "sentry.interfaces.Exception",
        "sentry.interfaces.Stacktrace",
        "sentry.interfaces.Message",
        "sentry.interfaces.Template",
        "sentry.interfaces.Threads",
        "sentry.interfaces.Sdk",
    }
)
_LABEL = {V1: "v1 event", SENTRY: "sentry event", ENVELOPE: "sentry envelope", UNKNOWN: "message"}
_OFFSET_IDS = uuid.UUID("6f1b0c56-3a47-4e0e-9d53-2f0d6a0e4c11")  # namespace of fallback ids

SERVICE_SOURCES = ("header:<name>", "tag:<key>", "server_name", "sdk.name")


def parse_service_sources(text: str) -> tuple[tuple[str, str], ...]:
    """``header:service, tag:service, server_name, sdk.name`` -> ((kind, name), ...).
    Raises ValueError naming the bad entry."""
    out: list[tuple[str, str]] = []
    for entry in filter(None, (part.strip() for part in text.replace(";", ",").split(","))):
        kind, sep, name = entry.partition(":")
        kind, name = kind.strip(), name.strip()
        if kind in ("header", "tag") and sep and name:
            out.append((kind, name.lower() if kind == "header" else name))
        elif entry in ("server_name", "sdk.name"):
            out.append((entry, ""))
        else:
            raise ValueError(f"expected one of {', '.join(SERVICE_SOURCES)}, got {entry!r}")
    return tuple(out)


@dataclass(frozen=True)
class IngestFormats:
    """What the decoder needs to read Sentry payloads (built by ``ingest_formats``)."""

    service_from: tuple[tuple[str, str], ...] = (("header", "service"), ("tag", "service"))
    default_service: str = "sentry"
    scrubber: Scrubber | None = None
    limits: IngestLimits = field(default_factory=lambda: IngestLimits(MAX_EVENT_BYTES))


def ingest_formats(settings: Settings) -> IngestFormats:
    return IngestFormats(
        service_from=parse_service_sources(settings.ingest_sentry_service_from),
        default_service=settings.ingest_sentry_default_service,
        scrubber=GatewayScrubber() if settings.ingest_sentry_scrub else None,
        limits=IngestLimits(
            max_event_bytes=MAX_EVENT_BYTES,
            max_json_depth=settings.gateway_max_json_depth,
            max_field_chars=settings.gateway_max_field_chars,
        ),
    )


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~4x, once per message
class Message:
    format: str
    events: list[DecodedEvent]
    invalid: Invalid | None = None
    skipped: Mapping[str, int] | None = None  # envelope items that are not events, by type


Headers = Sequence[tuple[str, bytes]]


def header(headers: Headers, name: str) -> str | None:
    """The last value of header ``name`` (lower case), decoded; None when absent."""
    found = None
    for key, value in headers:
        if key.lower() == name and value is not None:
            found = value
    return None if found is None else found.decode("utf-8", errors="replace").strip()


def sentry_service(payload: Mapping[str, Any], headers: Headers, formats: IngestFormats) -> str:
    """The first source in ``formats.service_from`` with a non-empty value, else the default."""
    for kind, name in formats.service_from:
        value: Any = None
        if kind == "header":
            value = header(headers, name) if headers else None
        elif kind == "tag":
            tags = payload.get("tags")
            if isinstance(tags, dict):
                value = tags.get(name)
            elif isinstance(tags, list):  # [[key, value], ...]
                for pair in tags:
                    if isinstance(pair, list | tuple) and len(pair) == 2 and pair[0] == name:
                        value = pair[1]
        elif kind == "server_name":
            value = payload.get("server_name")
        elif kind == "sdk.name":
            sdk = payload.get("sdk")
            value = sdk.get("name") if isinstance(sdk, dict) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return formats.default_service


def fallback_event_id(topic: str, partition: int, offset: int) -> str:
    """The event id of a Sentry payload that has none: the same on every replay of the
    message, so the issues stage's dedup drops a replayed copy."""
    return uuid.uuid5(_OFFSET_IDS, f"{topic}/{partition}/{offset}").hex


def _invalid(fmt: str, reason: str, error: str) -> Message:
    return Message(fmt, [], Invalid(reason, f"{_LABEL[fmt]}: {error}"))


def _looks_like_envelope(raw: bytes) -> bool:
    """A JSON object line (the envelope header), then an item header with a ``type``."""
    first, sep, rest = raw.lstrip().partition(b"\n")
    if not sep or first[:1] != b"{":
        return False
    second = rest.lstrip(b"\r\n").split(b"\n", 1)[0]
    try:
        return isinstance(orjson.loads(first), dict) and "type" in orjson.loads(second)
    except (orjson.JSONDecodeError, TypeError):
        return False


def _sentry(
    fmt: str,
    raw: bytes,
    payload: Any,
    headers: Headers,
    formats: IngestFormats,
    received_at: float,
    source: tuple[str, int, int] | None,
) -> Message:
    service = lambda p: sentry_service(p, headers, formats)  # noqa: E731
    try:
        if fmt == ENVELOPE:
            try:
                envelope = parse_envelope(raw)
            except EnvelopeError as exc:
                return _invalid(fmt, REASON_ENVELOPE, str(exc))
            batch = from_envelope(
                envelope,
                service=service,
                received_at=received_at,
                limits=formats.limits,
                scrubber=formats.scrubber,
                keep_events=True,
            )
        else:
            if not isinstance(payload, dict):
                return _invalid(fmt, REASON_JSON, "not a JSON object")
            batch = from_sentry_payload(
                payload,
                service=service,
                received_at=received_at,
                limits=formats.limits,
                scrubber=formats.scrubber,
                event_id=fallback_event_id(*source) if source else None,
                what=_LABEL[SENTRY],
                keep_events=True,
            )
    except Refused as exc:
        reason = REASON_TOO_LARGE if exc.reason == "event_too_large" else exc.reason
        if fmt == SENTRY:  # the detail starts with "sentry event: " already
            return Message(fmt, [], Invalid(reason, exc.detail))
        return _invalid(fmt, reason, exc.detail)
    # The gateway does not check its conversion against schema v1 again (property-tested to
    # fit); the worker checks every event it decodes, converted ones included.
    events = []
    for event in batch.events:
        result = validate_event(event)
        if result.__class__ is not DecodedEvent:
            return _invalid(fmt, result.reason, f"converted event: {result.error}")  # type: ignore[union-attr]
        events.append(result)
    skipped = {t: n for t, n in batch.items.items() if t != "event"} or None
    return Message(fmt, events, None, skipped)


def decode_message(
    raw: bytes,
    headers: Headers = (),
    formats: IngestFormats | None = None,
    *,
    received_at: float,
    source: tuple[str, int, int] | None = None,
) -> Message:
    """One ingest-topic message -> its format and v1 events, or why it is invalid.
    ``source`` (topic, partition, offset) makes the event id of a Sentry payload without
    one (``fallback_event_id``); ``received_at`` stands in for a missing timestamp."""
    fmt: str | None = None
    if headers:
        content_type = header(headers, CONTENT_TYPE_HEADER)
        if content_type is not None:
            media = content_type.partition(";")[0].strip().lower()
            if media not in CONTENT_TYPES:
                known = ", ".join(CONTENT_TYPES)
                return _invalid(
                    UNKNOWN,
                    REASON_CONTENT_TYPE,
                    f"content-type {content_type[:100]!r} is not one of {known}",
                )
            fmt = CONTENT_TYPES[media]
    if len(raw) > MAX_EVENT_BYTES:
        too_large = f"event of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}"
        if fmt is None:
            return Message(UNKNOWN, [], Invalid(REASON_TOO_LARGE, too_large))
        return _invalid(fmt, REASON_TOO_LARGE, too_large)
    formats = formats or IngestFormats()
    if fmt == ENVELOPE:
        return _sentry(ENVELOPE, raw, None, headers, formats, received_at, source)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if fmt is None and _looks_like_envelope(raw):
            return _sentry(ENVELOPE, raw, None, headers, formats, received_at, source)
        if fmt is None:  # as before: the error a v1 producer has always had
            return Message(UNKNOWN, [], Invalid(REASON_JSON, f"not valid JSON: {exc}"))
        return _invalid(fmt, REASON_JSON, f"not valid JSON: {exc}")
    if fmt is None:
        if value.__class__ is not dict or "service" in value or SENTRY_KEYS.isdisjoint(value):
            fmt = V1
        else:
            fmt = SENTRY
    if fmt == V1:
        result = validate_event(value)
        if result.__class__ is DecodedEvent:
            return Message(V1, [result])  # type: ignore[list-item]
        return Message(V1, [], result)  # type: ignore[arg-type]
    return _sentry(SENTRY, raw, value, headers, formats, received_at, source)
