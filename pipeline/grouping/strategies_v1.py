"""Grouping algorithm v1: what the default fingerprint of an event is made of.

First that applies:
  in_app_stacktrace  every exception in the chain that has in-app frames contributes its type
                     and those frames (location | function | context line), innermost
                     ``max_frames`` after collapsing direct recursion;
  stacktrace         no in-app frame anywhere: the same over all frames;
  exception_message  no frames: each exception's type and normalized value;
  message            no exception: the normalized log message;
  fallback           nothing usable: service and logger.
Line and column numbers never contribute. The exception value is not used while frames are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.grouping.event import EventView, ExceptionView, FrameView
from pipeline.grouping.frames import normalize_module
from pipeline.grouping.parameterize import normalize_text
from pipeline.grouping.versions import DefaultGrouping, GroupingAlgorithm, new_default

if TYPE_CHECKING:
    from pipeline.grouping.config import GroupingConfig


def frame_components(
    frames: list[FrameView] | tuple[FrameView, ...], max_frames: int, use_context: bool
) -> list[str]:
    keys: list[str] = []
    previous = None
    for frame in frames:
        # "frame:location|function|context" (or without the context)
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
            components.append("type:" + normalize_module(exc.type))
            components += frame_components(frames, config.max_frames, config.use_context_lines)
    return components


def compute(view: EventView, config: GroupingConfig) -> DefaultGrouping:
    exceptions = view.exceptions
    if exceptions:
        components = _stack_components(exceptions, config, in_app_only=True)
        if components:
            return new_default("in_app_stacktrace", tuple(components))
        components = _stack_components(exceptions, config, in_app_only=False)
        if components:
            return new_default("stacktrace", tuple(components))
        parts = []
        for exc in exceptions:
            parts.append("type:" + normalize_module(exc.type))
            parts.append("value:" + normalize_text(exc.value, config.custom_patterns))
        return new_default("exception_message", tuple(parts))
    if view.message.strip():
        message = normalize_text(view.message, config.custom_patterns)
        return new_default("message", ("message:" + message,))
    return new_default("fallback", ("service:" + view.service, "logger:" + view.logger))


ALGORITHM = GroupingAlgorithm(
    version="v1",
    compute=compute,
    description="in-app frames > all frames > exception type+message > log message",
)
