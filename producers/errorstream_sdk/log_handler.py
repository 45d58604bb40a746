"""``logging`` integration: records at ``event_level`` (ERROR) and above become events
(with their ``exc_info`` as the exception), records at ``breadcrumb_level`` (INFO) and above
become breadcrumbs. Records from the SDK itself and from aiokafka are ignored, so a broker
outage cannot feed back into the pipeline."""

from __future__ import annotations

import logging

from errorstream_sdk import api

_IGNORED = ("errorstream_sdk", "aiokafka", "kafka")

_LEVELS = {
    logging.CRITICAL: "fatal",
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "info",
    logging.DEBUG: "debug",
}


def level_name(levelno: int) -> str:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _LEVELS[threshold]
    return "debug"


class ErrorstreamHandler(logging.Handler):
    def __init__(self, event_level: int = logging.ERROR, breadcrumb_level: int = logging.INFO):
        super().__init__(level=min(event_level, breadcrumb_level))
        self.event_level = event_level
        self.breadcrumb_level = breadcrumb_level

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = record.name
            if name.split(".", 1)[0] in _IGNORED:
                return
            client = api.get_client()
            if client is not None and record.thread == getattr(
                client.transport, "thread_ident", None
            ):
                return
            message = record.getMessage()
            level = level_name(record.levelno)
            if record.levelno >= self.event_level:
                mechanism = {"type": "logging", "handled": True}
                exc = record.exc_info[1] if record.exc_info else None
                if exc is not None:
                    api.capture_exception(
                        exc, level=level, mechanism=mechanism, message=message, logger=name
                    )
                else:
                    api.capture_message(message, level=level, logger=name)
            if record.levelno >= self.breadcrumb_level:
                api.add_breadcrumb(message=message, category=name, level=level, type="log")
        except Exception:
            pass
