"""The client: the capture pipeline, split at the queue.

    calling thread:  dedupe -> sample by level -> token bucket -> (queue full?) -> copy frames
                     -> queue
    SDK thread:      build event (frames, context lines, in_app) -> scrub -> fit size -> send

Every capture is counted once as ``captured`` and ends as ``sent`` or one drop reason.
Capturing never raises into host code: any internal error is counted as ``internal_error``.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from errorstream_sdk.capture import extract_chain, safe_str
from errorstream_sdk.config import LEVELS, Settings
from errorstream_sdk.event import Capture, EventBuilder, message_key
from errorstream_sdk.frames import InAppRules
from errorstream_sdk.limits import Deduper, LevelSampler, TokenBucketLimiter
from errorstream_sdk.scope import get_scope
from errorstream_sdk.scrub import Scrubber
from errorstream_sdk.stats import Stats
from errorstream_sdk.transport import KafkaTransport
from errorstream_sdk.truncate import encode_within

_LEVEL_ALIASES = {"critical": "fatal", "warn": "warning", "exception": "error"}
_KNOWN = ("fingerprint", "tags", "user", "request", "contexts", "logger", "message")

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


# event ids: random version-4 UUIDs (32 hex digits) from a private generator seeded from
# os.urandom, re-seeded in forked children; uuid.uuid4() costs a syscall per event.
_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)
_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


def new_event_id() -> str:
    return "%032x" % (_ids.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)


def normalize_level(level: Any) -> str:
    if type(level) is str and level in LEVELS:
        return level
    lv = str(level).lower()
    lv = _LEVEL_ALIASES.get(lv, lv)
    return lv if lv in LEVELS else "error"


def _raise_site(exc: BaseException) -> str:
    """Rate-limit key: exception type + innermost frame location (cheap: no extraction)."""
    tb = exc.__traceback__
    if tb is None:
        return type(exc).__qualname__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{type(exc).__qualname__}@{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


class Client:
    def __init__(self, settings: Settings, transport_factory: Callable[..., Any] = KafkaTransport):
        s = self.settings = settings
        self.stats = Stats()
        self._lock = threading.Lock()
        self._sampler = LevelSampler(s.sample_rates, s.rng)
        self._limiter = TokenBucketLimiter(
            s.rate_limit_burst, s.rate_limit_per_second, s.clock, s.rate_limit_max_keys
        )
        self._deduper = Deduper() if s.dedupe else None
        self.scrubber = Scrubber(s.scrub_keys, s.scrub_patterns)
        self.builder = EventBuilder(
            s.service,
            s.environment,
            s.release,
            InAppRules(s.in_app_include, s.in_app_exclude),
            s.context_lines,
            scrub_line=self.scrubber.scrub_string,
        )
        self.transport = transport_factory(s, self.process, self.stats)
        self.closed = False

    def start(self) -> Client:
        self.transport.start()
        return self

    # -- calling thread ------------------------------------------------------------------
    def capture_exception(
        self,
        exc: BaseException | ExcInfo | None = None,
        *,
        level: str = "error",
        mechanism: dict[str, Any] | None = None,
        **context: Any,
    ) -> str | None:
        """Queue an event for ``exc`` (default: the exception being handled). Returns its
        ``event_id``, or None when there was nothing to capture or it was dropped."""
        try:
            if exc is None:
                exc = sys.exc_info()[1]
            elif isinstance(exc, tuple):
                exc = exc[1]
            if exc is None or self.closed:
                return None
            self.stats.count_captured()
            level = normalize_level(level)
            with self._lock:
                if self._deduper is not None and self._deduper.seen_exception(exc):
                    self.stats.drop("duplicate")
                    return None
                if not self._sampler.keep(level):
                    self.stats.drop("sampled")
                    return None
                if not self._limiter.allow(_raise_site(exc)):
                    self.stats.drop("rate_limited")
                    return None
            if self.transport.full():  # do not walk a traceback only to drop it
                self.stats.drop("queue_full")
                return None
            chain = extract_chain(exc, self.settings.include_locals)
            return self._enqueue(level, chain, mechanism, None, context)
        except Exception:
            self._internal_error()
            return None

    def capture_message(self, message: str, level: str = "info", **context: Any) -> str | None:
        try:
            if self.closed:
                return None
            self.stats.count_captured()
            level = normalize_level(level)
            message = safe_str(message)
            logger = context.get("logger")
            with self._lock:
                if self._deduper is not None and self._deduper.seen_message(message, level, logger):
                    self.stats.drop("duplicate")
                    return None
                if not self._sampler.keep(level):
                    self.stats.drop("sampled")
                    return None
                if not self._limiter.allow(f"message@{logger}:{level}:{message[:200]}"):
                    self.stats.drop("rate_limited")
                    return None
            return self._enqueue(level, None, None, message, context)
        except Exception:
            self._internal_error()
            return None

    def _enqueue(
        self,
        level: str,
        chain: Any,
        mechanism: dict[str, Any] | None,
        message: str | None,
        context: dict[str, Any],
    ) -> str | None:
        scope = get_scope()
        if context:
            extra = {k: v for k, v in context.items() if k not in _KNOWN}
            contexts = context.get("contexts")
            if extra:
                contexts = {**(contexts or {}), "extra": extra}
            get = context.get
            user = get("user")
            cap = Capture(
                new_event_id(),
                time.time(),
                level,
                chain,
                mechanism,
                message if message is not None else get("message"),
                get("logger"),
                get("fingerprint"),
                scope.tags,
                get("tags"),
                dict(user) if user else scope.user,
                get("request") or scope.request,
                tuple(scope.breadcrumbs),
                contexts,
            )
        else:
            cap = Capture(
                new_event_id(),
                time.time(),
                level,
                chain,
                mechanism,
                message,
                None,
                None,
                scope.tags,
                None,
                scope.user,
                scope.request,
                tuple(scope.breadcrumbs) if scope.breadcrumbs else (),
                None,
            )
        if not self.transport.submit(cap):
            self.stats.drop("queue_full")
            return None
        return cap.event_id

    def _internal_error(self) -> None:
        try:
            self.stats.drop("internal_error")
        except Exception:
            pass
        return None

    # -- SDK thread ------------------------------------------------------------------------
    def process(self, cap: Capture) -> tuple[bytes, bytes] | None:
        event = self.builder.build(cap)
        self.scrubber.scrub_event(event, self.builder.contexts, source_scrubbed=True)
        data, truncated = encode_within(
            event, self.settings.max_event_bytes, self.settings.max_string_length
        )
        if truncated:
            self.stats.count_truncated()
        if data is None:
            self.stats.drop("oversize")
            return None
        return message_key(event), data

    # -- lifecycle ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot(self.transport.depth(), self.transport.in_flight())

    def flush(self, timeout: float = 2.0) -> bool:
        try:
            return bool(self.transport.flush(timeout))
        except Exception:
            self._internal_error()
            return False

    def close(self, timeout: float | None = None) -> None:
        if self.closed:
            return
        try:
            self.transport.close(self.settings.flush_timeout_s if timeout is None else timeout)
        except Exception:
            self._internal_error()
        self.closed = True
