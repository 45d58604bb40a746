"""A tolerant, typed view of the parts of an event payload that grouping reads.

Events follow Sentry's payload field names (schema v1). Anything missing, ``None`` or of the
wrong type reads as empty, so grouping never raises on odd but schema-valid input.
``exception`` may be ``{"values": [...]}`` or a plain list; ``message`` may be a string or a
log entry dict (``formatted`` / ``message``); ``logentry`` is read when ``message`` is absent.
"""

from __future__ import annotations

from collections.abc import Callable
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
    # grouping v2: a frame that ends (or starts) what groups / is in-app ("border" frames of
    # Sentry's stack trace rules, ``platforms.py``); 0 for an ordinary frame
    border: int = 0
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

    __slots__ = (
        "type", "value", "module", "synthetic", "ns_error", "_frames", "_app_frames", "_source",
    )  # fmt: skip
    # ``_source``: (frame reader, raw frames, platform, in-app overrides); the reader is the
    # grouping version's (``frames_of`` here for v1, ``platforms.frames_of`` for v2)

    def __init__(
        self, type: str, value: str, module: str, frames: tuple[FrameView, ...] = ()
    ) -> None:
        self.type = type
        self.value = value
        self.module = module
        # made up by the SDK to carry a stack trace (``mechanism.synthetic``): its type says
        # nothing about the error, and grouping v2 leaves it out, as Sentry does
        self.synthetic = False
        # Cocoa's NSError (``mechanism.meta.ns_error``) as "domain|code", else ""
        self.ns_error = ""
        self._frames: tuple[FrameView, ...] | None = tuple(frames)
        self._app_frames: tuple[FrameView, ...] | None = None
        self._source: tuple[FrameReader, Any, str, InAppOverrides] | None = None

    @classmethod
    def from_payload(
        cls, type: str, value: str, module: str, raw_frames: Any, platform: str,
        overrides: InAppOverrides, reader: FrameReader | None = None,
    ) -> ExceptionView:  # fmt: skip
        """A view whose frames are read from the payload's frame list when needed."""
        view = cls(type, value, module)
        view._frames = None
        view._source = (reader or frames_of, raw_frames, platform, overrides)
        return view

    @property
    def frames(self) -> tuple[FrameView, ...]:
        frames = self._frames
        if frames is None:
            reader, raw, platform, overrides = self._source  # type: ignore[misc]
            frames = self._frames = reader(raw, platform, overrides)
        return frames

    @property
    def app_frames(self) -> tuple[FrameView, ...]:
        """``tuple(f for f in self.frames if f.in_app)``."""
        app = self._app_frames
        if app is None:
            if self._frames is not None:
                app = tuple(frame for frame in self._frames if frame.in_app)
            else:
                reader, raw, platform, overrides = self._source  # type: ignore[misc]
                app = reader(raw, platform, overrides, True)
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
    event_id: str = ""
    # the payload itself: the last resort of grouping v2 for an event with nothing else
    payload: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

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
    if message.__class__ is str:
        return message
    if message is None:
        message = event.get("logentry")
    if isinstance(message, dict):
        return text(message.get("formatted")) or text(message.get("message"))
    return text(message)


def _tags(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {
            k if k.__class__ is str else text(k): v if v.__class__ is str else text(v)
            for k, v in raw.items()
        }
    if isinstance(raw, list):  # Sentry also allows [[key, value], ...]
        pairs = (p for p in raw if isinstance(p, (list, tuple)) and len(p) == 2)
        return {text(k): text(v) for k, v in pairs}
    return {}


InAppOverrides = tuple[tuple[str, ...], tuple[str, ...]]
# (raw frames, platform, overrides, app_only=False) -> frame views
FrameReader = Callable[..., tuple[FrameView, ...]]
_SCALARS = (str, bool, int, float)
# In front of the typed ``_frame_view`` cache: views of frames whose fields are all strings or
# None (in_app a bool or None), keyed on (platform, overrides, the fields). A plain dict is
# enough there: a key with an int / float / bool field (1 == True) can only equal a stored
# one through in_app, which must be a bool or None to look one up (a str subclass reads as
# the equal str). Looking one up costs about a third of what the typed cache's key costs.
# Emptied when full.
_KNOWN_FRAMES: dict[tuple[Any, ...], FrameView | None] = {}
_KNOWN_FRAMES_MAX = 65536
_NOT_KNOWN = object()


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


def frames_of(
    raw: Any, platform: str, overrides: InAppOverrides, app_only: bool = False
) -> tuple[FrameView, ...]:
    """The frames' views as grouping v1 reads them (``None`` views dropped); with
    ``app_only`` only the in-app ones."""
    if isinstance(raw, dict):
        raw = raw.get("frames")
    if not isinstance(raw, list):
        return ()
    # a frame marked in_app=False stays out of the app unless an include prefix may apply
    skip_not_in_app = app_only and not overrides[0]
    if skip_not_in_app:  # leave those out first (most library frames), in one quick pass
        raw = [f for f in raw if f.__class__ is not dict or f.get("in_app") is not False]
    frames = []
    for frame in raw:
        if not isinstance(frame, dict):
            continue
        get = frame.get
        in_app = get("in_app")
        if in_app is False and skip_not_in_app:
            continue
        key = (
            platform,
            overrides,
            get("module"),
            get("filename"),
            get("abs_path"),
            get("function"),
            get("context_line"),
            in_app,
        )
        # (1 == True: only a bool or None in_app may look up the plain dict)
        if in_app is True or in_app is False or in_app is None:
            try:
                view = _KNOWN_FRAMES.get(key, _NOT_KNOWN)
            except TypeError:  # an unhashable (list / dict) value in an odd payload
                view = _NOT_KNOWN
        else:
            view = _NOT_KNOWN
        if view is _NOT_KNOWN:
            view = _view_of(key)
        if view is not None and (view.in_app or not app_only):
            frames.append(view)
    return tuple(frames)


def _view_of(key: tuple[Any, ...]) -> FrameView | None:
    """``_frame_view(*key)``; remembered in ``_KNOWN_FRAMES`` when the fields allow it."""
    try:
        view = _frame_view(*key)
    except TypeError:  # an unhashable (list / dict) value in an odd payload
        fields = tuple(v if isinstance(v, _SCALARS) else None for v in key[2:])
        return _frame_view(key[0], key[1], *fields)
    if all(v is None or v.__class__ is str for v in key[2:7]) and (
        key[7] is None or key[7].__class__ is bool
    ):
        if len(_KNOWN_FRAMES) >= _KNOWN_FRAMES_MAX:
            _KNOWN_FRAMES.clear()
        _KNOWN_FRAMES[key] = view
    return view


def _ns_error(meta: Any) -> str:
    ns_error = meta.get("ns_error") if meta.__class__ is dict else None
    if ns_error.__class__ is not dict:
        return ""
    domain, code = text(ns_error.get("domain")), text(ns_error.get("code"))
    return f"{domain}|{code}" if domain or code else ""


def _exceptions(
    raw: Any, platform: str, overrides: InAppOverrides, reader: FrameReader
) -> tuple[ExceptionView, ...]:
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
        # ExceptionView.from_payload(exc_type, value, module, stacktrace, platform, overrides)
        view = _new(ExceptionView)
        view.type, view.value, view.module = exc_type, value, module
        view._frames = view._app_frames = None
        mechanism = get("mechanism")
        if mechanism.__class__ is dict:
            view.synthetic = mechanism.get("synthetic") is True
            view.ns_error = _ns_error(mechanism.get("meta"))
        else:
            view.synthetic, view.ns_error = False, ""
        view._source = (reader, get("stacktrace"), platform, overrides)
        if exc_type or value or view.frames:
            exceptions.append(view)
    return tuple(exceptions)


def view_event(
    event: Any, overrides: InAppOverrides = ((), ()), reader: FrameReader | None = None
) -> EventView:
    """The typed view of ``event``. Frames are read from the payload when first used (by
    ``reader``, the grouping version's; v1's by default), so the payload must not be changed
    while the view is in use (``group_event`` uses it at once)."""
    if not isinstance(event, dict):
        event = {}
    get = event.get
    platform, level = get("platform"), get("level")
    platform = (platform if platform.__class__ is str else text(platform)).lower() or "other"
    raw_fingerprint = get("fingerprint")
    fingerprint = (
        tuple(text(part) for part in raw_fingerprint if part is not None)
        if raw_fingerprint is not None and isinstance(raw_fingerprint, list)
        else ()
    )
    level = (level if level.__class__ is str else text(level)).lower() or "error"
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
    _set_exceptions(view, _exceptions(get("exception"), platform, overrides, reader or frames_of))
    event_id = get("event_id")
    _set_event_id(view, event_id if event_id.__class__ is str else text(event_id))
    _set_payload(view, event)
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
    _set_event_id,
    _set_payload,
) = _slot_setters(
    EventView,
    (
        "platform", "level", "service", "logger", "message", "tags", "fingerprint",
        "exceptions", "event_id", "payload",
    ),
)  # fmt: skip
