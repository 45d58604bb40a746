"""Host protection, decided in the calling thread before anything is queued:
level sampling, a token bucket per error key, and a dedupe of repeated captures."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping


class LevelSampler:
    def __init__(self, rates: Mapping[str, float], rng: Callable[[], float]) -> None:
        self._rates = dict(rates)
        self._rng = rng

    def keep(self, level: str) -> bool:
        rate = self._rates.get(level, 1.0)
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        return self._rng() < rate


class TokenBucketLimiter:
    """``burst`` tokens per key, refilled at ``per_second``; least recently used keys are
    forgotten beyond ``max_keys`` so a storm of distinct errors cannot grow memory."""

    def __init__(
        self, burst: int, per_second: float, clock: Callable[[], float], max_keys: int = 10_000
    ) -> None:
        self.burst = float(burst)
        self.per_second = per_second
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.popitem(last=False)
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        self._buckets.move_to_end(key)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.per_second)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False


class Deduper:
    """Drops a capture identical to an earlier one: the same exception object captured
    again (e.g. by the decorator and then by ``sys.excepthook`` as it propagates; marked
    with an attribute, so no reference to it is kept), or the same message at the same
    level from the same logger twice in a row."""

    MARK = "__errorstream_captured__"

    def __init__(self) -> None:
        self._last_exc_id: int | None = None
        self._last_msg: tuple[str, str, str | None] | None = None

    def seen_exception(self, exc: BaseException) -> bool:
        if getattr(exc, self.MARK, False):
            return True
        self._last_msg = None
        try:
            setattr(exc, self.MARK, True)
        except Exception:  # no __dict__: fall back to "same object as last time"
            if id(exc) == self._last_exc_id:
                return True
        self._last_exc_id = id(exc)
        return False

    def seen_message(self, message: str, level: str, logger: str | None) -> bool:
        key = (message, level, logger)
        if key == self._last_msg:
            return True
        self._last_msg = key
        self._last_exc_id = None
        return False
