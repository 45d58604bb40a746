"""Event-time window math over plain values (pure).

A *minute ring* is the per-minute count history of one key (a fingerprint or a service),
stored inside that key's table value as ``{"m": newest_minute, "r": [count(m), count(m-1), ...]}``
with a fixed length. Minutes are integer minute indexes (``int(ts // 60)``).

Every window the stream rules need is a sum over a contiguous range of minutes of the ring:
tumbling minutes, hopping windows of ``size`` minutes advancing by one minute (spikes,
thresholds), and the previous hour's non-overlapping windows (baselines). One plain list per
key, one table write per event, exact integer counts, and trivially testable.
"""

from __future__ import annotations

from typing import Any

Ring = dict[str, Any]


def minute_of(ts: float) -> int:
    """The event-time minute index of an epoch timestamp."""
    return int(ts // 60)


def new_ring() -> Ring:
    return {"m": None, "r": []}


def is_late(ts: float, watermark: float | None, grace: float) -> bool:
    """Late = older than the key's watermark (newest event time seen) minus the grace."""
    return watermark is not None and ts < watermark - grace


def ring_add(ring: Ring, minute: int, length: int, n: int = 1) -> Ring:
    """A new ring with ``n`` added to ``minute``; minutes that fell off the ring are dropped.

    A minute older than the ring's span is not added (the ring is returned unchanged).
    """
    newest, counts = ring["m"], ring["r"]
    if newest is None:
        return {"m": minute, "r": [n] + [0] * (length - 1)}
    if minute > newest:
        shift = minute - newest
        counts = ([0] * min(shift, length) + counts)[:length]
        counts[0] += n
        return {"m": minute, "r": counts}
    age = newest - minute
    if age >= length:
        return ring
    counts = list(counts)
    counts[age] += n
    return {"m": newest, "r": counts}


def ring_count(ring: Ring, minute: int) -> int:
    newest = ring["m"]
    if newest is None:
        return 0
    age = newest - minute
    return ring["r"][age] if 0 <= age < len(ring["r"]) else 0


def ring_sum(ring: Ring, first: int, last: int) -> int:
    """Sum of the counts of minutes ``first..last`` inclusive (zero outside the ring)."""
    newest, counts = ring["m"], ring["r"]
    if newest is None or last < first:
        return 0
    lo = max(newest - last, 0)
    hi = min(newest - first, len(counts) - 1)
    return sum(counts[lo : hi + 1]) if lo <= hi else 0


def hopping_window(minute: int, size: int) -> tuple[int, int]:
    """The hopping window of ``size`` minutes (hop = 1 minute) that ends with ``minute``."""
    return minute - size + 1, minute


def previous_windows(first: int, size: int, count: int) -> list[tuple[int, int]]:
    """The ``count`` non-overlapping windows of ``size`` minutes right before minute ``first``,
    newest first: the baseline history of the window starting at ``first``."""
    return [(first - size * (i + 1), first - size * i - 1) for i in range(count)]


def window_counts(ring: Ring, windows: list[tuple[int, int]]) -> list[int]:
    return [ring_sum(ring, a, b) for a, b in windows]


def previous_window_counts(ring: Ring, first: int, size: int, count: int) -> list[int]:
    """``window_counts(ring, previous_windows(first, size, count))`` in one slice of the
    ring: the counts of the ``count`` windows of ``size`` minutes before minute ``first``,
    newest first."""
    newest, counts = ring["m"], ring["r"]
    if newest is None:
        return [0] * count
    start = newest - first + 1  # ring index of minute first - 1
    span = size * count
    if start >= 0:
        seg = counts[start : start + span]
    else:  # the ring's newest minute is older than first - 1
        seg = [0] * min(-start, span) + counts[: max(0, span + start)]
    if len(seg) < span:
        seg = seg + [0] * (span - len(seg))
    return [sum(seg[i : i + size]) for i in range(0, span, size)]
