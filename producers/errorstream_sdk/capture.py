"""The calling-thread half of a capture: copy what must be copied *now*.

Only primitive data leaves here: per exception its type name, module and ``str()``, per frame
the code object (immutable, holds no frame), line, last instruction offset, module name and,
only with ``include_locals``, ``repr()`` of the locals. Source lines, ``in_app``, column
numbers, scrubbing and JSON happen later on the SDK's own thread (see ``frames.py``).
"""

from __future__ import annotations

from types import CodeType, TracebackType
from typing import NamedTuple

MAX_CHAIN = 10
MAX_FRAMES = 250  # per exception; keeps the oldest and newest halves
MAX_VAR_REPR = 256
MAX_VARS = 50


class RawFrame(NamedTuple):
    code: CodeType
    lineno: int
    lasti: int
    module: str | None
    vars: dict[str, str] | None


class RawException(NamedTuple):
    type: str
    module: str | None
    value: str
    frames: list[RawFrame]


def safe_str(obj: object) -> str:
    try:
        return str(obj)
    except Exception:
        return "<unprintable %s object>" % type(obj).__name__


def safe_repr(obj: object, limit: int = MAX_VAR_REPR) -> str:
    try:
        r = repr(obj)
    except Exception:
        return "<unrepresentable %s object>" % type(obj).__name__
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _frames(tb: TracebackType | None, include_locals: bool) -> list[RawFrame]:
    out: list[RawFrame] = []
    append = out.append
    while tb is not None:
        frame = tb.tb_frame
        f_vars = None
        if include_locals:
            f_vars = {}
            for i, (k, v) in enumerate(frame.f_locals.items()):
                if i >= MAX_VARS:
                    break
                f_vars[k] = safe_repr(v)
        append(
            RawFrame(
                frame.f_code, tb.tb_lineno, tb.tb_lasti, frame.f_globals.get("__name__"), f_vars
            )
        )
        tb = tb.tb_next
    if len(out) > MAX_FRAMES:
        half = MAX_FRAMES // 2
        out = out[:half] + out[-half:]
    return out


def extract_chain(exc: BaseException, include_locals: bool = False) -> list[RawException]:
    """Exceptions oldest cause first, the raised one last; frames oldest call first.

    Follows ``__cause__``, else ``__context__`` unless ``__suppress_context__``; stops on cycles.
    """
    chain: list[RawException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(cur))
        t = type(cur)
        chain.append(
            RawException(
                t.__qualname__,
                t.__module__,
                safe_str(cur),
                _frames(cur.__traceback__, include_locals),
            )
        )
        if cur.__cause__ is not None:
            cur = cur.__cause__
        elif cur.__suppress_context__:
            cur = None
        else:
            cur = cur.__context__
    chain.reverse()
    return chain
