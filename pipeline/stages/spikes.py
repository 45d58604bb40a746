"""Baselines, spikes, thresholds and sustained error rates (pure, over minute rings).

Spike rule for a key (a fingerprint or a service), evaluated when an event lands in minute
``m`` and not late:

    window   W = count of minutes m-s+1 .. m          (hopping, s = spike_window minutes)
    baseline B = mean of the k previous non-overlapping windows of s minutes before it
    spike  ⇔  W >= min_count  and  W >= multiplier × B
              and the key was first seen before the baseline started (a full history)

The k windows (defaults: s = 5, k = 12: the previous hour) give mean and standard deviation;
the deviation is reported with the alert so a reader can judge it, the rule uses the mean.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pipeline.stages.windows import Ring, hopping_window, previous_window_counts, ring_sum


@dataclass(frozen=True, slots=True)
class Baseline:
    mean: float
    stdev: float
    windows: int


def baseline(counts: list[int]) -> Baseline:
    n = len(counts)
    if not n:
        return Baseline(0.0, 0.0, 0)
    mean = sum(counts) / n
    var = sum((c - mean) ** 2 for c in counts) / n
    return Baseline(mean, math.sqrt(var), n)


def is_spike(count: int, base: float, *, min_count: int, multiplier: float) -> bool:
    return count >= min_count and count >= multiplier * base


@dataclass(frozen=True, slots=True)
class SpikeCheck:
    spiking: bool
    window_start: int  # minute index
    count: int
    baseline: Baseline  # complete (mean, stdev, windows) when spiking; alerts report it


def check_spike(
    ring: Ring,
    minute: int,
    first_seen_minute: int,
    *,
    window: int,
    history: int,
    min_count: int,
    multiplier: float,
) -> SpikeCheck:
    first, last = hopping_window(minute, window)
    count = ring_sum(ring, first, last)
    if count < min_count:  # cheap exit: the common case costs one sum
        return SpikeCheck(False, first, count, Baseline(0.0, 0.0, 0))
    # no full history, never a spike: the key must be older than the baseline's first minute
    # (first seen during it, that minute holds only part of the key's rate and the baseline
    # reads low: a new issue's first full minute would be a "spike" of its partial first one)
    if first_seen_minute >= first - window * history:
        return SpikeCheck(False, first, count, Baseline(0.0, 0.0, 0))
    counts = previous_window_counts(ring, first, window, history)
    if count < multiplier * (sum(counts) / len(counts) if counts else 0.0):
        # not a spike: the deviation (reported with spikes only) is not computed
        return SpikeCheck(False, first, count, Baseline(sum(counts) / len(counts), 0.0, 0))
    base = baseline(counts)
    spiking = is_spike(count, base.mean, min_count=min_count, multiplier=multiplier)
    return SpikeCheck(spiking, first, count, base)


# --- threshold rules -----------------------------------------------------------------------
_RULE = re.compile(r"^\s*(events|users)\s*>\s*(\d+)\s*/\s*(\d+)\s*m\s*$")


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    metric: str  # "events" | "users"
    limit: int  # fires when the window has more than this
    minutes: int

    @property
    def name(self) -> str:
        return f"{self.metric}>{self.limit}/{self.minutes}m"


def parse_threshold_rules(text: str) -> tuple[ThresholdRule, ...]:
    """``"events>500/5m; users>50/10m"`` → rules. Raises ValueError naming the bad part."""
    rules = []
    for part in filter(None, (p.strip() for p in text.replace(",", ";").split(";"))):
        match = _RULE.match(part)
        if not match:
            raise ValueError(f"bad threshold rule {part!r}: expected events>N/Mm or users>N/Mm")
        rules.append(ThresholdRule(match[1], int(match[2]), int(match[3])))
    return tuple(rules)


def events_in_last(ring: Ring, minute: int, minutes: int) -> int:
    first, last = hopping_window(minute, minutes)
    return ring_sum(ring, first, last)


def users_window_start(minute: int, minutes: int) -> int:
    """Users rules count distinct users per tumbling window of ``minutes`` (one HLL each)."""
    return minute - minute % minutes


# --- sustained error rate ------------------------------------------------------------------
def sustained_rate(ring: Ring, minute: int, *, per_minute: int, minutes: int) -> int | None:
    """The smallest per-minute count of the last ``minutes`` minutes when every one of them
    reached ``per_minute``; None otherwise."""
    lows = [ring_sum(ring, m, m) for m in range(minute - minutes + 1, minute + 1)]
    low = min(lows)
    return low if low >= per_minute else None
