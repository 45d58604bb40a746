"""Calendar-month spans of issue detail's users (pure: no engine)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline import queries


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    "moment, start, following",
    [
        (ts(2026, 11, 17, 5, 3), ts(2026, 11, 1), ts(2026, 12, 1)),
        (ts(2026, 12, 31, 23, 59), ts(2026, 12, 1), ts(2027, 1, 1)),
        (ts(2024, 2, 29, 12), ts(2024, 2, 1), ts(2024, 3, 1)),
        (ts(2026, 3, 1), ts(2026, 3, 1), ts(2026, 4, 1)),
    ],
)
def test_month_bounds(moment, start, following):
    assert queries.month_start(moment) == start
    assert queries.next_month(moment) == following


def test_whole_months_inside_the_range_are_read_as_months():
    lo, hi = ts(2026, 10, 20), ts(2027, 1, 10)
    records = (ts(2026, 10, 25, 8, 1), ts(2027, 1, 3, 10, 0))
    months, rest = queries.month_spans(lo, hi, records)
    assert months == [(ts(2026, 11, 1), ts(2026, 12, 1)), (ts(2026, 12, 1), ts(2027, 1, 1))]
    # the rest is cut to the records: nothing to read between lo and the first record
    assert rest == [(records[0], ts(2026, 11, 1)), (ts(2027, 1, 1), records[1])]


def test_a_month_reaching_outside_the_range_is_never_read_whole():
    # the records are inside the range, but there may be records of the issue outside it
    lo, hi = ts(2026, 11, 30, 23, 30), ts(2026, 12, 1, 0, 30)
    records = (ts(2026, 11, 30, 23, 35), ts(2026, 12, 1, 0, 20))
    assert queries.month_spans(lo, hi, records) == ([], [records])


def test_all_time_is_the_months_of_the_records():
    records = (ts(2026, 11, 4, 0, 0), ts(2026, 12, 3, 23, 59))
    months, rest = queries.month_spans(0, queries.ALL_TIME_END, records)
    assert months == [(ts(2026, 11, 1), ts(2026, 12, 1)), (ts(2026, 12, 1), ts(2027, 1, 1))]
    assert rest == []


def test_records_outside_the_range_read_nothing():
    assert queries.month_spans(
        ts(2026, 1, 1), ts(2026, 2, 1), (ts(2026, 3, 1), ts(2026, 4, 1))
    ) == (
        [],
        [],
    )
