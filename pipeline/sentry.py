"""Sentry event payload -> errorstream event (schema v1). Pure: no I/O.

    payload ─┬─ exception: list | {values} | legacy `sentry.interfaces.Exception`
             │     chained / grouped (mechanism.exception_id / parent_id: bad, dangling
             │     and cyclic ids dropped), frames from `stacktrace` (or `raw_stacktrace`)
             ├─ no stack on the exception(s): the thread's stack (`threads`, by thread_id,
             │     else the crashed / current / only thread)
             ├─ no exception: top-level `stacktrace`, else that thread's stack, else a
             │     `template` frame -> one synthetic exception (value = the message)
             ├─ message: `logentry` / `message` (str or object) / `sentry.interfaces.Message`,
             │     `formatted` or `message` % `params`
             ├─ level (warn -> warning, critical -> fatal, numbers as Python logging levels),
             │     tags (dict or [key, value] pairs), user, request, contexts, breadcrumbs
             │     (list or {values}), release, environment, sdk, fingerprint, platform ...
             └─ nothing to group on (no exception, no message, no frames): message
                  "<unlabeled event>" and a fingerprint made of the event_id, so the event is
                  an issue of its own and can never merge with an unrelated one

Every value is cut to the schema's bounds, so the result always validates against
``schemas/event.v1.json`` (``pipeline.stages.decode`` checks it again before publishing).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from pipeline.stages.decode import parse_timestamp

NO_GROUPING_INFO = "<unlabeled event>"
MAX_EXCEPTIONS = 32
MAX_FRAMES = 512
MAX_BREADCRUMBS = 200
MAX_TAGS = 64
MAX_FINGERPRINT = 16

_LEVELS = {
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "emergency": "fatal",
    "emerg": "fatal",
    "alert": "fatal",
    "error": "error",
    "err": "error",
    "exception": "error",
    "warning": "warning",
    "warn": "warning",
    "info": "info",
    "information": "info",
    "notice": "info",
    "log": "info",
    "debug": "debug",
    "trace": "debug",
    "verbose": "debug",
}
_HEX_ID = re.compile(r"^[0-9a-fA-F]{32}$|^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_SERVICE_BAD = re.compile(r"[^A-Za-z0-9_.:/-]+")
_PRINTF = re.compile(r"%(?:\((\w+)\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[hlL]?([diouxXeEfFgGcrsa%])")
_BRACES = re.compile(r"\{(\d*|[A-Za-z_]\w*)\}")
_FRAME_STRINGS = {
    "filename": 1024,
    "abs_path": 2048,
    "module": 512,
    "function": 512,
    "context_line": 4096,
    # not in the schema, read by native / JavaScript grouping; bounded all the same
    "package": 1024,
    "platform": 64,
    "symbol": 512,
    "raw_function": 512,
    "instruction_addr": 64,
    "symbol_addr": 64,
    "image_addr": 64,
}


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


def _str(value: Any, limit: int) -> str | None:
    """A string of at most ``limit`` characters, or None for missing / structured values."""
    if isinstance(value, str):
        return _cut(value, limit)
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _cut(str(value), limit)


def _values(raw: Any) -> list[Any]:
    """Sentry's container shapes: a list, or ``{"values": [...]}``."""
    if isinstance(raw, dict):
        raw = raw.get("values")
    return raw if isinstance(raw, list) else []


def _get(payload: Mapping[str, Any], key: str) -> Any:
    """``payload[key]``, else the legacy ``sentry.interfaces.<Key>`` (interface alias)."""
    value = payload.get(key)
    if value is None:
        value = payload.get(_LEGACY.get(key, ""))
    return value


_LEGACY = {
    "exception": "sentry.interfaces.Exception",
    "stacktrace": "sentry.interfaces.Stacktrace",
    "logentry": "sentry.interfaces.Message",
    "request": "sentry.interfaces.Http",
    "user": "sentry.interfaces.User",
    "breadcrumbs": "sentry.interfaces.Breadcrumbs",
    "template": "sentry.interfaces.Template",
    "threads": "sentry.interfaces.Threads",
    "contexts": "sentry.interfaces.Contexts",
    "sdk": "sentry.interfaces.Sdk",
}


# -- level, ids, time ---------------------------------------------------------------------
def level_of(raw: Any) -> str:
    if isinstance(raw, int | float) and not isinstance(raw, bool):  # Python logging levels
        if raw != raw or raw in (float("inf"), float("-inf")):  # not a level: NaN, infinity
            return "error"
        n = int(raw)
        return (
            "fatal" if n >= 50 else "error" if n >= 40 else "warning" if n >= 30 else "info"
        ) if n >= 20 else "debug"  # fmt: skip
    if isinstance(raw, str):
        return _LEVELS.get(raw.strip().lower(), "error")
    return "error"


def event_id_of(raw: Any, fallback: Any = None) -> str:
    for candidate in (raw, fallback):
        if isinstance(candidate, str) and _HEX_ID.match(candidate):
            return uuid.UUID(candidate).hex
    return uuid.uuid4().hex


def timestamp_of(raw: Any, received_at: float) -> float:
    try:
        return parse_timestamp(raw)
    except (ValueError, TypeError, OverflowError):
        return received_at


def service_name(project_id: str, mapping: Mapping[str, str], default: str) -> str:
    """The ``service`` of a project: the configured name, else ``default`` with
    ``{project_id}`` filled in; made to fit the schema's pattern."""
    name = mapping.get(project_id) or default.replace("{project_id}", project_id)
    return _SERVICE_BAD.sub("-", name)[:128] or "unknown"


# -- frames and stack traces ----------------------------------------------------------------
def _int(value: Any) -> int | None:
    if value.__class__ is int:
        return value if value >= 0 else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value >= 0 and value == value and value != float("inf"):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _lines(value: Any) -> list[str] | None:
    if value.__class__ is not list:
        return None
    return [x if len(x) <= 4096 else x[:4096] for x in value[:50] if x.__class__ is str]


def convert_frame(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    frame: dict[str, Any] = {}
    strings = _FRAME_STRINGS
    for key, value in raw.items():
        limit = strings.get(key)
        if limit is not None:
            if value.__class__ is str:
                frame[key] = value if len(value) <= limit else value[:limit]
            elif (text := _str(value, limit)) is not None:
                frame[key] = text
        elif key == "lineno" or key == "colno":
            if (number := _int(value)) is not None:
                frame[key] = number
        elif key == "in_app":
            if value is True or value is False:
                frame[key] = value
        elif key == "pre_context" or key == "post_context":
            if (lines := _lines(value)) is not None:
                frame[key] = lines
        elif key == "vars":
            if value.__class__ is dict:
                frame[key] = value
    return frame or None


def convert_stacktrace(raw: Any) -> dict[str, Any] | None:
    """``{"frames": [...]}`` (oldest call first), or None without a usable frame. Over
    ``MAX_FRAMES``: the outermost and innermost halves are kept, like Sentry's trimming."""
    frames = raw.get("frames") if isinstance(raw, dict) else raw
    if not isinstance(frames, list):
        return None
    if len(frames) > MAX_FRAMES:
        half = MAX_FRAMES // 2
        frames = frames[:half] + frames[-half:]
    out = [f for f in map(convert_frame, frames) if f is not None]
    return {"frames": out} if out else None


# -- exceptions -------------------------------------------------------------------------------
_MECHANISM_KEEP = ("type", "handled", "synthetic", "is_exception_group", "source", "description")


def _mechanism(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key in _MECHANISM_KEEP:
        value = raw.get(key)
        if key in ("handled", "synthetic", "is_exception_group"):
            if isinstance(value, bool):
                out[key] = value
        else:
            text = _str(value, 256)
            if text is not None:
                out[key] = text
    for key in ("exception_id", "parent_id"):
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[key] = value
    return out or None


def _raw_exceptions(payload: Mapping[str, Any]) -> list[Any]:
    raw = _get(payload, "exception")
    if isinstance(raw, dict) and "values" not in raw and ("type" in raw or "value" in raw):
        return [raw]  # legacy: one exception object
    return _values(raw)


def convert_exception(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    exc: dict[str, Any] = {}
    exc_type, value = _str(raw.get("type"), 512), _str(raw.get("value"), 65536)
    if exc_type:
        exc["type"] = exc_type
    if value:
        exc["value"] = value
    module = _str(raw.get("module"), 512)
    if module:
        exc["module"] = module
    stack = convert_stacktrace(raw.get("stacktrace")) or convert_stacktrace(
        raw.get("raw_stacktrace")
    )
    if stack:
        exc["stacktrace"] = stack
    mechanism = _mechanism(raw.get("mechanism"))
    if mechanism:
        exc["mechanism"] = mechanism
    thread_id = raw.get("thread_id")
    if isinstance(thread_id, int | str) and not isinstance(thread_id, bool):
        exc["thread_id"] = thread_id
    if not (exc_type or value or stack):
        return None
    if "type" not in exc and "value" not in exc:
        exc["value"] = ""
    return exc


def fix_exception_tree(exceptions: list[dict[str, Any]]) -> None:
    """Keep ``mechanism.exception_id`` / ``parent_id`` only where they form a tree: ids that
    repeat are dropped, and so is a parent_id that names no exception, itself, or one of
    its own descendants (a cycle). In place."""
    ids: dict[int, dict[str, Any]] = {}
    seen: set[int] = set()
    for exc in exceptions:
        mech = exc.get("mechanism") or {}
        eid = mech.get("exception_id")
        if eid is None:
            continue
        if eid in seen:
            ids.pop(eid, None)
            mech.pop("exception_id")
        else:
            seen.add(eid)
            ids[eid] = exc
    for exc in exceptions:
        mech = exc.get("mechanism") or {}
        if "exception_id" in mech and mech["exception_id"] not in ids:
            mech.pop("exception_id")  # a duplicate: the first holder lost it too
    for exc in exceptions:
        mech = exc.get("mechanism")
        if not mech or "parent_id" not in mech:
            continue
        own, node, steps = mech.get("exception_id"), mech["parent_id"], 0
        ok = node in ids and node != own
        while ok and steps <= len(ids):  # walk up: a cycle comes back to `own` or never ends
            parent = (ids[node].get("mechanism") or {}).get("parent_id")
            if parent is None or parent not in ids:
                break
            if parent == own:
                ok = False
            node, steps = parent, steps + 1
        if not ok or steps > len(ids):
            mech.pop("parent_id")
    for exc in exceptions:
        if exc.get("mechanism") == {}:
            exc.pop("mechanism")


def _threads(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [t for t in _values(_get(payload, "threads")) if isinstance(t, dict)]


def thread_stacktrace(threads: list[dict[str, Any]], thread_id: Any = None) -> dict | None:
    """The stack of thread ``thread_id``; else of the crashed thread, else the current one,
    else the only thread that has one."""
    if thread_id is not None:
        for t in threads:
            if t.get("id") == thread_id:
                return convert_stacktrace(t.get("stacktrace") or t.get("raw_stacktrace"))
        return None
    for flag in ("crashed", "current"):
        for t in threads:
            if t.get(flag) is True:
                stack = convert_stacktrace(t.get("stacktrace") or t.get("raw_stacktrace"))
                if stack:
                    return stack
    stacks = [convert_stacktrace(t.get("stacktrace")) for t in threads]
    stacks = [s for s in stacks if s]
    return stacks[0] if len(stacks) == 1 else None


def _template_frame(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    frame = convert_frame(raw)
    if frame:
        frame.setdefault("in_app", True)
    return frame


def exceptions_of(payload: Mapping[str, Any], message: str) -> list[dict[str, Any]]:
    raw = _raw_exceptions(payload)[-4 * MAX_EXCEPTIONS :]  # (more would be cut below anyway)
    excs = [e for e in map(convert_exception, raw) if e is not None]
    if len(excs) > MAX_EXCEPTIONS:
        excs = excs[-MAX_EXCEPTIONS:]  # keep the outermost
    fix_exception_tree(excs)
    threads = _threads(payload)
    template = _template_frame(_get(payload, "template"))
    if excs:
        missing = [e for e in excs if "stacktrace" not in e]
        for exc in missing:  # a thread_id names the thread whose stack it is
            if "thread_id" in exc:
                stack = thread_stacktrace(threads, exc["thread_id"])
                if stack:
                    exc["stacktrace"] = stack
        missing = [e for e in excs if "stacktrace" not in e]
        if len(missing) == len(excs):
            stack = convert_stacktrace(_get(payload, "stacktrace")) or thread_stacktrace(threads)
            if stack is None and template:
                stack = {"frames": [template]}
            if stack:
                missing[-1]["stacktrace"] = stack
        for exc in excs:
            exc.pop("thread_id", None)
        return excs
    stack = convert_stacktrace(_get(payload, "stacktrace")) or thread_stacktrace(threads)
    if stack is None and template:
        stack = {"frames": [template]}
    if stack is None:
        return []
    return [
        {
            "value": _cut(message, 65536),
            "mechanism": {"type": "stacktrace", "synthetic": True},
            "stacktrace": stack,
        }
    ]


# -- message ----------------------------------------------------------------------------------
def format_params(template: str, params: Any) -> str | None:
    """``template`` with its ``%s`` / ``{0}`` / ``{name}`` placeholders filled from
    ``params`` (list or dict); None when it cannot be done."""
    if isinstance(params, list | tuple):
        seq = [v if isinstance(v, str) else _str(v, 1024) or repr(v) for v in params]
        it = iter(seq)

        def printf(m: re.Match[str]) -> str:
            if m.group(2) == "%":
                return "%"
            return next(it)

        try:
            if "%" in template:
                return _PRINTF.sub(printf, template)
            return _BRACES.sub(lambda m: seq[int(m.group(1))] if m.group(1) else next(it), template)
        except (StopIteration, IndexError, ValueError):
            return None
    if isinstance(params, dict):
        named = {str(k): _str(v, 1024) or repr(v) for k, v in params.items()}
        try:
            if "%(" in template:
                return _PRINTF.sub(
                    lambda m: "%" if m.group(2) == "%" else named[m.group(1)], template
                )
            return _BRACES.sub(lambda m: named[m.group(1)], template)
        except (KeyError, TypeError):
            return None
    return None


def message_of(payload: Mapping[str, Any]) -> tuple[Any, str]:
    """(the v1 ``message`` value or None, its display text)."""
    raw = payload.get("logentry")
    if raw is None:
        raw = payload.get("sentry.interfaces.Message")
    if raw is None:
        raw = payload.get("message")
    elif isinstance(payload.get("message"), str) and isinstance(raw, dict):
        raw = {"formatted": payload["message"], **raw} if not raw.get("formatted") else raw
    if isinstance(raw, str):
        text = _cut(raw, 65536)
        return (text, text) if text.strip() else (None, "")
    if not isinstance(raw, dict):
        return None, ""
    template = _str(raw.get("message"), 65536) or ""
    formatted = _str(raw.get("formatted"), 65536) or ""
    params = raw.get("params")
    if not formatted and template and params:
        formatted = _cut(format_params(template, params) or "", 65536)
    if not (template.strip() or formatted.strip()):
        return None, ""
    out: dict[str, Any] = {}
    if template:
        out["message"] = template
    if formatted:
        out["formatted"] = formatted
    if isinstance(params, list):
        out["params"] = params
    elif isinstance(params, dict):
        out["params"] = [v for v in params.values()]
    return out, formatted or template


# -- the rest -------------------------------------------------------------------------------
def tags_of(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        pairs: Any = raw.items()
    elif isinstance(raw, list):
        pairs = (p for p in raw if isinstance(p, list | tuple) and len(p) == 2)
    else:
        return {}
    tags: dict[str, str] = {}
    for key, value in pairs:
        k, v = _str(key, 64), _str(value, 200)
        if k and v is not None and k not in tags:
            tags[k] = v
            if len(tags) == MAX_TAGS:
                break
    return tags


def user_of(raw: Any, client_ip: str | None) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    user: dict[str, Any] = {}
    uid = raw.get("id")
    if isinstance(uid, int) and not isinstance(uid, bool):
        user["id"] = uid
    elif (text := _str(uid, 256)) is not None:
        user["id"] = text
    for key in ("email", "username", "name", "segment"):
        if (text := _str(raw.get(key), 256)) is not None:
            user[key] = text
    ip = _str(raw.get("ip_address"), 64)
    if ip == "{{auto}}":
        ip = client_ip
    if ip:
        user["ip_address"] = ip
    for key in ("geo", "data"):
        if isinstance(raw.get(key), dict):
            user[key] = raw[key]
    return user or None


def _pairs_to_dict(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
        return {str(k): v for k, v in value}
    return value


def request_of(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    req: dict[str, Any] = {}
    for key, limit in (("method", 16), ("url", 8192), ("fragment", 1024)):
        if (text := _str(raw.get(key), limit)) is not None:
            req[key] = text.upper() if key == "method" else text
    query = _pairs_to_dict(raw.get("query_string"))
    if isinstance(query, str | dict):
        req["query_string"] = query
    headers = raw.get("headers")
    if isinstance(headers, dict | list):
        req["headers"] = headers
    cookies = _pairs_to_dict(raw.get("cookies"))
    if isinstance(cookies, str | dict):
        req["cookies"] = cookies
    if raw.get("data") is not None:
        req["data"] = raw["data"]
    if isinstance(raw.get("env"), dict):
        req["env"] = raw["env"]
    return req or None


def breadcrumbs_of(raw: Any) -> dict[str, Any] | None:
    crumbs = []
    for c in _values(raw)[-MAX_BREADCRUMBS:]:
        if not isinstance(c, dict):
            continue
        crumb: dict[str, Any] = {}
        ts = c.get("timestamp")
        if isinstance(ts, str | int | float) and not isinstance(ts, bool):
            crumb["timestamp"] = ts
        for key in ("category", "message", "level", "type"):
            value = c.get(key)
            if value.__class__ is str:
                crumb[key] = value if len(value) <= 8192 else value[:8192]
            elif value is not None and (text := _str(value, 8192)) is not None:
                crumb[key] = text
        if isinstance(c.get("data"), dict):
            crumb["data"] = c["data"]
        if crumb:
            crumbs.append(crumb)
    return {"values": crumbs} if crumbs else None


def sdk_of(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    sdk: dict[str, Any] = {}
    for key in ("name", "version"):
        if (text := _str(raw.get(key), 256)) is not None:
            sdk[key] = text
    if isinstance(raw.get("integrations"), list):
        sdk["integrations"] = [i for i in raw["integrations"][:100] if isinstance(i, str)]
    if isinstance(raw.get("packages"), list):
        sdk["packages"] = [p for p in raw["packages"][:100] if isinstance(p, dict)]
    return sdk or None


def fingerprint_of(raw: Any) -> list[str] | None:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return None
    parts = [p for p in (_str(x, 512) for x in raw) if p is not None]
    return parts[:MAX_FINGERPRINT] or None


def has_grouping_info(event: Mapping[str, Any]) -> bool:
    """Something an issue can be told apart by: a non-blank message, an exception type or
    value, or a frame with a location or function."""
    message = event.get("message")
    if isinstance(message, dict):
        message = message.get("formatted") or message.get("message")
    if isinstance(message, str) and message.strip() and message != NO_GROUPING_INFO:
        return True
    for exc in event.get("exception", {}).get("values", ()):
        if (exc.get("type") or "").strip() or (exc.get("value") or "").strip():
            return True
        for f in exc.get("stacktrace", {}).get("frames", ()):
            if f.get("module") or f.get("filename") or f.get("abs_path") or f.get("function"):
                return True
    return False


_DEFAULT_MARKERS = frozenset({"{{ default }}", "{{default}}"})


def to_event_v1(
    payload: Mapping[str, Any],
    *,
    service: str,
    received_at: float,
    event_id: str | None = None,
    client_ip: str | None = None,
) -> dict[str, Any]:
    """The schema v1 event of one Sentry event payload. ``event_id`` is the fallback when
    the payload has none (an envelope header's); ``received_at`` stands in for a missing or
    unreadable timestamp; ``client_ip`` fills ``user.ip_address: "{{auto}}"``."""
    event: dict[str, Any] = {
        "event_id": event_id_of(payload.get("event_id"), event_id),
        "timestamp": timestamp_of(payload.get("timestamp"), received_at),
        "service": _SERVICE_BAD.sub("-", service)[:128] or "unknown",
        "level": level_of(payload.get("level")),
        "platform": (_str(payload.get("platform"), 64) or "other").lower(),
    }
    message, text = message_of(payload)
    if message is not None:
        event["message"] = message
    exceptions = exceptions_of(payload, text)
    if exceptions:
        event["exception"] = {"values": exceptions}
    for key, limit in (
        ("logger", 256),
        ("release", 200),
        ("environment", 64),
        ("server_name", 256),
        ("transaction", 512),
        ("dist", 64),
    ):
        if (value := _str(payload.get(key), limit)) is not None:
            event[key] = value
    if "transaction" not in event and (culprit := _str(payload.get("culprit"), 512)):
        event["transaction"] = culprit  # the legacy name of the same idea
    if tags := tags_of(payload.get("tags")):
        event["tags"] = tags
    for key, value in (
        ("user", user_of(_get(payload, "user"), client_ip)),
        ("request", request_of(_get(payload, "request"))),
        ("breadcrumbs", breadcrumbs_of(_get(payload, "breadcrumbs"))),
        ("sdk", sdk_of(_get(payload, "sdk"))),
        ("fingerprint", fingerprint_of(payload.get("fingerprint"))),
    ):
        if value:
            event[key] = value
    contexts = _get(payload, "contexts")
    if isinstance(contexts, dict) and contexts:
        event["contexts"] = {str(k): v for k, v in contexts.items() if isinstance(v, dict)}
    extra = payload.get("extra")
    if isinstance(extra, dict) and extra:
        event["extra"] = extra
    if not has_grouping_info(event):
        unique = ["errorstream:no-grouping-info", event["event_id"]]
        given = event.get("fingerprint")
        if given and not any(p.strip() in _DEFAULT_MARKERS for p in given):
            pass  # the client named the issue itself: its choice
        elif given:
            parts = [q for p in given for q in (unique if p.strip() in _DEFAULT_MARKERS else [p])]
            event["fingerprint"] = parts[:MAX_FINGERPRINT]
        else:
            event["fingerprint"] = unique
        event["message"] = NO_GROUPING_INFO
    return event
