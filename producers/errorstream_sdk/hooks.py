"""Uncaught exceptions: ``sys.excepthook``, ``threading.excepthook`` and an asyncio loop's
exception handler. Each captures (unhandled) and then chains to what was installed before."""

from __future__ import annotations

import asyncio
import sys
import threading
from types import TracebackType
from typing import Any

from errorstream_sdk import api

_installed_sys: Any = None
_installed_threading: Any = None


def _mechanism(kind: str) -> dict[str, Any]:
    return {"type": kind, "handled": False}


def install_excepthooks() -> None:
    global _installed_sys, _installed_threading
    if sys.excepthook is not _installed_sys:
        previous = sys.excepthook

        def errorstream_excepthook(
            exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
        ) -> None:
            try:
                if not issubclass(exc_type, KeyboardInterrupt):
                    api.capture_exception(exc, level="fatal", mechanism=_mechanism("excepthook"))
            except Exception:
                pass
            previous(exc_type, exc, tb)

        sys.excepthook = _installed_sys = errorstream_excepthook

    if threading.excepthook is not _installed_threading:
        previous_t = threading.excepthook

        def errorstream_threading_excepthook(args: Any) -> None:
            try:
                if args.exc_value is not None and not issubclass(args.exc_type, SystemExit):
                    api.capture_exception(
                        args.exc_value,
                        mechanism=_mechanism("threading"),
                        contexts={"thread": {"name": getattr(args.thread, "name", None)}},
                    )
            except Exception:
                pass
            previous_t(args)

        threading.excepthook = _installed_threading = errorstream_threading_excepthook


def install_asyncio_handler(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Capture exceptions that reach ``loop``'s exception handler (unretrieved task
    exceptions, failing callbacks), then defer to the previous handler or the default."""
    loop = loop or asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    if getattr(previous, "_errorstream", False):
        return

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        try:
            exc = context.get("exception")
            if isinstance(exc, BaseException):
                api.capture_exception(
                    exc,
                    mechanism=_mechanism("asyncio"),
                    contexts={"asyncio": {"message": str(context.get("message", ""))}},
                )
            else:
                api.capture_message(str(context.get("message", "asyncio error")), level="error")
        except Exception:
            pass
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    handler._errorstream = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
