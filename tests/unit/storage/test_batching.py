"""Size-OR-time batching: batch sizes sum to the input, none exceeds the limit, order kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.sinks.batching import Batcher, Message
from pipeline.sinks.clickhouse import split_rejected
from pipeline.storage.backend import ClickHouseUnavailable, RowsRejected


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=2), max_size=300),
    max_size=st.integers(min_value=1, max_value=50),
    max_time=st.floats(min_value=0.01, max_value=1),
)
def test_batch_sizes_sum_to_the_input(gaps, max_size, max_time):
    batcher = Batcher(max_size, max_time)
    batches, now = [], 0.0
    for i, gap in enumerate(gaps):
        now += gap
        if (done := batcher.take_if_due(now)) is not None:
            batches.append(done)
        assert batcher.room() >= 1  # the sink never polls into a full batch
        batcher.add(Message("t", i % 3, i, b""), now)
        if (done := batcher.take_if_due(now)) is not None:
            batches.append(done)
    if (done := batcher.take()) is not None:
        batches.append(done)
    assert sum(len(b) for b in batches) == len(gaps)
    assert all(1 <= len(b) <= max_size for b in batches)
    offsets = [m.offset for b in batches for m in b.messages]
    assert offsets == list(range(len(gaps)))
    for b in batches:  # the commit position per partition is one past its last message
        for (_topic, partition), nxt in b.offsets.items():
            assert nxt == max(m.offset for m in b.messages if m.partition == partition) + 1


def test_batch_is_due_by_time_even_when_small():
    batcher = Batcher(100, 0.5)
    batcher.add(Message("t", 0, 0, b""), 10.0)
    assert batcher.take_if_due(10.4) is None
    assert batcher.wait_time(10.4) == 0.5 - 0.4 or abs(batcher.wait_time(10.4) - 0.1) < 1e-9
    assert len(batcher.take_if_due(10.5)) == 1


@given(rows=st.lists(st.integers(0, 1000), max_size=200), bad=st.sets(st.integers(0, 1000)))
def test_bisection_isolates_exactly_the_rejected_rows(rows, bad):
    stored = []

    def insert(chunk):
        if any(r in bad for r in chunk):
            raise RowsRejected("VIOLATED_CONSTRAINT")
        stored.extend(chunk)
        return len(chunk)

    if not rows:
        return
    inserted, rejected = split_rejected(insert, rows)
    assert inserted == len(stored) == len([r for r in rows if r not in bad])
    assert [r for r, _ in rejected] == [r for r in rows if r in bad]


def test_bisection_does_not_blame_rows_for_an_unavailable_engine():
    def insert(chunk):
        raise ClickHouseUnavailable("UNKNOWN_TABLE")

    try:
        split_rejected(insert, [1, 2, 3])
    except ClickHouseUnavailable:
        return
    raise AssertionError("expected ClickHouseUnavailable")


def test_a_batch_with_an_urgent_message_is_due_at_once():
    batcher = Batcher(max_size=1000, max_time=5.0)
    batcher.add(Message("t", 0, 0, b"{}"), now=0.0)
    assert not batcher.due(0.1) and batcher.wait_time(0.1) > 4
    batcher.add(Message("t", 0, 1, b'{"_kind":"issue_state"}'), now=0.1, urgent=True)
    assert batcher.due(0.1) and batcher.wait_time(0.1) == 0.0
    batch = batcher.take()
    assert batch is not None and len(batch.messages) == 2 and batch.urgent
    assert not batcher.due(0.2)  # the next batch starts calm
