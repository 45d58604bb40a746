"""A tolerant, typed view of the parts of an event payload that grouping reads.

Events follow Sentry's payload field names (schema v1). Anything missing, ``None`` or of the
wrong type reads as empty, so grouping never raises on odd but schema-valid input.
``exception`` may be ``{"values": [...]}`` or a plain list; ``message`` may be a string or a
log entry dict (``formatted`` / ``message``); ``logentry`` is read when ``message`` is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pipeline.grouping.frames import frame_key, looks_third_party
from pipeline.grouping.slots import slot_setters as _slot_setters


@dataclass(frozen=True, slots=True)
class FrameView:
    location: str  # normalized module or file path
    function: str  # normalized function
    context: str  # normalized context line ("" when absent or minified)
    in_app: bool
    raw_module: str
    raw_path: str
    # what the frame contributes to a fingerprint, with and without the context line
    # (derived; made once per distinct frame, since views are cached)
    component: str = field(init=False, repr=False, compare=False)
    component_without_context: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        without = f"frame:{self.location}|{self.function}|"
        object.__setattr__(self, "component_without_context", without)
        object.__setattr__(self, "component", without + self.context)


class ExceptionView:
    """One exception of the chain: type, value, module and its frames (oldest call first).

    ``frames`` is built when first read. ``app_frames`` (the in-app frames, in the same order)
    is what grouping, the culprit and the category read: it is built without looking at the
    frames that are marked ``in_app: false`` (most library frames), which is why an event is
    cheap to group even when its stack is deep in library code.
    """

    __slots__ = ("type", "value", "module", "_frames", "_app_frames", "_source")

    def __init__(
        self, type: str, value: str, module: str, frames: tuple[FrameView, ...] = ()
    ) -> None:
        self.type = type
        self.value = value
        self.module = module
        self._frames: tuple[FrameView, ...] | None = tuple(frames)
        self._app_frames: tuple[FrameView, ...] | None = None
        self._source: tuple[Any, str, InAppOverrides] | None = None

    @classmethod
    def from_payload(
        cls, type: str, value: str, module: str, raw_frames: Any, platform: str,
        overrides: InAppOverrides,
    ) -> ExceptionView:  # fmt: skip
        """A view whose frames are read from the payload's frame list when needed."""
        view = cls(type, value, module)
        view._frames = None
        view._source = (raw_frames, platform, overrides)
        return view

    @property
    def frames(self) -> tuple[FrameView, ...]:
        frames = self._frames
        if frames is None:
            frames = self._frames = _frames(*self._source)  # type: ignore[misc]
        return frames

    @property
    def app_frames(self) -> tuple[FrameView, ...]:
        """``tuple(f for f in self.frames if f.in_app)``."""
        app = self._app_frames
        if app is None:
            if self._frames is not None:
                app = tuple(frame for frame in self._frames if frame.in_app)
            else:
                app = _frames(*self._source, app_only=True)  # type: ignore[misc]
            self._app_frames = app
        return app

    def _key(self) -> tuple[str, str, str, tuple[FrameView, ...]]:
        return (self.type, self.value, self.module, self.frames)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExceptionView):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"ExceptionView(type={self.type!r}, value={self.value!r}, module={self.module!r}, "
            f"frames={self.frames!r})"
        )


@dataclass(frozen=True, slots=True)
class EventView:
    platform: str
    level: str
    service: str
    logger: str
    message: str
    tags: dict[str, str]
    fingerprint: tuple[str, ...]
    exceptions: tuple[ExceptionView, ...]  # Sentry order: the last one is the outermost

    @property
    def outermost(self) -> ExceptionView | None:
        return self.exceptions[-1] if self.exceptions else None


def text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)


def _message(event: dict[str, Any]) -> str:
    message = event.get("message")
    if message is None:
        message = event.get("logentry")
    if isinstance(message, dict):
        return text(message.get("formatted")) or text(message.get("message"))
    return text(message)


def _tags(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {text(k): text(v) for k, v in raw.items()}
    if isinstance(raw, list):  # Sentry also allows [[key, value], ...]
        pairs = (p for p in raw if isinstance(p, (list, tuple)) and len(p) == 2)
        return {text(k): text(v) for k, v in pairs}
    return {}


InAppOverrides = tuple[tuple[str, ...], tuple[str, ...]]
_SCALARS = (str, bool, int, float)


@lru_cache(maxsize=65536, typed=True)
def _frame_view(
    platform: str,
    overrides: InAppOverrides,
    module: Any,
    filename: Any,
    abs_path: Any,
    function: Any,
    context_line: Any,
    in_app: Any,
) -> FrameView | None:
    """One frame's view; cached on the raw fields that matter (line numbers are not among them)."""
    module, filename, abs_path = text(module), text(filename), text(abs_path)
    function = text(function)
    if not (module or filename or abs_path or function):
        return None
    location, func, context = frame_key(
        platform, module, filename, abs_path, function, text(context_line)
    )
    path = abs_path or filename
    include, exclude = overrides
    name = module or path
    if name and exclude and name.startswith(exclude):
        in_app = False
    elif name and include and name.startswith(include):
        in_app = True
    elif not isinstance(in_app, bool):
        in_app = not looks_third_party(path, module)
    return FrameView(location, func, context, in_app, module, path)


def _frames(
    raw: Any, platform: str, overrides: InAppOverrides, app_only: bool = False
) -> tuple[FrameView, ...]:
    """The frames' views (``None`` views dropped); with ``app_only`` only the in-app ones."""
    if isinstance(raw, dict):
        raw = raw.get("frames")
    if not isinstance(raw, list):
        return ()
    # a frame marked in_app=False stays out of the app unless an include prefix may apply
    skip_not_in_app = app_only and not overrides[0]
    frames = []
    for frame in raw:
        if not isinstance(frame, dict):
            continue
        get = frame.get
        in_app = get("in_app")
        if in_app is False and skip_not_in_app:
            continue
        fields = (
            get("module"),
            get("filename"),
            get("abs_path"),
            get("function"),
            get("context_line"),
            in_app,
        )
        try:
            view = _frame_view(platform, overrides, *fields)
        except TypeError:  # an unhashable (list / dict) value in an odd payload
            fields = tuple(v if isinstance(v, _SCALARS) else None for v in fields)
            view = _frame_view(platform, overrides, *fields)
        if view is not None and (view.in_app or not app_only):
            frames.append(view)
    return tuple(frames)


def _exceptions(raw: Any, platform: str, overrides: InAppOverrides) -> tuple[ExceptionView, ...]:
    if isinstance(raw, dict):
        raw = raw.get("values")
    if not isinstance(raw, list):
        return ()
    exceptions = []
    for exc in raw:
        if not isinstance(exc, dict):
            continue
        get = exc.get
        exc_type, value, module = get("type"), get("value"), get("module")
        exc_type = exc_type if exc_type.__class__ is str else text(exc_type)
        value = value if value.__class__ is str else text(value)
        module = module if module.__class__ is str else text(module)
        view = ExceptionView.from_payload(
            exc_type, value, module, get("stacktrace"), platform, overrides
        )
        if exc_type or value or view.frames:
            exceptions.append(view)
    return tuple(exceptions)


def view_event(event: Any, overrides: InAppOverrides = ((), ())) -> EventView:
    """The typed view of ``event``. Frames are read from the payload when first used, so the
    payload must not be changed while the view is in use (``group_event`` uses it at once)."""
    if not isinstance(event, dict):
        event = {}
    get = event.get
    platform = text(get("platform")).lower() or "other"
    raw_fingerprint = get("fingerprint")
    fingerprint = (
        tuple(text(part) for part in raw_fingerprint if part is not None)
        if isinstance(raw_fingerprint, list)
        else ()
    )
    level = text(get("level")).lower() or "error"
    service, logger = get("service"), get("logger")
    # EventView(platform=..., ...) without the frozen dataclass's per-field __setattr__ detour
    view = _new(EventView)
    _set_platform(view, platform)
    _set_level(view, "fatal" if level == "critical" else level)
    _set_service(view, service if service.__class__ is str else text(service))
    _set_logger(view, logger if logger.__class__ is str else text(logger))
    _set_message(view, _message(event))
    _set_tags(view, _tags(get("tags")))
    _set_fingerprint(view, fingerprint)
    _set_exceptions(view, _exceptions(get("exception"), platform, overrides))
    return view


_new = object.__new__
(
    _set_platform,
    _set_level,
    _set_service,
    _set_logger,
    _set_message,
    _set_tags,
    _set_fingerprint,
    _set_exceptions,
) = _slot_setters(
    EventView,
    ("platform", "level", "service", "logger", "message", "tags", "fingerprint", "exceptions"),
)
