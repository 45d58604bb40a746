"""What a request body becomes: the records to publish, and what it held. Pure (no I/O).

    envelope  parse -> count items by type -> `event` items: size, JSON ->
              pipeline.sentry.to_event_v1 (every value cut to the schema's bounds) ->
              scrub + depth / field-size limits on the parts passed through as sent
              (free_form), in one walk -> records
    store     one Sentry event (legacy clients may send it base64 + zlib) -> the same
    v1        schema v1 JSON object or JSON lines -> limits -> schema v1 check -> scrub

The decoder runs the same ``from_envelope`` / ``from_sentry_payload`` on Sentry payloads
read from the ingest topic (``pipeline.stages.formats``): one conversion for both paths.

A converted event is not checked against schema v1 again: the conversion fits every value
to the schema and scrubbing cuts what it lengthened back to those bounds (property-tested in
tests/unit/gateway/test_sentry_conversion.py and test_scrub.py), and the worker validates
every record it decodes all the same. Events sent as schema v1 are checked, being as sent.

Any refusal is a ``Refused`` with the HTTP status, a reason code (the label of the rejects
metric) and a short message for the client: no internal detail.
"""

from __future__ import annotations

import base64
import binascii
import collections
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from errorstream_sdk.scrub import Scrubber

from pipeline.gateway.envelope import Envelope, EnvelopeError, parse_envelope
from pipeline.gateway.limits import LimitExceeded, check_json
from pipeline.gateway.scrub import scrub_event
from pipeline.sentry import to_event_v1
from pipeline.stages.decode import Invalid, validate_event


class Refused(Exception):
    def __init__(
        self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail
        self.headers = headers or {}


@dataclass(frozen=True)
class IngestLimits:
    max_event_bytes: int = 1024 * 1024
    max_json_depth: int = 64
    max_field_chars: int = 256 * 1024


@dataclass
class Batch:
    """The outcome of one accepted body: records for Kafka and items counted by type."""

    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    event_ids: list[str] = field(default_factory=list)
    # the converted v1 events themselves, instead of records, for the decoder (keep_events);
    # the gateway keeps only the serialized records, so no event dict outlives the walk
    events: list[dict[str, Any]] | None = None
    items: collections.Counter = field(default_factory=collections.Counter)
    reply_id: str | None = None


def _load(raw: bytes, limits: IngestLimits, what: str) -> Any:
    if len(raw) > limits.max_event_bytes:
        raise Refused(413, "event_too_large", f"{what} is over {limits.max_event_bytes} bytes")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refused(400, "json", f"{what} is not valid JSON (UTF-8)") from None
    if not isinstance(value, dict):
        raise Refused(400, "json", f"{what} is not a JSON object")
    return value


def free_form(event: dict[str, Any]) -> Iterator[Any]:
    """The parts of a v1 event passed through as the client sent them (frame vars, request
    body and headers, contexts, extra, breadcrumb data, user geo / data, message params,
    sdk packages). Everything else was cut to the schema's bounds by the conversion."""
    for exc in (event.get("exception") or {}).get("values", ()):
        for frame in (exc.get("stacktrace") or {}).get("frames", ()):
            if "vars" in frame:
                yield frame["vars"]
    request = event.get("request")
    if request:
        for key in ("data", "headers", "env", "cookies", "query_string"):
            if key in request:
                yield request[key]
    for key in ("contexts", "extra"):
        if key in event:
            yield event[key]
    for crumb in (event.get("breadcrumbs") or {}).get("values", ()):
        if "data" in crumb:
            yield crumb["data"]
    user = event.get("user")
    if user:
        for key in ("geo", "data"):
            if key in user:
                yield user[key]
    message = event.get("message")
    if isinstance(message, dict) and "params" in message:
        yield message["params"]
    sdk = event.get("sdk")
    if sdk and "packages" in sdk:
        yield sdk["packages"]


def _limit(value: Any, limits: IngestLimits, what: str) -> None:
    try:
        check_json(value, limits.max_json_depth, limits.max_field_chars)
    except LimitExceeded as exc:
        raise Refused(exc.status, exc.reason, f"{what}: {exc.detail}") from None


def _limit_free_form(event: dict[str, Any], limits: IngestLimits, what: str) -> None:
    for part in free_form(event):
        if part.__class__ is dict or part.__class__ is list:
            _limit(part, limits, what)
        elif part.__class__ is str and len(part) > limits.max_field_chars:
            _limit(part, limits, what)


def _finish_converted(
    event: dict[str, Any], limits: IngestLimits, scrubber: Scrubber | None, what: str
) -> dict[str, Any]:
    """Limits on the free-form parts and scrubbing (one walk when scrubbing is on)."""
    if scrubber is None:
        _limit_free_form(event, limits, what)
        return event
    try:
        return scrub_event(event, scrubber, limits.max_json_depth, limits.max_field_chars)
    except LimitExceeded as exc:
        raise Refused(exc.status, exc.reason, f"{what}: {exc.detail}") from None


def _checked(event: dict[str, Any], what: str) -> dict[str, Any]:
    result = validate_event(event)
    if isinstance(result, Invalid):
        raise Refused(400, "schema", f"{what}: {result.error}")
    return result.event


def _add(batch: Batch, event: dict[str, Any]) -> None:
    event_id = event["event_id"]
    if batch.events is not None:
        batch.events.append(event)
    else:
        batch.records.append((event_id.encode(), orjson.dumps(event)))
    batch.event_ids.append(event_id)


# the service of a Sentry payload: one name for the whole body (the gateway: the project's),
# or a function of the payload (the decoder: Kafka header, tags ... pipeline.stages.formats)
Service = str | Callable[[Mapping[str, Any]], str]


def _sentry_event(
    batch: Batch,
    payload: Mapping[str, Any],
    *,
    service: Service,
    received_at: float,
    limits: IngestLimits,
    scrubber: Scrubber | None,
    what: str,
    event_id: str | None = None,
    client_ip: str | None = None,
) -> None:
    """One Sentry event payload -> the v1 event added to ``batch`` (or ``Refused``)."""
    event = to_event_v1(
        payload,
        service=service if isinstance(service, str) else service(payload),
        received_at=received_at,
        event_id=event_id,
        client_ip=client_ip,
    )
    _add(batch, _finish_converted(event, limits, scrubber, what))


def parse(body: bytes) -> Envelope:
    try:
        return parse_envelope(body)
    except EnvelopeError as exc:
        raise Refused(400, "envelope", f"invalid envelope: {exc}") from None


def event_count(envelope: Envelope) -> int:
    return sum(1 for item in envelope.items if item.type == "event")


def from_envelope(
    envelope: Envelope,
    *,
    service: Service,
    received_at: float,
    limits: IngestLimits,
    scrubber: Scrubber | None,
    client_ip: str | None = None,
    keep_events: bool = False,
) -> Batch:
    batch = Batch(events=[] if keep_events else None)
    header_id = envelope.headers.get("event_id")
    header_id = header_id if isinstance(header_id, str) else None
    for number, item in enumerate(envelope.items, 1):
        batch.items[item.metric_type] += 1
        if item.type != "event":
            continue  # accepted and counted, not published (docs/gateway.md)
        what = f"item {number} (event)"
        _sentry_event(
            batch,
            _load(item.payload, limits, what),
            service=service,
            received_at=received_at,
            limits=limits,
            scrubber=scrubber,
            what=what,
            event_id=header_id,
            client_ip=client_ip,
        )
    if batch.event_ids:
        batch.reply_id = batch.event_ids[0]
    elif header_id:
        batch.reply_id = header_id.replace("-", "").lower()
    return batch


def _legacy_store_body(body: bytes) -> bytes:
    """Old clients post ``base64(zlib(json))`` to /store/; JSON is passed through."""
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        return body
    try:
        decoded = base64.b64decode(body.strip(), validate=True)
        return zlib.decompress(decoded) if decoded[:1] == b"x" else decoded
    except (binascii.Error, ValueError, zlib.error):
        return body  # not that either: the JSON error below says so


def from_store(
    body: bytes,
    *,
    service: str,
    received_at: float,
    limits: IngestLimits,
    scrubber: Scrubber | None,
    client_ip: str | None = None,
) -> Batch:
    payload = _load(_legacy_store_body(body), limits, "event")
    return from_sentry_payload(
        payload,
        service=service,
        received_at=received_at,
        limits=limits,
        scrubber=scrubber,
        client_ip=client_ip,
    )


def from_sentry_payload(
    payload: Mapping[str, Any],
    *,
    service: Service,
    received_at: float,
    limits: IngestLimits,
    scrubber: Scrubber | None,
    event_id: str | None = None,
    client_ip: str | None = None,
    what: str = "event",
    keep_events: bool = False,
) -> Batch:
    """One parsed Sentry event payload; ``event_id`` is the fallback when it has none;
    ``what`` begins the message of a refusal; ``keep_events``: the batch holds the v1
    events (the decoder) instead of their serialized records (the gateway)."""
    batch = Batch(events=[] if keep_events else None)
    batch.items["event"] += 1
    _sentry_event(
        batch,
        payload,
        service=service,
        received_at=received_at,
        limits=limits,
        scrubber=scrubber,
        what=what,
        event_id=event_id,
        client_ip=client_ip,
    )
    batch.reply_id = batch.event_ids[0]
    return batch


def from_v1(body: bytes, *, limits: IngestLimits, scrubber: Scrubber | None) -> Batch:
    """Schema v1 events: one JSON object (which may span lines), or JSON lines. All or
    nothing: one bad line refuses the request and names the line."""
    batch = Batch()
    stripped = body.strip()
    if not stripped:
        raise Refused(400, "json", "empty body")
    lines = [stripped]
    if b"\n" in stripped:
        try:
            whole = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            whole = None
        if not isinstance(whole, dict):
            lines = stripped.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        what = "event" if len(lines) == 1 else f"line {number}"
        raw = _load(line, limits, what)
        _limit(raw, limits, what)  # v1 events are taken as they are: all of it is checked
        event = _checked(raw, what)
        if scrubber is not None:  # then checked again: a filtered value may be longer
            event = _checked(scrub_event(event, scrubber), what)
        batch.items["event"] += 1
        _add(batch, event)
    if not batch.records:
        raise Refused(400, "json", "no events in the body")
    return batch
