"""Query helpers, insert-error classification, encoding, and the OpenAPI file."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline import queries
from pipeline.api import OPENAPI
from pipeline.storage.backend import (
    ClickHouseUnavailable,
    RowsRejected,
    _chdb_params,
    insert_error,
)
from pipeline.storage.encoding import ColumnEncoder
from pipeline.storage.migrate import load_migrations


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [(600, 60), (6 * 3600, 300), (86400, 900), (7 * 86400, 3600), (30 * 86400, 3 * 3600)],
)
def test_auto_bucket_keeps_at_most_240_points(seconds, bucket):
    assert queries.auto_bucket(seconds) == bucket
    assert seconds / bucket <= 240


def test_durations_and_time_ranges():
    assert queries.parse_duration("6h") == 21600
    assert queries.parse_duration("1.5d") == 129600
    with pytest.raises(ValueError, match="6x"):
        queries.parse_duration("6x")
    assert queries.time_range("6h", None, now=100_000) == (100_000 - 21600, 100_000)
    assert queries.time_range("50", "60", now=0) == (50.0, 60.0)
    with pytest.raises(ValueError, match="empty"):
        queries.time_range("60", "50")


DAY = 86400


def _tables(lo: int, hi: int, tiers=queries.TIERS) -> list[tuple[str, int, int]]:
    return [(t.table, a, z) for t, a, z in queries.spans(lo, hi, tiers)]


def test_spans_take_whole_days_then_whole_hours_then_minutes():
    d = 100 * DAY
    assert _tables(d - 3600 - 120, d + DAY + 3600 + 60) == [
        ("event_minutes", d - 3600 - 120, d - 3600),
        ("event_hours", d - 3600, d),
        ("event_days", d, d + DAY),
        ("event_hours", d + DAY, d + DAY + 3600),
        ("event_minutes", d + DAY + 3600, d + DAY + 3600 + 60),
    ]
    assert _tables(d, d + DAY) == [("event_days", d, d + DAY)]
    assert _tables(d + 60, d + 3000) == [("event_minutes", d + 60, d + 3000)]
    assert _tables(d + 120, d + 7200) == [
        ("event_minutes", d + 120, d + 3600),
        ("event_hours", d + 3600, d + 7200),
    ]
    assert _tables(d, d + DAY, (queries.MINUTES,)) == [("event_minutes", d, d + DAY)]
    assert queries.spans(d, d) == []


@pytest.mark.parametrize("lo", [0, 60, 3540, 86340, 86400 * 3 + 7260])
@pytest.mark.parametrize("length", [60, 3600, 5400, 86400, 90000, 3 * 86400 + 61 * 60])
def test_spans_cover_the_range_once_in_order(lo, length):
    parts = queries.spans(lo, lo + length)
    assert parts[0][1] == lo and parts[-1][2] == lo + length
    assert all(a[2] == b[1] for a, b in zip(parts, parts[1:], strict=False))
    assert all(lo_ % t.seconds == 0 and hi_ % t.seconds == 0 for t, lo_, hi_ in parts)


def test_rollups_answer_only_what_their_rows_hold():
    assert queries.usable_tiers({}) == queries.TIERS
    assert queries.usable_tiers({"fingerprint": "f", "service": "s", "level": ""}) == (
        queries.TIERS
    )
    for dim in ("level", "release", "environment"):
        assert queries.usable_tiers({dim: "x"}) == (queries.MINUTES,)
    # a timeline bucket must be a whole number of the table's periods
    assert queries.usable_tiers({}, 900) == (queries.MINUTES,)
    assert queries.usable_tiers({}, 3 * 3600) == (queries.HOURS, queries.MINUTES)
    assert queries.usable_tiers({}, DAY) == queries.TIERS


def test_minute_range_matches_minute_less_than_until():
    assert queries.minute_range(130.5, 180) == (120, 180)
    assert queries.minute_range(120, 180.2) == (120, 240)
    assert queries.minute_range(120, 239) == (120, 240)


def test_where_adds_only_the_filters_that_are_set():
    clause, params = queries.where({"service": "svc", "level": ""})
    assert "service = {service:String}" in clause and "level" not in clause
    assert params == {"service": "svc"}
    with pytest.raises(ValueError, match="unknown filter"):
        queries.where({"host": "x"})


def test_values_never_reach_the_sql_text():
    clause, params = queries.where({"fingerprint": "x' OR 1=1 --"})
    assert "OR 1=1" not in clause and params["fingerprint"] == "x' OR 1=1 --"
    assert _chdb_params({"a": ["it's", "b\\c"]}) == {"a": "['it\\'s','b\\\\c']"}


def test_stack_trace_extracts_frames():
    event = {
        "exception": {
            "values": [
                {"type": "E", "value": "v", "stacktrace": {"frames": [{"function": "f", "x": 1}]}}
            ]
        }
    }
    assert queries.stack_trace(event) == [
        {"type": "E", "value": "v", "module": None, "frames": [{"function": "f"}]}
    ]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Code: 469. DB::Exception: Constraint ... (VIOLATED_CONSTRAINT)", RowsRejected),
        ("Code: 60. DB::Exception: Table e does not exist. (UNKNOWN_TABLE)", ClickHouseUnavailable),
        (
            "Code: 242. DB::Exception: Table is in readonly mode (TABLE_IS_READ_ONLY)",
            ClickHouseUnavailable,
        ),
        ("connection refused", ClickHouseUnavailable),
    ],
)
def test_insert_errors_blame_rows_only_for_data_errors(message, kind):
    assert type(insert_error(RuntimeError(message))) is kind


def test_arrow_encoding_keeps_times_exact():
    enc = ColumnEncoder.for_types(
        [
            "DateTime64(3, 'UTC')",
            "LowCardinality(String)",
            "Map(LowCardinality(String), String)",
            "Array(LowCardinality(String))",
            "Nullable(DateTime64(3, 'UTC'))",
            "UInt64",
        ]
    )
    table = enc.arrow(
        ["t", "s", "m", "a", "n", "u"],
        [(1_700_000_000.123, "x", {"k": "v"}, ["a"], None, 2**63 - 1)],
    )
    assert table.column("t").type == pa.timestamp("ms", tz="UTC")
    assert table.column("t").cast(pa.int64())[0].as_py() == 1_700_000_000_123
    assert table.column("m")[0].as_py() == [("k", "v")]
    assert table.column("n")[0].as_py() is None


def test_arrow_milliseconds_round_as_python_does():
    values = [0.0005, 0.0015, 0.0025, 1_700_000_000.1235, 1_700_000_000.1245, -1.0005, None]
    values += [i / 1000 + 1_700_000_000 for i in range(-2000, 2000, 7)]
    enc = ColumnEncoder.for_types(["Nullable(DateTime64(3, 'UTC'))"])
    got = enc.arrow(["t"], [(v,) for v in values]).column("t").cast(pa.int64()).to_pylist()
    assert got == [None if v is None else round(v * 1000) for v in values]


def test_migrations_are_numbered_and_split():
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.statements for m in migrations)


def test_openapi_file_is_the_served_description():
    path = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(OPENAPI))
