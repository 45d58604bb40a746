"""Row building: list in, rows out."""

from __future__ import annotations

import orjson
import pytest

from pipeline.sinks.batching import Message
from pipeline.sinks.rows import (
    ALERTS,
    EVENT_COLUMNS,
    EVENTS,
    ISSUES,
    MINUTE_COLUMNS,
    MINUTES,
    RowError,
    build_rows,
    rows_for_record,
    to_alert_row,
)

TS = 1_700_000_123.4567


def record(**meta) -> dict:
    base = {
        "ts": TS,
        "received_at": TS + 1,
        "fingerprint": "fp",
        "title": "KeyError: 'x'",
        "culprit": "app in f",
        "category": "bug",
        "secondary_fingerprints": [],
        "grouping_variant": "exception",
        "body_stored": True,
        "shed_reason": None,
        "sample_rate": 1.0,
        "minute": 1_700_000_100,
        "minute_count": 0,
        "user_hash": 12345,
        "issue": None,
    }
    return {
        "event_id": "e1",
        "service": "svc",
        "level": "warning",
        "release": "app@1",
        "environment": "prod",
        "tags": {"a": 1},
        "user": {"email": "u@example.com"},
        "exception": {"values": [{"type": "KeyError", "value": "'x'"}]},
        "_meta": {**base, **meta},
    }


def test_a_record_without_a_minute_count_is_stored_and_counted_by_event_id():
    rows = dict(rows_for_record(record()))
    assert set(rows) == {EVENTS, MINUTES}
    event = dict(zip(EVENT_COLUMNS, rows[EVENTS], strict=True))
    assert event["timestamp"] == 1_700_000_123.457
    assert event["exception_type"] == "KeyError"
    assert event["tags"] == {"a": "1"}
    minute = dict(zip(MINUTE_COLUMNS, rows[MINUTES], strict=True))
    assert minute["minute"] == 1_700_000_100
    assert minute["minute_count"] == 0  # unknown: counted by event_id
    assert minute["has_user"] == 1 and minute["user_hash"] == 12345


@pytest.mark.parametrize("field", ["body_stored", "minute", "minute_count", "user_hash", "issue"])
def test_a_record_missing_a_contract_field_is_refused_not_defaulted(field):
    bad = record()
    del bad["_meta"][field]
    with pytest.raises(RowError, match=field):
        rows_for_record(bad)


def test_shed_record_gives_no_event_row_but_counts():
    issue = {
        "fingerprint": "fp",
        "service": "svc",
        "title": "t",
        "first_seen": TS,
        "last_seen": TS,
        "count": 9,
        "version": 9,
    }
    rows = rows_for_record(
        record(body_stored=False, minute=1_700_000_100, minute_count=9, user_hash=None, issue=issue)
    )
    tables = [t for t, _ in rows]
    assert tables == [MINUTES, ISSUES]
    minute = dict(zip(MINUTE_COLUMNS, rows[0][1], strict=True))
    assert (minute["minute_count"], minute["has_user"]) == (9, 0)
    assert rows[1][1][-1] == 9


def test_issue_state_record_gives_only_the_issue():
    issue = {"fingerprint": "fp", "first_seen": TS, "last_seen": TS, "version": 3}
    assert [t for t, _ in rows_for_record({"_kind": "issue_state", "issue": issue})] == [ISSUES]


@pytest.mark.parametrize(
    "bad",
    [
        {"_meta": {}},
        {"service": "s", "event_id": "e", "_meta": {"ts": "soon", "fingerprint": "f"}},
        {"service": "s", "event_id": "e", "_meta": {"ts": 1, "fingerprint": "f", "user_hash": -1}},
    ],
)
def test_bad_records_raise_row_error(bad):
    with pytest.raises(RowError):
        rows_for_record(bad)


def test_build_rows_collapses_issue_snapshots_and_reports_bad_messages():
    msgs = []
    for version in (3, 5, 4):
        issue = {"fingerprint": "fp", "first_seen": TS, "last_seen": TS, "version": version}
        msgs.append(Message("p", 0, version, orjson.dumps(record(issue=issue))))
    msgs.append(Message("p", 0, 9, b"[1, 2]"))
    alert = {
        "alert_id": "a" * 32,
        "kind": "new_issue",
        "created_at": "2024-01-01T00:00:00.000Z",
        "service": "svc",
        "fingerprint": "fp",
        "title": "t",
        "numbers": {"count": 1},
    }
    msgs.append(Message("alerts", 0, 0, orjson.dumps(alert)))
    rows, errors = build_rows(msgs, "alerts")
    tables = dict(rows.tables())
    assert [r[-1] for r in tables[ISSUES]] == [5]
    assert len(tables[EVENTS]) == 3 and len(tables[MINUTES]) == 3 and len(tables[ALERTS]) == 1
    assert [m.offset for m, _ in errors] == [9]


def test_alert_row_times_come_from_rfc3339():
    row = to_alert_row(
        {
            "alert_id": "b" * 32,
            "kind": "spike",
            "created_at": "2024-01-01T00:00:01.500Z",
            "service": "s",
            "fingerprint": "",
            "title": "t",
            "numbers": {},
        }
    )
    assert row[2] == row[3] == 1_704_067_201.5
    with pytest.raises(RowError):
        to_alert_row({"kind": "spike"})


def test_record_with_a_null_snapshot_gives_no_issues_row():
    # the issues agent keeps the snapshot on the last record of each issue in an envelope
    rows = rows_for_record(record(minute=1_700_000_100, minute_count=3, user_hash=None, issue=None))
    assert [t for t, _ in rows] == [EVENTS, MINUTES]


def test_only_the_last_record_of_an_issue_in_an_envelope_keeps_its_snapshot():
    from pipeline.agents.issues import serialize_processed

    snap = {"fingerprint": "a", "version": 1}
    items = [
        ("a", {"_meta": {"issue": dict(snap, version=1)}}, None),
        ("b", {"_meta": {"issue": {"fingerprint": "b", "version": 7}}}, b'{"x":1}'),
        b'{"_kind":"issue_state","issue":{"fingerprint":"c"}}',
        ("a", {"_meta": {"issue": dict(snap, version=2)}}, None),
    ]
    lines = [orjson.loads(x) for x in serialize_processed(items)]
    assert [line.get("_meta", {}).get("issue") for line in lines] == [
        None,
        {"fingerprint": "b", "version": 7},
        None,
        {"fingerprint": "a", "version": 2},
    ]
    assert lines[2]["_kind"] == "issue_state"
    assert lines[1]["x"] == 1  # the REST of a stored body, spliced in unparsed


def test_build_rows_stores_each_record_as_received():
    # the payload column is the record's bytes from the envelope, not a re-serialization
    lines = [orjson.dumps(record(minute_count=1, user_hash=7, issue=None)) + b" " for _ in "ab"]
    rows, errors = build_rows([Message("p", 0, 0, b"\n".join(lines))], "alerts")
    events = dict(rows.tables())[EVENTS]
    assert errors == [] and [r[EVENT_COLUMNS.index("payload")] for r in events] == lines


def test_text_that_is_not_utf8_goes_to_the_dead_letter_topic():
    good = orjson.dumps(record(minute_count=1, user_hash=7, issue=None))
    bad = good.replace(b"KeyError: 'x'", b"KeyError: '\xff'")
    rows, errors = build_rows([Message("p", 0, 4, good + b"\n" + bad)], "alerts")
    assert len(dict(rows.tables())[EVENTS]) == 1
    assert [(m.offset, m.value) for m, _ in errors] == [(4, bad)]


def test_a_snapshot_after_a_command_gives_its_audit_row():
    from pipeline.sinks.rows import AUDIT, AUDIT_COLUMNS

    issue = {
        "fingerprint": "fp",
        "first_seen": TS,
        "last_seen": TS,
        "version": 4,
        "priority": "high",
        "priority_source": "manual",
        "assignee": "ann",
    }
    audit = {
        "command_id": "c1",
        "at": TS,
        "actor": "ann",
        "action": "assign",
        "reason": "owner",
        "source": "dashboard",
        "details": {"assignee": "ann"},
    }
    rows = rows_for_record({"_kind": "issue_state", "issue": issue, "audit": audit})
    assert [t for t, _ in rows] == [ISSUES, AUDIT]
    row = dict(zip(AUDIT_COLUMNS, rows[1][1], strict=True))
    assert row == {
        "fingerprint": "fp",
        "command_id": "c1",
        "at": round(TS, 3),
        "actor": "ann",
        "action": "assign",
        "reason": "owner",
        "source": "dashboard",
        "details": '{"assignee":"ann"}',
    }
    with pytest.raises(RowError):
        rows_for_record({"_kind": "issue_state", "issue": issue, "audit": {"at": TS}})


def test_the_first_record_of_a_fingerprint_gives_its_signature_row():
    from pipeline.sinks.rows import SIGNATURES

    sig = {"fingerprint": "fp-orig", "minhash": [1, 2, 2**32 - 1]}
    rows = rows_for_record(record(signature=sig))
    assert (SIGNATURES, ("fp-orig", [1, 2, 2**32 - 1])) in rows
    with pytest.raises(RowError):
        rows_for_record(record(signature={"fingerprint": "f", "minhash": [2**32]}))
