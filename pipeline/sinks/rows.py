"""Rows for ClickHouse, built by pure functions from processed-topic and alert records.

One processed record gives up to three rows (``rows_for_record``):

- ``events``: the stored body, only when ``_meta.body_stored`` is true;
- ``event_minutes_input``: the record's contribution to its per-minute aggregate key
  (service, fingerprint, minute, level, release, environment) with ``minute_count``, the
  stream stage's exact cumulative count (0 = unknown: counted by event_id instead);
- ``issues``: the ``_meta.issue`` snapshot when it is set (the issues agent sets it on the
  last record of each issue in an envelope, null on the others).

Records follow ``schemas/processed.v1.json``: a record without one of the ``_meta`` fields
the rows need (``body_stored``, ``minute``, ``user_hash``, ``issue``) is refused with the
reason (dead-letter topic), not given a default.

An ``{"_kind": "issue_state", "issue": {...}}`` record gives the issues row, and an
``issue_audit`` row when it carries ``audit`` (a snapshot after a command). A record with
``_meta.signature`` (the first event of a fingerprint a decoder saw) also gives an
``issue_signatures`` row. Time values are epoch seconds; the backends turn them into
ClickHouse times.
"""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.stages.envelope import unpack

EVENTS = "events"
MINUTES = "event_minutes_input"
ISSUES = "issues"
ALERTS = "alerts"
AUDIT = "issue_audit"
SIGNATURES = "issue_signatures"

EVENT_COLUMNS = (
    "event_id",
    "timestamp",
    "received_at",
    "service",
    "environment",
    "release",
    "level",
    "platform",
    "logger",
    "fingerprint",
    "grouping_variant",
    "title",
    "culprit",
    "category",
    "exception_type",
    "message",
    "user_id",
    "tags",
    "payload",
    "sample_rate",
    "user_hash",
)
MINUTE_COLUMNS = (
    "minute",
    "service",
    "fingerprint",
    "level",
    "release",
    "environment",
    "minute_count",
    "event_id",
    "user_hash",
    "has_user",
)
ISSUE_COLUMNS = (
    "fingerprint",
    "service",
    "title",
    "culprit",
    "category",
    "status",
    "first_seen",
    "last_seen",
    "count",
    "users",
    "levels",
    "resolved_at",
    "resolved_in_release",
    "priority",
    "priority_source",
    "assignee",
    "merged_into",
    "version",
)
AUDIT_COLUMNS = (
    "fingerprint",
    "command_id",
    "at",
    "actor",
    "action",
    "reason",
    "source",
    "details",
)
SIGNATURE_COLUMNS = ("fingerprint", "minhash")
ALERT_COLUMNS = (
    "alert_id",
    "kind",
    "created_at",
    "event_time",
    "service",
    "fingerprint",
    "title",
    "culprit",
    "category",
    "level",
    "environment",
    "release",
    "event_id",
    "rule",
    "numbers",
    "fingerprints",
)
COLUMNS = {
    EVENTS: EVENT_COLUMNS,
    MINUTES: MINUTE_COLUMNS,
    ISSUES: ISSUE_COLUMNS,
    ALERTS: ALERT_COLUMNS,
    AUDIT: AUDIT_COLUMNS,
    SIGNATURES: SIGNATURE_COLUMNS,
}
TABLES = (EVENTS, MINUTES, SIGNATURES, ISSUES, AUDIT, ALERTS)  # insert order
MAX_UINT63 = 2**63 - 1

Row = tuple[Any, ...]


class RowError(ValueError):
    """A record that cannot become a row; it goes to the dead-letter topic."""


def _message_text(event: dict[str, Any]) -> str:
    msg = event.get("message")
    if isinstance(msg, dict):
        return str(msg.get("formatted") or msg.get("message") or "")
    if msg:
        return str(msg)
    values = (event.get("exception") or {}).get("values") or []
    return str(values[-1].get("value") or "") if values else ""


def _user_hash(meta: dict[str, Any]) -> int:
    value = meta.get("user_hash")
    if value is None:
        return 0
    value = int(value)
    if not 0 <= value <= MAX_UINT63:
        raise ValueError(f"user_hash out of range: {value}")
    return value


def to_event_row(record: dict[str, Any], payload: bytes | str | None = None) -> Row:
    """One ``events`` row (in ``EVENT_COLUMNS`` order). ``payload`` is the record's JSON
    text when the caller has it (the sink stores the message as received, as the UTF-8
    bytes it came in: the engine's String is bytes, and orjson has checked the encoding)."""
    meta = record["_meta"]
    get = record.get
    mget = meta.get
    exception = get("exception")
    values = exception.get("values") if exception else None
    user = get("user")
    tags = get("tags")
    ts = meta["ts"]
    if payload is None:
        payload = orjson.dumps(record).decode("utf-8")
    return (
        str(record["event_id"]),
        round(float(ts), 3),
        round(float(mget("received_at", ts)), 3),
        str(record["service"]),
        str(get("environment") or ""),
        str(get("release") or ""),
        str(get("level") or "error"),
        str(get("platform") or ""),
        str(get("logger") or ""),
        str(meta["fingerprint"]),
        str(mget("grouping_variant") or ""),
        str(mget("title") or ""),
        str(mget("culprit") or ""),
        str(mget("category") or "unknown"),
        str(values[-1].get("type") or "") if values else "",
        _message_text(record),
        str(user.get("id") or user.get("email") or user.get("ip_address") or "") if user else "",
        {str(k): str(v) for k, v in tags.items()} if tags else {},
        payload,
        float(mget("sample_rate", 1.0)),
        _user_hash(meta),
    )


def to_minute_row(record: dict[str, Any]) -> Row:
    """The record's contribution to its per-minute aggregate key."""
    meta = record["_meta"]
    get = record.get
    minute = int(meta["minute"])
    count = int(meta["minute_count"] or 0)
    if count < 0:
        raise ValueError(f"minute_count is negative: {count}")
    uhash = _user_hash(meta)
    has_user = meta["user_hash"] is not None
    return (
        minute,
        str(record["service"]),
        str(meta["fingerprint"]),
        str(get("level") or "error"),
        str(get("release") or ""),
        str(get("environment") or ""),
        count,
        str(record["event_id"]),
        uhash,
        1 if has_user else 0,
    )


def to_issue_row(issue: dict[str, Any]) -> Row:
    """An ``issues`` row from a contract snapshot."""
    get = issue.get
    resolved_at = get("resolved_at")
    levels = get("levels")
    return (
        str(issue["fingerprint"]),
        str(get("service") or ""),
        str(get("title") or ""),
        str(get("culprit") or ""),
        str(get("category") or "unknown"),
        str(get("status") or "unknown"),
        round(float(issue["first_seen"]), 3),
        round(float(issue["last_seen"]), 3),
        int(get("count") or 0),
        int(get("users") or 0),
        [str(level) for level in levels] if levels else [],
        None if resolved_at is None else round(float(resolved_at), 3),
        str(get("resolved_in_release") or ""),
        str(get("priority") or "medium"),
        str(get("priority_source") or "auto"),
        str(get("assignee") or ""),
        str(get("merged_into") or ""),
        int(get("version") or 0),
    )


def to_audit_row(fingerprint: str, audit: dict[str, Any]) -> Row:
    """An ``issue_audit`` row: one command as it changed one issue."""
    details = audit.get("details") or {}
    if not isinstance(details, dict):
        raise ValueError("audit details must be an object")
    return (
        str(fingerprint),
        str(audit["command_id"]),
        round(float(audit["at"]), 3),
        str(audit.get("actor") or "unknown"),
        str(audit["action"]),
        str(audit.get("reason") or ""),
        str(audit.get("source") or "cli"),
        orjson.dumps(details).decode("utf-8"),
    )


def to_signature_row(signature: dict[str, Any]) -> Row:
    values = [int(v) for v in signature["minhash"]]
    if not values or any(not 0 <= v <= 0xFFFFFFFF for v in values):
        raise ValueError("minhash values must be 32-bit unsigned integers")
    return (str(signature["fingerprint"]), values)


def rows_for_record(record: dict[str, Any], payload: str | None = None) -> list[tuple[str, Row]]:
    """(table, row) pairs for one processed-topic record. Raises ``RowError``."""
    try:
        if record.get("_kind") == "issue_state":
            issue = record["issue"]
            rows = [(ISSUES, to_issue_row(issue))]
            if record.get("audit") is not None:
                rows.append((AUDIT, to_audit_row(issue["fingerprint"], record["audit"])))
            return rows
        meta = record["_meta"]
        out: list[tuple[str, Row]] = []
        if meta.get("signature") is not None:
            out.append((SIGNATURES, to_signature_row(meta["signature"])))
        if meta["body_stored"]:
            out.append((EVENTS, to_event_row(record, payload)))
        out.append((MINUTES, to_minute_row(record)))
        if meta["issue"]:  # null: a later record of the same envelope carries the snapshot
            out.append((ISSUES, to_issue_row(meta["issue"])))
        return out
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RowError(f"cannot build rows: {type(exc).__name__}: {exc}") from exc


def _rfc3339_seconds(text: Any) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def to_alert_row(alert: dict[str, Any]) -> Row:
    """An ``alerts`` row from an alert record (schema alert.v1). Raises ``RowError``."""
    try:
        created = _rfc3339_seconds(alert["created_at"])
        event_time = _rfc3339_seconds(alert["event_time"]) if alert.get("event_time") else created
        return (
            str(alert["alert_id"]),
            str(alert["kind"]),
            round(created, 3),
            round(event_time, 3),
            str(alert.get("service") or ""),
            str(alert.get("fingerprint") or ""),
            str(alert.get("title") or ""),
            str(alert.get("culprit") or ""),
            str(alert.get("category") or ""),
            str(alert.get("level") or ""),
            str(alert.get("environment") or ""),
            str(alert.get("release") or ""),
            str(alert.get("event_id") or ""),
            str(alert.get("rule") or ""),
            orjson.dumps(alert.get("numbers") or {}).decode("utf-8"),
            [str(f) for f in alert.get("fingerprints") or []],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RowError(f"cannot build an alerts row: {type(exc).__name__}: {exc}") from exc


class TableRows:
    """The rows of one batch, per table, in insert order. Issue snapshots of the same
    fingerprint collapse to the highest version (the table keeps only that one anyway)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {table: [] for table in TABLES}
        self._issues: dict[str, Row] = {}

    def add(self, table: str, row: Row) -> None:
        if table == ISSUES:
            self.add_issue(row)
        else:
            self.rows[table].append(row)

    def add_issue(self, row: Row) -> None:
        held = self._issues.get(row[0])
        if held is None or row[-1] >= held[-1]:
            self._issues[row[0]] = row

    def tables(self) -> list[tuple[str, list[Row]]]:
        self.rows[ISSUES] = list(self._issues.values())
        return [(table, self.rows[table]) for table in TABLES if self.rows[table]]


def build_rows(messages: Any, alerts_topic: str) -> tuple[TableRows, list[tuple[Any, str]]]:
    """Rows for a batch of messages (objects with ``.topic`` and ``.value``; a value may be
    an envelope of JSON Lines), and the records that cannot become rows, each with the
    reason: ``(message, reason)``, the message's value narrowed to the bad record.

    One pass per record, the tables' row lists appended to directly: this runs for every
    record the sink stores (bench/bench_sink.py), so the per-record work is kept small."""
    out = TableRows()
    add_event = out.rows[EVENTS].append
    add_minute = out.rows[MINUTES].append
    add_alert = out.rows[ALERTS].append
    add_issue = out.add_issue
    errors: list[tuple[Any, str]] = []
    loads = orjson.loads
    for message in messages:
        is_alert = message.topic == alerts_topic
        for line in unpack(message.value) or [message.value]:  # empty: an error below
            try:
                record = loads(line)  # also refuses text that is not UTF-8
                if type(record) is not dict:
                    raise RowError("a record must be a JSON object")
                if is_alert:
                    add_alert(to_alert_row(record))
                    continue
                rows = rows_for_record(record, line)
            except (RowError, orjson.JSONDecodeError) as exc:
                bad = message._replace(value=line) if hasattr(message, "_replace") else message
                errors.append((bad, str(exc)))
                continue
            for table, row in rows:
                if table is MINUTES:
                    add_minute(row)
                elif table is EVENTS:
                    add_event(row)
                elif table is ISSUES:
                    add_issue(row)
                else:
                    out.rows[table].append(row)
    return out, errors
