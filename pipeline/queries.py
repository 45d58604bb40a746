"""Timeline analytics: one module of parameterized SQL shared by both ClickHouse backends.

Every value reaches ClickHouse as a server-side parameter (``{name:Type}``). The SQL text is
assembled only from the constant fragments below (and the validated database name), so an
optional filter costs nothing when unset instead of defeating the primary index.

Counts come from ``event_minutes`` (every event, including those whose bodies were shed);
``events`` holds the stored bodies (samples, exports). A key's count after ``FINAL`` is
``events + finalizeAggregation(legacy_events)`` (see migration 0003); summed over keys it is
``sum(events) + uniqExactMerge(legacy_events)`` because an event_id belongs to one key.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from pipeline.storage import Backend

# Bucket sizes for automatic choice: at most ~240 points over the range.
BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400)
DIMENSIONS = ("fingerprint", "service", "level", "release", "environment")
BREAKDOWNS = ("category", "level", "service", "release", "environment")
TOP_ORDERS = ("count", "users", "growth", "new")
COUNT = "sum(events) + uniqExactMerge(legacy_events)"


def auto_bucket(seconds: float, max_points: int = 240) -> int:
    for bucket in BUCKETS:
        if seconds / bucket <= max_points:
            return bucket
    return BUCKETS[-1]


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``6h``, ``7d``, ``2w`` → seconds. Raises ValueError with the input."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise ValueError(f"expected a duration like 90s, 15m, 6h or 7d, got {text!r}")
    return float(text[:-1]) * units[text[-1]]


def parse_time(text: str | float | None, now: float, default: float) -> float:
    """Epoch seconds, or a duration back from ``now`` (``6h``); ``default`` when empty."""
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        return now - parse_duration(str(text))


def time_range(since: Any, until: Any, now: float | None = None, default: float = 3600):
    """(since, until) in epoch seconds from user input; raises ValueError when empty."""
    now = time.time() if now is None else now
    end = parse_time(until, now, now)
    start = parse_time(since, end, end - default)
    if end <= start:
        raise ValueError("the time range is empty: until must be after since")
    return start, end


def minute_floor(ts: float) -> int:
    return int(ts // 60 * 60)


def where(filters: Mapping[str, str], time_column: str = "minute") -> tuple[str, dict[str, Any]]:
    """A WHERE clause over the time range and the filters that are set (fixed fragments)."""
    if time_column == "minute":
        clauses = [
            "minute >= toDateTime({since:Int64}, 'UTC')",
            "minute < toDateTime({until:Int64}, 'UTC')",
        ]
    else:
        clauses = [
            "timestamp >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')",
            "timestamp < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')",
        ]
    params: dict[str, Any] = {}
    for name in DIMENSIONS:
        value = filters.get(name)
        if value:
            clauses.append(f"{name} = {{{name}:String}}")
            params[name] = value
    unknown = set(filters) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    return " AND ".join(clauses), params


def _sql(template: str, backend: Backend, **parts: str) -> str:
    for key, value in parts.items():
        template = template.replace(f"__{key.upper()}__", value)
    return template.replace("{db}", backend.database)


def _range_params(since: float, until: float) -> dict[str, Any]:
    return {
        "since": minute_floor(since),
        "until": int(-(-until // 1)),
        "since_ms": round(since * 1000),
        "until_ms": round(until * 1000),
    }


# -- timeline ---------------------------------------------------------------------------
TIMELINE_SQL = """
SELECT toUnixTimestamp(bucket) AS ts, n_events
FROM (
    SELECT toDateTime(toStartOfInterval(minute, toIntervalSecond({bucket:UInt32})), 'UTC')
               AS bucket,
           sum(events) + uniqExactMerge(legacy_events) AS n_events
    FROM {db}.event_minutes FINAL
    WHERE __WHERE__
    GROUP BY bucket
    ORDER BY bucket
    WITH FILL
        FROM toDateTime(toStartOfInterval(toDateTime({since:Int64}, 'UTC'),
                                          toIntervalSecond({bucket:UInt32})), 'UTC')
        TO toDateTime({until:Int64}, 'UTC')
        STEP toIntervalSecond({bucket:UInt32})
)
"""


def timeline(
    backend: Backend,
    since: float,
    until: float | None = None,
    bucket: int | None = None,
    **filters: str,
) -> dict[str, Any]:
    """Event counts per bucket over [since, until), empty buckets filled with zero."""
    until = time.time() if until is None else until
    if until <= since:
        raise ValueError("the time range is empty: until must be after since")
    bucket = int(bucket or auto_bucket(until - since))
    if bucket < 60 or bucket % 60:
        raise ValueError("bucket must be a whole number of minutes (60, 300, ...)")
    clause, params = where(filters)
    params.update(_range_params(since, until), bucket=bucket)
    rows = backend.query(_sql(TIMELINE_SQL, backend, where=clause), params)
    points = [{"ts": int(r["ts"]), "events": int(r["n_events"])} for r in rows]
    return {
        "since": since,
        "until": until,
        "bucket_seconds": bucket,
        **{name: filters.get(name) or None for name in DIMENSIONS},
        "total": sum(p["events"] for p in points),
        "points": points,
    }


# -- top issues -------------------------------------------------------------------------
TOP_SQL = """
SELECT fingerprint,
       sumIf(events, minute >= toDateTime({since:Int64}, 'UTC'))
         + uniqExactMergeIf(legacy_events, minute >= toDateTime({since:Int64}, 'UTC')) AS n_events,
       sumIf(events, minute < toDateTime({since:Int64}, 'UTC'))
         + uniqExactMergeIf(legacy_events, minute < toDateTime({since:Int64}, 'UTC'))
         AS n_previous,
       __USERS__ AS n_users,
       toUnixTimestamp(minIf(minute, minute >= toDateTime({since:Int64}, 'UTC'))) AS first_minute,
       toUnixTimestamp(max(minute)) AS last_minute
FROM {db}.event_minutes FINAL
WHERE minute >= toDateTime({window_start:Int64}, 'UTC')
  AND minute < toDateTime({until:Int64}, 'UTC')
  __FILTERS__
GROUP BY fingerprint
HAVING n_events > 0
ORDER BY __ORDER__ DESC, fingerprint
LIMIT {limit:UInt32}
"""
TOP_ORDER = {
    "count": "n_events",
    "users": "n_users",
    "growth": "n_events - n_previous",
    "new": "n_events",
}
TOP_USERS_SQL = """
SELECT fingerprint, uniqMerge(users) AS n_users
FROM {db}.event_minutes
WHERE fingerprint IN {fingerprints:Array(String)} AND __WHERE__
GROUP BY fingerprint
"""
NEW_FILTER = """
  AND fingerprint IN (SELECT fingerprint FROM {db}.issues FINAL
                      WHERE first_seen >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
                        AND first_seen < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC'))"""
ISSUES_SQL = """
SELECT fingerprint, service, title, culprit, category, status,
       toUnixTimestamp64Milli(first_seen) / 1000 AS first_seen,
       toUnixTimestamp64Milli(last_seen) / 1000 AS last_seen,
       count, users, levels,
       toUnixTimestamp64Milli(resolved_at) / 1000 AS resolved_at,
       resolved_in_release, version
FROM {db}.issues FINAL
WHERE fingerprint IN {fingerprints:Array(String)}
"""


def issues_by_fingerprint(backend: Backend, fingerprints: list[str]) -> dict[str, dict]:
    if not fingerprints:
        return {}
    rows = backend.query(_sql(ISSUES_SQL, backend), {"fingerprints": fingerprints})
    return {r["fingerprint"]: _issue(r) for r in rows}


def _issue(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("count", "users", "version"):
        out[key] = int(out[key])
    for key in ("first_seen", "last_seen", "resolved_at"):
        out[key] = None if out.get(key) is None else float(out[key])
    out["resolved_in_release"] = out.get("resolved_in_release") or None
    return out


def top_issues(
    backend: Backend,
    since: float,
    until: float,
    order: str = "count",
    limit: int = 50,
    **filters: str,
) -> dict[str, Any]:
    """The issues with the most events (or users, or growth over the previous period of the
    same length, or first seen in the range), with their titles and states."""
    if order not in TOP_ORDERS:
        raise ValueError(f"order must be one of {', '.join(TOP_ORDERS)}")
    filters.pop("fingerprint", None)
    clause, params = where(filters)
    extra = clause.split(" AND ", 2)[2:]  # the dimension filters, without the time range
    fragments = (" AND " + extra[0]) if extra else ""
    if order == "new":
        fragments += NEW_FILTER
    window_start = since - (until - since) if order == "growth" else since
    params.update(_range_params(since, until), limit=int(limit))
    params["window_start"] = minute_floor(window_start)
    # Merging uniq states is the costly part: rank by users only when asked to, and count
    # the users of the top `limit` issues in a second pass otherwise.
    users = "uniqMergeIf(users, minute >= toDateTime({since:Int64}, 'UTC'))"
    sql = _sql(
        TOP_SQL,
        backend,
        filters=fragments,
        order=TOP_ORDER[order],
        users=users if order == "users" else "0",
    )
    rows = backend.query(sql, params)
    fingerprints = [r["fingerprint"] for r in rows]
    if order != "users" and fingerprints:
        clause = " AND ".join(c for c in where(filters)[0].split(" AND ") if "fingerprint" not in c)
        counted = backend.query(
            _sql(TOP_USERS_SQL, backend, where=clause),
            {**params, "fingerprints": fingerprints},
        )
        by_fp = {r["fingerprint"]: r["n_users"] for r in counted}
        for r in rows:
            r["n_users"] = by_fp.get(r["fingerprint"], 0)
    states = issues_by_fingerprint(backend, fingerprints)
    issues = []
    for r in rows:
        state = states.get(r["fingerprint"], {})
        events, previous = int(r["n_events"]), int(r["n_previous"])
        issues.append(
            {
                "fingerprint": r["fingerprint"],
                "title": state.get("title", ""),
                "culprit": state.get("culprit", ""),
                "category": state.get("category", "unknown"),
                "status": state.get("status", "unknown"),
                "service": state.get("service", ""),
                "events": events,
                "users": int(r["n_users"]),
                "previous": previous if order == "growth" else None,
                "growth": (events - previous) if order == "growth" else None,
                "first_seen": state.get("first_seen"),
                "last_seen": state.get("last_seen"),
            }
        )
    return {"since": since, "until": until, "order": order, "issues": issues}


# -- issue detail -----------------------------------------------------------------------
DETAIL_TOTALS_SQL = """
SELECT sum(events) + uniqExactMerge(legacy_events) AS n_events,
       uniqMerge(users) AS n_users,
       toUnixTimestamp(min(minute)) AS first_minute,
       toUnixTimestamp(max(minute)) AS last_minute
FROM {db}.event_minutes FINAL
WHERE fingerprint = {fingerprint:String}
  AND minute >= toDateTime({since:Int64}, 'UTC') AND minute < toDateTime({until:Int64}, 'UTC')
"""
DETAIL_SPLIT_SQL = """
SELECT __DIM__ AS value, sum(events) + uniqExactMerge(legacy_events) AS n_events
FROM {db}.event_minutes FINAL
WHERE fingerprint = {fingerprint:String}
  AND minute >= toDateTime({since:Int64}, 'UTC') AND minute < toDateTime({until:Int64}, 'UTC')
GROUP BY value
ORDER BY n_events DESC, value
LIMIT 50
"""
LATEST_EVENT_SQL = """
SELECT event_id, toUnixTimestamp64Milli(timestamp) / 1000 AS timestamp, level, release,
       environment, message, exception_type, payload
FROM {db}.events
WHERE fingerprint = {fingerprint:String}
ORDER BY timestamp DESC
LIMIT 1
"""


def stack_trace(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The exceptions of an event with their frames, innermost exception last."""
    out = []
    for value in (event.get("exception") or {}).get("values") or []:
        frames = (value.get("stacktrace") or {}).get("frames") or []
        out.append(
            {
                "type": value.get("type"),
                "value": value.get("value"),
                "module": value.get("module"),
                "frames": [
                    {
                        k: f.get(k)
                        for k in ("filename", "module", "function", "lineno", "in_app")
                        if f.get(k) is not None
                    }
                    for f in frames
                ],
            }
        )
    return out


def issue_detail(
    backend: Backend, fingerprint: str, since: float = 0.0, until: float | None = None
) -> dict[str, Any] | None:
    """First/last seen, totals, users, release and environment breakdowns, and the latest
    stored event with its stack trace. None when the issue is unknown."""
    until = time.time() + 86400 if until is None else until
    params: dict[str, Any] = {"fingerprint": fingerprint, **_range_params(since, until)}
    totals = backend.query(_sql(DETAIL_TOTALS_SQL, backend), params)[0]
    state = issues_by_fingerprint(backend, [fingerprint]).get(fingerprint)
    events = int(totals["n_events"] or 0)
    if not events and state is None:
        return None
    splits = {}
    for dim in ("release", "environment", "level"):
        rows = backend.query(_sql(DETAIL_SPLIT_SQL, backend, dim=dim), params)
        splits[dim] = [{"value": r["value"], "events": int(r["n_events"])} for r in rows]
    latest = backend.query(_sql(LATEST_EVENT_SQL, backend), {"fingerprint": fingerprint})
    sample = None
    if latest:
        row = latest[0]
        body = orjson.loads(row.pop("payload"))
        body.pop("_meta", None)
        row["timestamp"] = float(row["timestamp"])
        row["exception"] = stack_trace(body)
        row["tags"] = body.get("tags") or {}
        sample = row
    return {
        "fingerprint": fingerprint,
        "issue": state,
        "events": events,
        "users": int(totals["n_users"] or 0),
        "first_seen": state["first_seen"] if state else int(totals["first_minute"]),
        "last_seen": state["last_seen"] if state else int(totals["last_minute"]),
        "releases": splits["release"],
        "environments": splits["environment"],
        "levels": splits["level"],
        "latest_event": sample,
    }


# -- breakdowns -------------------------------------------------------------------------
BREAKDOWN_SQL = """
SELECT __DIM__ AS value, sum(events) + uniqExactMerge(legacy_events) AS n_events,
       uniqMerge(users) AS n_users, uniqExact(fingerprint) AS n_issues
FROM {db}.event_minutes FINAL
WHERE __WHERE__
GROUP BY value
ORDER BY n_events DESC, value
LIMIT {limit:UInt32}
"""
BREAKDOWN_CATEGORY_SQL = """
SELECT i.category AS value, sum(m.n_events) AS n_events, sum(m.n_users) AS n_users,
       count() AS n_issues
FROM (
    SELECT fingerprint, sum(events) + uniqExactMerge(legacy_events) AS n_events,
           uniqMerge(users) AS n_users
    FROM {db}.event_minutes FINAL
    WHERE __WHERE__
    GROUP BY fingerprint
) AS m
LEFT JOIN (SELECT fingerprint, category FROM {db}.issues FINAL) AS i USING (fingerprint)
GROUP BY value
ORDER BY n_events DESC, value
LIMIT {limit:UInt32}
"""


def breakdown(
    backend: Backend, by: str, since: float, until: float, limit: int = 50, **filters: str
) -> dict[str, Any]:
    """Events, users and issues per category, level, service, release or environment.
    (Users per category add up per issue: a user hit by two issues counts twice.)"""
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {', '.join(BREAKDOWNS)}")
    clause, params = where(filters)
    params.update(_range_params(since, until), limit=int(limit))
    template = BREAKDOWN_CATEGORY_SQL if by == "category" else BREAKDOWN_SQL
    rows = backend.query(_sql(template, backend, where=clause, dim=by), params)
    values = [
        {
            "value": r["value"] or "",
            "events": int(r["n_events"]),
            "users": int(r["n_users"]),
            "issues": int(r["n_issues"]),
        }
        for r in rows
    ]
    return {"since": since, "until": until, "by": by, "values": values}


# -- alerts and resolution --------------------------------------------------------------
ALERTS_SQL = """
SELECT alert_id, kind, toUnixTimestamp64Milli(created_at) / 1000 AS created_at,
       toUnixTimestamp64Milli(event_time) / 1000 AS event_time, service, fingerprint, title,
       level, environment, release, rule, numbers, fingerprints
FROM {db}.alerts FINAL
WHERE event_time >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
  AND event_time < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')
  __FILTERS__
ORDER BY event_time DESC, alert_id
LIMIT {limit:UInt32}
"""
SPIKE_KINDS = ("spike", "incident")


def alerts(
    backend: Backend,
    since: float,
    until: float,
    kinds: list[str] | None = None,
    service: str = "",
    fingerprint: str = "",
    limit: int = 200,
) -> dict[str, Any]:
    """Alerts history, newest first (``kinds=["spike", "incident"]`` for spikes)."""
    fragments = ""
    params: dict[str, Any] = {**_range_params(since, until), "limit": int(limit)}
    if kinds:
        fragments += " AND kind IN {kinds:Array(String)}"
        params["kinds"] = list(kinds)
    if service:
        fragments += " AND service = {service:String}"
        params["service"] = service
    if fingerprint:
        fragments += " AND fingerprint = {fingerprint:String}"
        params["fingerprint"] = fingerprint
    rows = backend.query(_sql(ALERTS_SQL, backend, filters=fragments), params)
    for r in rows:
        r["created_at"] = float(r["created_at"])
        r["event_time"] = float(r["event_time"])
        r["numbers"] = orjson.loads(r["numbers"] or "{}")
    return {"since": since, "until": until, "alerts": rows}


MTTR_SQL = """
SELECT service, count() AS resolved,
       avg(toUnixTimestamp64Milli(assumeNotNull(resolved_at))
           - toUnixTimestamp64Milli(first_seen)) / 1000 AS mean_seconds,
       quantileExact(0.5)(toUnixTimestamp64Milli(assumeNotNull(resolved_at))
           - toUnixTimestamp64Milli(first_seen)) / 1000 AS median_seconds
FROM {db}.issues FINAL
WHERE resolved_at IS NOT NULL
  AND resolved_at >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
  AND resolved_at < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')
  __FILTERS__
GROUP BY service WITH TOTALS
ORDER BY service
"""


def mean_time_to_resolution(
    backend: Backend, since: float, until: float, service: str = ""
) -> dict[str, Any]:
    """Per service: issues resolved in the range and their mean / median time from first
    seen to resolved (in seconds), from the latest issue states."""
    fragments, params = "", _range_params(since, until)
    if service:
        fragments, params["service"] = " AND service = {service:String}", service
    rows = backend.query(
        _sql(MTTR_SQL.replace(" WITH TOTALS", ""), backend, filters=fragments), params
    )
    services = [
        {
            "service": r["service"],
            "resolved": int(r["resolved"]),
            "mean_seconds": float(r["mean_seconds"]),
            "median_seconds": float(r["median_seconds"]),
        }
        for r in rows
    ]
    total = sum(s["resolved"] for s in services)
    mean = sum(s["mean_seconds"] * s["resolved"] for s in services) / total if total else None
    return {
        "since": since,
        "until": until,
        "resolved": total,
        "mean_seconds": mean,
        "services": services,
    }


# -- counts and export ------------------------------------------------------------------
EVENT_COUNT_SQL = """
SELECT count() AS events, uniqExact(fingerprint) AS issues FROM {db}.events FINAL
WHERE 1 __FILTERS__
"""


def event_count(backend: Backend, fingerprint: str = "", service: str = "") -> dict[str, int]:
    """Stored event bodies (sampled or shed bodies are not here) and distinct issues."""
    fragments, params = "", {}
    if fingerprint:
        fragments += " AND fingerprint = {fingerprint:String}"
        params["fingerprint"] = fingerprint
    if service:
        fragments += " AND service = {service:String}"
        params["service"] = service
    rows = backend.query(_sql(EVENT_COUNT_SQL, backend, filters=fragments), params)
    return {"events": int(rows[0]["events"]), "issues": int(rows[0]["issues"])}


EXPORT_COLUMNS = (
    "event_id",
    "timestamp",
    "service",
    "environment",
    "release",
    "level",
    "fingerprint",
    "title",
    "culprit",
    "category",
    "exception_type",
    "message",
    "user_id",
    "sample_rate",
)
EXPORT_SQL = """
SELECT event_id, toUnixTimestamp64Milli(timestamp) AS ts_ms, service, environment, release,
       level, fingerprint, title, culprit, category, exception_type, message, user_id,
       sample_rate __PAYLOAD__
FROM {db}.events FINAL
WHERE __WHERE__
  AND (toUnixTimestamp64Milli(timestamp), event_id) > ({after_ms:Int64}, {after_id:String})
ORDER BY timestamp, event_id
LIMIT {page:UInt32}
"""


def export_events(
    backend: Backend,
    since: float,
    until: float,
    fmt: str = "jsonl",
    page: int = 5000,
    payload: bool = False,
    **filters: str,
) -> Iterator[bytes]:
    """Stored events in [since, until), oldest first, as JSON lines or CSV chunks. Pages
    by (timestamp, event_id) so memory holds one page whatever the range."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError("format must be jsonl or csv")
    clause, params = where(filters, time_column="timestamp")
    params.update(_range_params(since, until), page=int(page))
    sql = _sql(EXPORT_SQL, backend, where=clause, payload=", payload" if payload else "")
    columns = EXPORT_COLUMNS + (("payload",) if payload else ())
    after_ms, after_id = -1, ""
    if fmt == "csv":
        yield _csv_line(columns)
    while True:
        rows = backend.query(sql, {**params, "after_ms": after_ms, "after_id": after_id})
        if not rows:
            return
        chunk = []
        for r in rows:
            after_ms, after_id = int(r["ts_ms"]), r["event_id"]
            r["timestamp"] = after_ms / 1000
            r["sample_rate"] = float(r["sample_rate"])
            record = {c: r[c] for c in columns}
            chunk.append(
                orjson.dumps(record) + b"\n" if fmt == "jsonl" else _csv_line(record.values())
            )
        yield b"".join(chunk)
        if len(rows) < page:
            return


def _csv_line(values) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(list(values))
    return buffer.getvalue().encode("utf-8")
