from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.stages.windows import (
    hopping_window,
    is_late,
    minute_of,
    new_ring,
    previous_windows,
    ring_add,
    ring_count,
    ring_sum,
)


def test_minute_of_floors_to_the_minute():
    assert minute_of(120.0) == 2
    assert minute_of(179.999) == 2


def test_ring_counts_per_minute_and_shifts():
    ring = new_ring()
    for minute in [10, 10, 11, 13, 12]:
        ring = ring_add(ring, minute, 5)
    assert [ring_count(ring, m) for m in range(9, 15)] == [0, 2, 1, 1, 1, 0]
    ring = ring_add(ring, 20, 5)  # shifts 10..13 out of the 5-minute ring
    assert ring_sum(ring, 0, 30) == 1


def test_minute_older_than_the_ring_is_not_added():
    ring = ring_add(new_ring(), 100, 3)
    assert ring_add(ring, 90, 3) is ring


def test_windows():
    assert hopping_window(10, 5) == (6, 10)
    assert previous_windows(6, 5, 2) == [(1, 5), (-4, 0)]


def test_late_uses_the_watermark_and_grace():
    assert not is_late(100, None, 60)
    assert not is_late(50, 100, 60)
    assert is_late(39, 100, 60)


@given(st.lists(st.integers(0, 200), max_size=300), st.integers(1, 80))
def test_ring_sum_equals_counts_of_minutes_still_in_the_ring(minutes, length):
    ring = new_ring()
    added = []
    for m in minutes:
        before = ring
        ring = ring_add(ring, m, length)
        if ring is not before or before["m"] is None:
            added.append(m)
    newest = ring["m"]
    if newest is None:
        return
    expected = sum(1 for m in added if newest - m < length)
    assert ring_sum(ring, newest - length + 1, newest) == expected
    assert all(c >= 0 for c in ring["r"]) and len(ring["r"]) == length


@settings(max_examples=300, deadline=None)
@given(
    newest=st.one_of(st.none(), st.integers(0, 200)),
    counts=st.lists(st.integers(0, 9), min_size=1, max_size=80),
    first=st.integers(-50, 300),
    size=st.integers(1, 7),
    count=st.integers(1, 14),
)
def test_previous_window_counts_matches_window_by_window_sums(newest, counts, first, size, count):
    from pipeline.stages.windows import previous_window_counts, previous_windows, window_counts

    ring = {"m": newest, "r": counts if newest is not None else []}
    expected = window_counts(ring, previous_windows(first, size, count))
    assert previous_window_counts(ring, first, size, count) == expected
