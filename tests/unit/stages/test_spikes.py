import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.stages.spikes import (
    baseline,
    check_spike,
    is_spike,
    parse_threshold_rules,
    sustained_rate,
)
from pipeline.stages.windows import new_ring, ring_add


def ring_from(counts_by_minute, length=70):
    ring = new_ring()
    for minute, n in sorted(counts_by_minute.items()):
        if n:
            ring = ring_add(ring, minute, length, n)
    return ring


def test_baseline_mean_and_deviation():
    b = baseline([2, 4, 4, 4, 5, 5, 7, 9])
    assert b.mean == 5 and b.stdev == 2 and b.windows == 8
    assert baseline([]).mean == 0


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=24))
def test_baseline_properties(counts):
    b = baseline(counts)
    assert min(counts) <= b.mean <= max(counts)
    assert b.stdev >= 0 and math.isfinite(b.stdev)


def test_spike_rule():
    assert is_spike(30, 5, min_count=20, multiplier=5)
    assert not is_spike(24, 5, min_count=20, multiplier=5)  # < 5 x baseline
    assert not is_spike(19, 0, min_count=20, multiplier=5)  # < min_count


def test_check_spike_uses_the_previous_hour():
    history = {m: 1 for m in range(100, 165)}  # one per minute for an hour: 5 per window
    history[169] = 40
    ring = ring_from(history)
    check = check_spike(ring, 169, 100, window=5, history=12, min_count=20, multiplier=5)
    assert check.spiking and check.count == 40 and check.baseline.mean == 5
    assert check.window_start == 165


def test_no_spike_without_a_full_history():
    ring = ring_from({150: 1, 169: 40})
    check = check_spike(ring, 169, 150, window=5, history=12, min_count=20, multiplier=5)
    assert not check.spiking


def test_no_spike_when_first_seen_inside_the_baseline():
    # one-minute windows, one baseline window: an issue first seen at second 55 of minute 100
    # has 5 events there and its usual 60 in minute 101; minute 101 is no spike of minute 100
    ring = ring_from({100: 5, 101: 60})
    check = check_spike(ring, 101, 100, window=1, history=1, min_count=20, multiplier=5)
    assert not check.spiking and check.count == 60
    # a minute later the baseline (101) is a whole minute of the issue: a real burst counts
    ring = ring_from({100: 5, 101: 60, 102: 400})
    check = check_spike(ring, 102, 100, window=1, history=1, min_count=20, multiplier=5)
    assert check.spiking and check.count == 400 and check.baseline.mean == 60
    # the same holds for hopping windows: first seen in the baseline's first minute is too new
    history = {m: 1 for m in range(105, 165)}
    history[169] = 40
    ring = ring_from(history)
    assert not check_spike(ring, 169, 105, window=5, history=12, min_count=20, multiplier=5).spiking
    assert check_spike(ring, 169, 104, window=5, history=12, min_count=20, multiplier=5).spiking


def test_threshold_rules_parse():
    rules = parse_threshold_rules("events>500/5m; users > 50/10m")
    assert [(r.metric, r.limit, r.minutes) for r in rules] == [
        ("events", 500, 5),
        ("users", 50, 10),
    ]
    with pytest.raises(ValueError, match="bad threshold rule"):
        parse_threshold_rules("events>=5")


def test_sustained_rate_needs_every_minute():
    ring = ring_from({10: 5, 11: 6, 12: 5})
    assert sustained_rate(ring, 12, per_minute=5, minutes=3) == 5
    assert sustained_rate(ring, 12, per_minute=6, minutes=3) is None
    assert sustained_rate(ring, 13, per_minute=1, minutes=3) is None
