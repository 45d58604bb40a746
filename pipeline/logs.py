"""Logging: structured JSON lines (for machines) or plain text (for a terminal).

One handler on the root logger; faust's and mode's loggers propagate to it (the worker starts
faust with ``override_logging=False``, so mode never installs its own handlers, colours or
stdout redirection). Context rides on records as ``extra=`` fields — e.g. ``fingerprint``,
``topic``, ``partition``, ``offset`` — JSON lines carry them as keys, plain lines append
``key=value``. ``with_context(log, partition=3)`` returns an adapter that adds them to every
record.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
}
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
QUIET_LOGGERS = ("aiokafka", "faust", "mode", "kafka")


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(_context(record))  # context passed with extra={...}
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class PlainFormatter(logging.Formatter):
    """The classic one-line format, with ``extra=`` context appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context(record)
        if context:
            pairs = " ".join(f"{k}={v}" for k, v in context.items())
            first, nl, rest = line.partition("\n")  # keep tracebacks below the context
            line = f"{first} [{pairs}]{nl}{rest}"
        return line


class ContextAdapter(logging.LoggerAdapter):
    """Adds fixed context to every record; per-call ``extra=`` wins on a clash."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def with_context(logger: logging.Logger, **context: Any) -> ContextAdapter:
    return ContextAdapter(logger, context)


def dead_letter_context(record: Mapping[str, Any]) -> dict[str, Any]:
    """Log context of a dead-letter record: its reason and the source partition/offset."""
    source = record.get("source") or {}
    context = {"reason": record.get("reason", "")}
    for key in ("topic", "partition", "offset"):
        if key in source:
            context[key] = source[key]
    return context


def resolve_format(log_format: str, stream: Any = None) -> str:
    if log_format != "auto":
        return log_format
    stream = stream if stream is not None else sys.stderr
    return "plain" if getattr(stream, "isatty", lambda: False)() else "json"


def configure_logging(settings: Any, stream: Any = None) -> None:
    """Install the one handler on the root logger (replacing any others)."""
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    if resolve_format(settings.log_format, stream) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in QUIET_LOGGERS:
        logger = logging.getLogger(noisy)
        logger.handlers[:] = []  # anything a library attached: propagate to ours instead
        logger.propagate = True
        logger.setLevel(max(logging.WARNING, root.level))
