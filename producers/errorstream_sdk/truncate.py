"""Fit an event into ``max_event_bytes`` of JSON, trimming the least useful parts first.

Order: long strings are capped up front; then, only while still too large, frame locals and
source context go, then breadcrumbs (oldest first), then the middle of long stack traces,
then every string is cut to 1 KiB, then request bodies and headers. An event still too
large after all of that is dropped (``oversize``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

_OPTS = orjson.OPT_NON_STR_KEYS
MAX_CONTEXT_LINE = 4096


def _default(obj: Any) -> str:
    return str(obj)


def dumps(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, default=_default, option=_OPTS)


def _cut(s: str, limit: int) -> str:
    return s if len(s) <= limit else s[: limit - 3] + "..."


def cap_strings(event: dict[str, Any], limit: int) -> bool:
    """Cap free-text fields at ``limit`` characters; True if anything was cut."""
    cut = False

    def cap(d: dict[str, Any], key: str, limit: int = limit) -> None:
        nonlocal cut
        v = d.get(key)
        if isinstance(v, str) and len(v) > limit:
            d[key] = _cut(v, limit)
            cut = True

    cap(event, "message")
    for exc in (event.get("exception") or {}).get("values", ()):
        cap(exc, "value")
        for f in exc["stacktrace"]["frames"]:
            cap(f, "context_line", min(limit, MAX_CONTEXT_LINE))
    for b in (event.get("breadcrumbs") or {}).get("values", ()):
        cap(b, "message")
    return cut


def _frames_of(event: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [e["stacktrace"]["frames"] for e in (event.get("exception") or {}).get("values", ())]


def _drop_frame_detail(event: dict[str, Any]) -> None:
    for frames in _frames_of(event):
        for f in frames:
            f.pop("vars", None)
            f.pop("pre_context", None)
            f.pop("post_context", None)


def _halve_breadcrumbs(event: dict[str, Any]) -> None:
    crumbs = event.get("breadcrumbs")
    if crumbs:
        values = crumbs["values"]
        crumbs["values"] = values[len(values) // 2 + 1 :] if len(values) > 1 else []


def _drop_breadcrumbs(event: dict[str, Any]) -> None:
    event.pop("breadcrumbs", None)


def _trim_frames(event: dict[str, Any]) -> None:
    for exc in (event.get("exception") or {}).get("values", ()):
        frames = exc["stacktrace"]["frames"]
        if len(frames) > 50:
            exc["stacktrace"]["frames"] = frames[:25] + frames[-25:]


def _cap_everything(event: dict[str, Any]) -> None:
    def walk(obj: Any) -> Any:
        if isinstance(obj, str):
            return _cut(obj, 1024)
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    event.update(walk(event))


def _drop_request_bodies(event: dict[str, Any]) -> None:
    req = event.get("request")
    if req:
        req.pop("data", None)
        req.pop("headers", None)


STEPS: tuple[Callable[[dict[str, Any]], None], ...] = (
    _drop_frame_detail,
    _halve_breadcrumbs,
    _halve_breadcrumbs,
    _drop_breadcrumbs,
    _trim_frames,
    _cap_everything,
    _drop_request_bodies,
)


def encode_within(
    event: dict[str, Any], max_bytes: int, max_string: int
) -> tuple[bytes | None, bool]:
    """``(json_bytes or None if it cannot fit, truncated?)``"""
    data = dumps(event)
    n = len(data)
    if n <= max_bytes and n <= max_string and n <= MAX_CONTEXT_LINE:
        # common case, encoded once: no string in it is longer than the whole document
        return data, False
    truncated = cap_strings(event, max_string)
    if truncated:
        data = dumps(event)
    for step in STEPS:
        if len(data) <= max_bytes:
            return data, truncated
        step(event)
        truncated = True
        data = dumps(event)
    return (data, truncated) if len(data) <= max_bytes else (None, truncated)
