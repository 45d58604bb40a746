"""Sentry's envelope format, parsed. Pure: bytes in, an ``Envelope`` or ``EnvelopeError``.

    {"event_id": "...", "dsn": "https://key@host/1", "sent_at": "..."}\\n      envelope header
    {"type": "event", "length": 41, "content_type": "application/json"}\\n  item header
    {"event_id": "...", "message": "..."}\\n                               item payload
    {"type": "attachment", "length": 3}\\n                                 next item ...
    abc

An item header with ``length`` is followed by exactly that many payload bytes, then a newline
or the end; without ``length`` the payload runs to the next newline (or the end). Empty lines
between items are skipped; the body may end with or without a newline.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

# the item types Sentry's SDKs send; anything else is counted as "other"
KNOWN_TYPES = frozenset(
    {
        "event",
        "transaction",
        "session",
        "sessions",
        "attachment",
        "client_report",
        "check_in",
        "profile",
        "profile_chunk",
        "replay_event",
        "replay_recording",
        "replay_video",
        "user_report",
        "feedback",
        "span",
        "log",
        "otel_log",
        "statsd",
        "metric_buckets",
        "security",
        "raw_security",
        "form_data",
        "nel",
    }
)


class EnvelopeError(ValueError):
    """The body is not a well-formed envelope; the message says where."""


@dataclass(frozen=True, slots=True)
class Item:
    type: str
    headers: dict
    payload: bytes

    @property
    def metric_type(self) -> str:
        return self.type if self.type in KNOWN_TYPES else "other"


@dataclass(frozen=True, slots=True)
class Envelope:
    headers: dict
    items: tuple[Item, ...]


def _header(line: bytes, what: str) -> dict:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise EnvelopeError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} is not a JSON object")
    return value


def parse_envelope(body: bytes, max_items: int = 1000) -> Envelope:
    if not body.strip():
        raise EnvelopeError("empty body")
    end = body.find(b"\n")
    if end == -1:
        end = len(body)
    headers = _header(body[:end], "envelope header")
    pos, size = end + 1, len(body)
    items: list[Item] = []
    while pos < size:
        if body[pos] in (0x0A, 0x0D):  # empty line between items (\n or \r\n)
            pos += 1
            continue
        end = body.find(b"\n", pos)
        if end == -1:
            end = size
        number = len(items) + 1
        item_headers = _header(body[pos:end], f"item {number} header")
        item_type = item_headers.get("type")
        if not isinstance(item_type, str) or not item_type:
            raise EnvelopeError(f"item {number} header has no type")
        pos = end + 1
        length = item_headers.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise EnvelopeError(f"item {number}: length must be a non-negative integer")
            if pos + length > size:
                raise EnvelopeError(f"item {number}: length {length} runs past the end of the body")
            payload = body[pos : pos + length]
            pos += length
            if pos < size:
                if body[pos] == 0x0A:
                    pos += 1
                elif body[pos : pos + 2] == b"\r\n":
                    pos += 2
                else:
                    raise EnvelopeError(f"item {number}: payload longer than its length")
        else:
            end = body.find(b"\n", pos)
            if end == -1:
                end = size
            payload = body[pos:end].rstrip(b"\r")
            pos = end + 1
        items.append(Item(item_type, item_headers, payload))
        if len(items) > max_items:
            raise EnvelopeError(f"more than {max_items} items")
    return Envelope(headers, tuple(items))
