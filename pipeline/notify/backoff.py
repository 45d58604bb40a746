"""Retry schedule of a delivery: exponential backoff with jitter, bounded in count and delay.

Attempt ``n`` (1-based) that failed is followed by a wait of

    base(n) = min(maximum, initial * 2 ** (n - 1))
    wait(n) = base(n) * (1 - jitter) + uniform(0, base(n) * jitter)

so waits never exceed ``maximum`` and never fall below ``(1 - jitter)`` of the exponential
step; the jitter spreads retries of many routes that failed together. A receiver's
``Retry-After`` (seconds) replaces the computed wait when it is longer, still capped at
``maximum``. After ``max_attempts`` attempts the delivery is dead-lettered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    max_attempts: int = 5
    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 0.5

    def base(self, attempt: int) -> float:
        return min(self.maximum, self.initial * 2 ** (attempt - 1))

    def delay(
        self,
        attempt: int,
        rng: random.Random | None = None,
        retry_after: float | None = None,
    ) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = self.base(attempt)
        draw = (rng or random).random()
        wait = base * (1 - self.jitter) + draw * base * self.jitter
        if retry_after is not None and retry_after > wait:
            wait = retry_after
        return min(self.maximum, wait)

    def schedule(self, rng: random.Random | None = None) -> list[float]:
        """The waits between the ``max_attempts`` attempts (one fewer than attempts)."""
        return [self.delay(n, rng) for n in range(1, self.max_attempts)]


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds; HTTP dates and junk count as absent."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
