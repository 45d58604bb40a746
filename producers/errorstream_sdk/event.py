"""Build the schema-v1 event dict from a capture record (runs on the SDK thread).

Pure apart from linecache: ``Capture`` in, ``dict`` out; ``message_key`` gives the Kafka key.
"""

from __future__ import annotations

import datetime
import math
import platform
import socket
from collections.abc import Callable
from typing import Any, NamedTuple

from errorstream_sdk.capture import RawException
from errorstream_sdk.frames import (
    FrameCache,
    InAppRules,
    build_exception_values,
    innermost_in_app,
)
from errorstream_sdk.scope import Breadcrumb

SDK_NAME = "errorstream.python"
SDK_VERSION = "0.1.0"
SCHEMA_VERSION = 1


class Capture(NamedTuple):
    """Everything the calling thread hands over; primitive data and immutable references."""

    event_id: str
    timestamp: float
    level: str
    chain: list[RawException] | None
    mechanism: dict[str, Any] | None
    message: str | None
    logger: str | None
    fingerprint: list[str] | None
    scope_tags: dict[str, str]
    tags: dict[str, Any] | None
    user: dict[str, str] | None
    request: dict[str, Any] | None
    breadcrumbs: tuple[Breadcrumb, ...]
    contexts: dict[str, Any] | None


_SECOND: tuple[int, str] = (-1, "")  # (whole second, "YYYY-MM-DDTHH:MM:SS") of the last call


def rfc3339(ts: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC); the date/time part is formatted once per second."""
    global _SECOND
    sec = math.floor(ts)
    us = round((ts - sec) * 1e6)  # what datetime.fromtimestamp does (round half even)
    if us >= 1_000_000:
        sec += 1
        us -= 1_000_000
    cached = _SECOND
    if cached[0] != sec:
        text = datetime.datetime.fromtimestamp(sec, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cached = _SECOND = (sec, text)
    return f"{cached[1]}.{us:06d}Z"


def static_contexts() -> dict[str, Any]:
    impl = platform.python_implementation()
    return {
        "runtime": {"name": impl, "version": platform.python_version()},
        "os": {"name": platform.system(), "version": platform.release()},
        "host": {"hostname": socket.gethostname()},
    }


MAX_TAGS = 64
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 200
MAX_FINGERPRINT = 16
MAX_FINGERPRINT_PART = 512
MAX_LOGGER = 256


def breadcrumb_dict(b: Breadcrumb) -> dict[str, Any]:
    crumb: dict[str, Any] = {"timestamp": rfc3339(b.timestamp)}
    if b.category is not None:
        crumb["category"] = str(b.category)
    if b.message is not None:
        crumb["message"] = str(b.message)
    crumb["level"] = b.level
    crumb["type"] = b.type
    crumb["data"] = b.data or {}
    return crumb


def bounded_tags(scope_tags: dict[str, str], tags: dict[str, Any] | None) -> dict[str, str]:
    """At most 64 tags, keys cut to 64 and values to 200 characters (the schema's bounds)."""
    if not tags and not scope_tags:
        return {}
    merged = dict(scope_tags)
    if tags:
        merged.update({str(k): str(v) for k, v in tags.items()})
    out: dict[str, str] = {}
    for k, v in merged.items():
        if len(out) >= MAX_TAGS:
            break
        out[k[:MAX_TAG_KEY]] = v[:MAX_TAG_VALUE]
    return out


_SDK = {"name": SDK_NAME, "version": SDK_VERSION}  # shared by every event: never mutated


class EventBuilder:
    def __init__(
        self,
        service: str,
        environment: str | None,
        release: str | None,
        rules: InAppRules,
        context_lines: int,
        contexts: dict[str, Any] | None = None,
        scrub_line: Callable[[str], str] | None = None,
    ) -> None:
        """``scrub_line``: when given, source context lines go through it once, when a frame
        is first seen (frames are cached per code object and instruction)."""
        self.service = service
        self.environment = environment
        self.release = release
        self.rules = rules
        self.context_lines = context_lines
        self.contexts = contexts if contexts is not None else static_contexts()
        self.scrub_line = scrub_line
        self.frame_cache: FrameCache = {}

    def build(self, c: Capture) -> dict[str, Any]:
        (
            event_id,
            timestamp,
            level,
            chain,
            mechanism,
            message,
            logger,
            fingerprint,
            scope_tags,
            tags,
            user,
            request,
            breadcrumbs,
            contexts,
        ) = c
        event: dict[str, Any] = {
            "event_id": event_id,
            "timestamp": rfc3339(timestamp),
            "level": level,
            "platform": "python",
            "service": self.service,
            "sdk": _SDK,
        }
        if logger is not None:
            event["logger"] = str(logger)[:MAX_LOGGER]
        if message is not None:
            event["message"] = message
        if chain:
            event["exception"] = {
                "values": build_exception_values(
                    chain,
                    mechanism or {"type": "generic", "handled": True},
                    self.rules,
                    self.context_lines,
                    self.frame_cache,
                    self.scrub_line,
                )
            }
        if fingerprint:
            event["fingerprint"] = [
                str(x)[:MAX_FINGERPRINT_PART] for x in fingerprint[:MAX_FINGERPRINT]
            ]
        event["tags"] = bounded_tags(scope_tags, tags) if scope_tags or tags else {}
        if user:
            event["user"] = user
        if request:
            event["request"] = request
        if contexts:
            event["contexts"] = {**self.contexts, **contexts}
        else:
            event["contexts"] = self.contexts  # shared; scrubbing and trimming replace, not mutate
        if breadcrumbs:
            event["breadcrumbs"] = {"values": [breadcrumb_dict(b) for b in breadcrumbs]}
        if self.release is not None:
            event["release"] = self.release
        if self.environment is not None:
            event["environment"] = self.environment
        return event


def message_key(event: dict[str, Any]) -> bytes:
    """service + exception type + innermost in-app location (module.function), so related
    events keep their order in one partition; messages key on their logger."""
    service = event["service"]
    exc = event.get("exception")
    if exc and exc["values"]:
        values = exc["values"]
        frame = innermost_in_app(values)
        where = f"{frame.get('module')}.{frame.get('function')}" if frame else ""
        return f"{service}:{values[-1]['type']}:{where}".encode()
    return f"{service}:message:{event.get('logger') or ''}".encode()
