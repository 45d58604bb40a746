"""Abuse limits. Pure: the clock is passed in.

* ``KeyRateLimiter``: a token bucket per DSN key, refilled at ``rate`` events per second up
  to ``burst``; an envelope costs its number of events (sessions, client reports and other
  items cost nothing). Over the limit -> 429 with ``Retry-After`` and Sentry's
  ``X-Sentry-Rate-Limits: <seconds>:<categories>:<scope>:<reason>`` so SDKs back off.
* ``check_json``: nesting depth and the length of every string and key of a parsed event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# the data categories an error event counts under in Sentry's SDKs
EVENT_CATEGORIES = "error;default"
REASON_CODE = "key_rate_limit"


class LimitExceeded(ValueError):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass(frozen=True, slots=True)
class RateLimited:
    retry_after: int  # whole seconds, >= 1

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            "X-Sentry-Rate-Limits": f"{self.retry_after}:{EVENT_CATEGORIES}:key:{REASON_CODE}",
        }


class KeyRateLimiter:
    """Token buckets per key. ``rate == 0`` turns the limit off. Buckets of keys that
    have been full for a while are forgotten (bounded memory under many keys)."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = float(rate)
        self.burst = float(max(burst, 1))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def acquire(self, key: str, cost: int, now: float) -> RateLimited | None:
        """Take ``cost`` tokens, or say how long until there would be enough."""
        if self.rate <= 0 or cost <= 0:
            return None
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate) if now > at else tokens
        if tokens >= cost:
            self._store(key, tokens - cost, now)
            return None
        self._store(key, tokens, now)
        if cost > self.burst:
            wait = (self.burst - tokens) / self.rate  # never enough: ask for a full bucket
        else:
            wait = (cost - tokens) / self.rate
        return RateLimited(max(1, math.ceil(wait)))

    def _store(self, key: str, tokens: float, now: float) -> None:
        buckets = self._buckets
        if key not in buckets and len(buckets) >= self.max_keys:
            full_after = self.burst / self.rate
            for k in [k for k, (t, at) in buckets.items() if now - at >= full_after]:
                del buckets[k]
            if len(buckets) >= self.max_keys:
                buckets.pop(next(iter(buckets)))
        buckets[key] = (tokens, now)


def check_json(value: Any, max_depth: int, max_chars: int) -> None:
    """Raise ``LimitExceeded`` when ``value`` nests deeper than ``max_depth`` (400) or holds a
    string or key longer than ``max_chars`` (413). Iterative: no recursion limit to hit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if node.__class__ is str:
            if len(node) > max_chars:
                raise LimitExceeded(
                    413, "field_too_large", f"a string is over {max_chars} characters"
                )
            continue
        if node.__class__ is dict:
            if depth > max_depth:
                raise LimitExceeded(400, "json_too_deep", f"JSON nests deeper than {max_depth}")
            for k, v in node.items():
                if len(k) > max_chars:
                    raise LimitExceeded(
                        413, "field_too_large", f"a key is over {max_chars} characters"
                    )
                if v.__class__ is dict or v.__class__ is list:
                    push((v, depth + 1))
                elif v.__class__ is str and len(v) > max_chars:
                    raise LimitExceeded(
                        413, "field_too_large", f"a string is over {max_chars} characters"
                    )
        elif node.__class__ is list:
            if depth > max_depth:
                raise LimitExceeded(400, "json_too_deep", f"JSON nests deeper than {max_depth}")
            for v in node:
                if v.__class__ is dict or v.__class__ is list or v.__class__ is str:
                    push((v, depth + 1))
