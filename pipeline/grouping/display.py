"""Title and culprit: how an issue is shown in lists and alerts.

title   = "ConnectionError: Connection to <ip> timed out"   (type: normalized first line)
culprit = "app.db in connect"                               (innermost in-app frame)
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.grouping.event import EventView, FrameView
from pipeline.grouping.parameterize import CustomPatterns, first_line, normalize_text

MAX_TITLE = 200
NO_TITLE = "<unlabeled event>"


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1].rstrip() + "…"


def title_of(
    view: EventView,
    custom_patterns: CustomPatterns = (),
    normalize: Callable[[str, CustomPatterns], str] = normalize_text,
) -> str:
    exceptions = view.exceptions
    if exceptions:
        exc = exceptions[-1]  # the outermost
        value = normalize(first_line(exc.value), custom_patterns)
        if exc.type and value:
            return _truncate(f"{exc.type}: {value}")
        if exc.type or value:
            return _truncate(exc.type or value)
    message = normalize(first_line(view.message), custom_patterns)
    return _truncate(message) if message else NO_TITLE


def culprit_frame(view: EventView) -> FrameView | None:
    """Innermost in-app frame, searching from the outermost exception; else innermost frame."""
    for exc in reversed(view.exceptions):
        app_frames = exc.app_frames
        if app_frames:
            return app_frames[-1]
    for exc in reversed(view.exceptions):
        if exc.frames:
            return exc.frames[-1]
    return None


def culprit_of(view: EventView) -> str:
    frame = culprit_frame(view)
    if frame is None:
        return view.logger
    location = frame.location  # normalized module, or file path when there is no module
    if frame.function and location:
        return f"{location} in {frame.function}"
    return location or frame.function
