"""Grouping algorithm v2: Sentry's default grouping per platform, and no catch-all fallback.

First that applies:
  in_app_stacktrace  as v1, over the frames as v2 reads them (``platforms.py``: Sentry's
                     per-platform frame rules and default in-app / grouping rules);
  stacktrace         as v1: no in-app frame anywhere, the same over all frames;
  exception_message  no frame groups: each exception's type and value, normalized with v2's
                     patterns (Sentry's newest categories), when some exception has a type or
                     a value with a word left after normalization (a Cocoa NSError: its
                     domain and code instead of the value);
  message            no exception to group on: the normalized log message, when a word is
                     left after normalization;
  raw_message        nothing that says what went wrong once normalized (a message that is
                     all numbers, ids and dates): the exception values / message as they are;
  event_id           nothing at all: the event's own id, so the event is an issue of its own;
  payload            not even an id: a digest of the whole event (only identical events group).

v1 merged every event of the last three kinds into one issue per service and logger.

The hashes share v1's namespace (``hash_namespace="v1"``): an event whose components v2
computes exactly as v1 did keeps its v1 fingerprint, so only the events whose grouping v2
changes need the transition (docs/grouping.md, "Grouping v2").
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING

from pipeline.grouping import platforms
from pipeline.grouping.event import EventView, ExceptionView, FrameView
from pipeline.grouping.frames import normalize_module
from pipeline.grouping.parameterize import MAX_OUTPUT_CHARS, normalize_text_v2, trim_lines
from pipeline.grouping.versions import DefaultGrouping, GroupingAlgorithm, new_default

if TYPE_CHECKING:
    from pipeline.grouping.config import GroupingConfig

# a letter that is not part of a placeholder (``<int>``, ``<order_id>``)
_PLACEHOLDER = re.compile(r"<[a-z][a-z0-9_]*>")
_LEADING_WORD = re.compile(r"[^<]*?[^\W\d_]")
_LETTER = re.compile(r"[^\W\d_]")


def has_words(normalized: str) -> bool:
    """Whether a normalized text still says something: a letter outside the placeholders."""
    if _LEADING_WORD.match(normalized):
        return True
    return bool(_LETTER.search(_PLACEHOLDER.sub("", normalized)))


def frame_components(
    frames: tuple[FrameView, ...], max_frames: int, use_context: bool
) -> list[str]:
    keys: list[str] = []
    previous = None
    for frame in frames:
        key = frame.component if use_context else frame.component_without_context
        if key != previous:  # direct recursion counts once
            keys.append(key)
            previous = key
    return keys[-max_frames:] if len(keys) > max_frames else keys


def _stack_components(
    exceptions: tuple[ExceptionView, ...], config: GroupingConfig, in_app_only: bool
) -> list[str]:
    components: list[str] = []
    for exc in exceptions:
        frames = exc.app_frames if in_app_only else exc.frames
        if frames:
            components.append("type:" + _type(exc))
            components += frame_components(frames, config.max_frames, config.use_context_lines)
    return components


def _type(exc: ExceptionView) -> str:
    """The exception's type as it groups: none for a synthetic exception (made up by the SDK
    to carry a stack trace, e.g. a JavaScript non-Error throw), as Sentry does."""
    return "" if exc.synthetic else normalize_module(exc.type)


def _payload_digest(payload: dict[str, object]) -> str:
    data = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.blake2b(data.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def compute(view: EventView, config: GroupingConfig) -> DefaultGrouping:
    exceptions = view.exceptions
    custom = config.custom_patterns
    if exceptions:
        components = _stack_components(exceptions, config, in_app_only=True)
        if components:
            return new_default("in_app_stacktrace", tuple(components))
        components = _stack_components(exceptions, config, in_app_only=False)
        if components:
            return new_default("stacktrace", tuple(components))
        parts = []
        telling = False
        for exc in exceptions:
            parts.append("type:" + _type(exc))
            if exc.ns_error:  # Cocoa: the NSError's domain and code say it, not its message
                parts.append("ns_error:" + exc.ns_error)
                telling = True
                continue
            value = normalize_text_v2(exc.value, custom)
            parts.append("value:" + value)
            telling = telling or bool(_type(exc)) or has_words(value)
        if telling:
            return new_default("exception_message", tuple(parts))
    message = view.message
    if message.strip():
        normalized = normalize_text_v2(message, custom)
        if has_words(normalized):
            return new_default("message", ("message:" + normalized,))
    # Nothing another event could share in meaning: group by what is specific to this one.
    texts = [exc.value for exc in exceptions if exc.value.strip()]
    if message.strip():
        texts.append(message)
    if texts:
        return new_default(
            "raw_message", tuple("raw:" + trim_lines(text)[:MAX_OUTPUT_CHARS] for text in texts)
        )
    if view.event_id.strip():
        return new_default("event_id", ("event_id:" + view.event_id.replace("-", "").lower(),))
    return new_default("payload", ("payload:" + _payload_digest(view.payload),))


ALGORITHM = GroupingAlgorithm(
    version="v2",
    compute=compute,
    description=(
        "v1 with Sentry's per-platform frame rules and newest message patterns; "
        "an event with nothing to group on is an issue of its own"
    ),
    frames=platforms.frames_of,
    normalize=normalize_text_v2,
    hash_namespace="v1",
)
