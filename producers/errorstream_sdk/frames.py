"""The off-thread half of exception capture: raw frames -> Sentry-shaped ``exception.values``.

Pure functions over ``capture.RawException`` (plus linecache, which reads source files).
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
from collections.abc import Callable
from functools import lru_cache
from types import CodeType
from typing import Any

from errorstream_sdk.capture import RawException, RawFrame

_SEP = os.sep


def _stdlib_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    prefixes = {paths.get("stdlib"), paths.get("platstdlib")}
    for base in {sys.base_prefix, sys.base_exec_prefix}:
        prefixes.add(
            os.path.join(base, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
        )
    return tuple(sorted(p.rstrip(_SEP) + _SEP for p in prefixes if p))


STDLIB_PREFIXES = _stdlib_prefixes()


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


class InAppRules:
    """``in_app_include`` wins, then ``in_app_exclude``; otherwise third-party
    (site-packages, dist-packages), the stdlib and
    synthetic ``<frozen ...>`` modules are not in-app and everything else is."""

    def __init__(self, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.is_in_app = lru_cache(maxsize=4096)(self._decide)

    def _decide(self, module: str | None, abs_path: str) -> bool:
        if module:
            if _matches(module, self.include):
                return True
            if _matches(module, self.exclude):
                return False
        if abs_path.startswith("<frozen"):
            return False
        if "site-packages" in abs_path or "dist-packages" in abs_path:
            return False
        if abs_path.startswith(STDLIB_PREFIXES):
            return False
        return True


@lru_cache(maxsize=4096)
def relative_filename(module: str | None, abs_path: str) -> str:
    """``myapp/views.py`` for module ``myapp.views``; the base name when unknown."""
    if not module or module == "__main__" or abs_path.startswith("<"):
        return os.path.basename(abs_path) if not abs_path.startswith("<") else abs_path
    depth = module.count(".") + 1
    if abs_path.endswith("__init__.py"):
        depth += 1
    return "/".join(abs_path.split(_SEP)[-depth:])


_POSITIONS: dict[CodeType, list[Any]] = {}


def column(code: CodeType, lasti: int) -> int | None:
    """1-based column of the instruction at ``lasti`` (None when unknown)."""
    positions = _POSITIONS.get(code)
    if positions is None:
        try:
            positions = list(code.co_positions())
        except Exception:
            positions = []
        if len(_POSITIONS) > 4096:
            _POSITIONS.clear()
        _POSITIONS[code] = positions
    idx = lasti // 2
    if 0 <= idx < len(positions):
        col = positions[idx][2]
        return None if col is None else col + 1
    return None


def frame_template(
    raw: RawFrame,
    rules: InAppRules,
    context_lines: int,
    scrub_line: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Everything in a frame but ``vars``: fixed by (code object, last instruction, module),
    so it can be cached. Source context goes through ``scrub_line`` when given."""
    code = raw.code
    abs_path = code.co_filename
    frame: dict[str, Any] = {
        "filename": relative_filename(raw.module, abs_path),
        "abs_path": abs_path,
        "module": raw.module,
        "function": code.co_qualname,
        "lineno": raw.lineno,
    }
    col = column(code, raw.lasti)
    if col is not None:
        frame["colno"] = col
    frame["in_app"] = rules.is_in_app(raw.module, abs_path)
    lines = linecache.getlines(abs_path) if not abs_path.startswith("<") else []
    idx = raw.lineno - 1
    if 0 <= idx < len(lines):
        s = scrub_line or _same
        frame["context_line"] = s(lines[idx].strip("\r\n"))
        if context_lines:
            frame["pre_context"] = [
                s(ln.strip("\r\n")) for ln in lines[max(0, idx - context_lines) : idx]
            ]
            frame["post_context"] = [
                s(ln.strip("\r\n")) for ln in lines[idx + 1 : idx + 1 + context_lines]
            ]
    else:
        frame["context_line"] = None
    return frame


def _same(s: str) -> str:
    return s


FrameCache = dict[tuple[Any, ...], dict[str, Any]]
FRAME_CACHE_SIZE = 2048


def build_frame(
    raw: RawFrame,
    rules: InAppRules,
    context_lines: int,
    cache: FrameCache | None = None,
    scrub_line: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """A fresh frame dict. With ``cache`` (bounded; cleared when full) the fixed part is
    computed once per (code object, last instruction, module); its context lists are
    shared between events, so they are replaced, never mutated in place."""
    if cache is None:
        frame = frame_template(raw, rules, context_lines, scrub_line)
    else:
        key = (raw.code, raw.lasti, raw.lineno, raw.module)
        template = cache.get(key)
        if template is None:
            template = frame_template(raw, rules, context_lines, scrub_line)
            if len(cache) >= FRAME_CACHE_SIZE:
                cache.clear()
            cache[key] = template
        frame = template.copy()
    if raw.vars is not None:
        frame["vars"] = raw.vars
    return frame


def build_exception_values(
    chain: list[RawException],
    mechanism: dict[str, Any],
    rules: InAppRules,
    context_lines: int,
    cache: FrameCache | None = None,
    scrub_line: Callable[[str], str] | None = None,
) -> list[dict[str, Any]]:
    return [
        {
            "type": exc.type,
            "value": exc.value,
            "module": exc.module,
            "mechanism": dict(mechanism),
            "stacktrace": {
                "frames": [
                    build_frame(f, rules, context_lines, cache, scrub_line) for f in exc.frames
                ]
            },
        }
        for exc in chain
    ]


def innermost_in_app(values: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The innermost in-app frame of the raised exception (or its innermost frame)."""
    if not values:
        return None
    frames = values[-1]["stacktrace"]["frames"]
    for f in reversed(frames):
        if f.get("in_app"):
            return f
    return frames[-1] if frames else None
