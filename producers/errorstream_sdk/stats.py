"""Counters for every capture's fate. Invariant once the SDK is idle:
``captured == sent + sum(dropped.values())``."""

from __future__ import annotations

import threading
from typing import Any

DROP_REASONS = (
    "sampled",
    "rate_limited",
    "queue_full",
    "duplicate",
    "oversize",
    "send_failed",
    "internal_error",
)


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.captured = 0
        self.sent = 0
        self.truncated = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)

    def count_captured(self) -> None:
        with self._lock:
            self.captured += 1

    def count_sent(self, n: int = 1) -> None:
        with self._lock:
            self.sent += n

    def count_truncated(self, n: int = 1) -> None:
        with self._lock:
            self.truncated += n

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += n

    def snapshot(self, queue_depth: int, in_flight: int = 0) -> dict[str, Any]:
        with self._lock:
            return {
                "captured": self.captured,
                "sent": self.sent,
                "dropped": dict(self.dropped),
                "queue_depth": queue_depth,
                "in_flight": in_flight,
                "truncated": self.truncated,
            }
