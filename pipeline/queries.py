"""Timeline analytics: one module of parameterized SQL shared by both ClickHouse backends.

Every value reaches ClickHouse as a server-side parameter (``{name:Type}``). The SQL text is
assembled only from the constant fragments below (and the validated database name), so an
optional filter costs nothing when unset instead of defeating the primary index.

Counts come from ``event_minutes`` (every event, including those whose bodies were shed)
and its hourly and daily rollups ``event_hours`` / ``event_days`` (migration 0006);
``events`` holds the stored bodies (samples, exports). A key's count after ``FINAL`` is
``events + finalizeAggregation(legacy_events)`` (see migration 0003); summed over keys it is
``sum(events) + uniqExactMerge(legacy_events)`` because an event_id belongs to one key. A
rollup row's count is ``arraySum(mapValues(counts))`` after ``FINAL``: one entry per minute
key holding that key's ``events``, so the same number. The legacy part is read from
``event_minutes_legacy`` (the same states, alone) instead of ``event_minutes``.

A time range is cut into spans (``spans``): whole days from ``event_days``, whole hours
from ``event_hours``, the minutes left at either end from ``event_minutes``; a count is the
UNION ALL of one subquery per span plus the legacy counts of the whole range, summed. A
rollup is used only when it can answer the filters (fingerprint and service are in its rows;
level, release and environment are not) and, for a timeline, when its period divides the
bucket. Distinct users are merged ``uniq`` states of the same spans; for a week of whole days
or more they are read from ``event_day_users`` (migration 0007: event_days' states, laid out
for reading a few issues over a long range).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.storage import Backend

# Bucket sizes for automatic choice: at most ~240 points over the range.
BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400)
DIMENSIONS = ("fingerprint", "service", "level", "release", "environment")
BREAKDOWNS = ("category", "level", "service", "release", "environment")
TOP_ORDERS = ("count", "users", "growth", "new")
ROLLUP_COUNT = "sum(arraySum(mapValues(counts)))"
# Partitions never share a key (the period is in the key): FINAL need not merge across them.
FINAL_SETTINGS = "\nSETTINGS do_not_merge_across_partitions_select_final = 1"


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


# -- tiers: the minute table and its rollups -----------------------------------------
@dataclass(frozen=True)
class Tier:
    """One table of counts: its period, time column, the count expression, whether the
    count needs FINAL, and the filters its rows can answer."""

    seconds: int
    table: str
    column: str
    count: str
    dims: tuple[str, ...]
    final: bool = True
    users: str = "uniqMergeState(users)"
    # issue detail's first and last minute with a record, per row (the time column itself
    # for a minute table; a rollup's own min / max columns)
    first: str = ""
    last: str = ""


MINUTES = Tier(60, "event_minutes", "minute", "sum(events)", DIMENSIONS)
HOURS = Tier(3600, "event_hours", "hour", ROLLUP_COUNT, ("fingerprint", "service"))
DAYS = Tier(86400, "event_days", "day", ROLLUP_COUNT, ("fingerprint", "service"))
TIERS = (DAYS, HOURS, MINUTES)
# The users states of event_days, alone, partitioned by month (migration 0007): the users of
# a few issues over a week of whole days or more read one contiguous key range per issue
# from here. Shorter day spans read event_days, whose day partitions hold exactly the days
# asked (a granule here holds other days of the same issues: 50 issues over 1 day, 13 ms
# from event_days and 25 ms from here; over 30 days 134 ms and 91 ms; even at 5 to 7 days).
DAY_USERS = Tier(86400, "event_day_users", "day", "", ("fingerprint", "service"), final=False)
DAY_USERS_MIN_SPAN = 7 * 86400
# Records without minute_count (agents before the contract), counted by event_id: their own
# small table, added to every count over the whole range (uniqExact states merge: no FINAL).
LEGACY = Tier(
    60,
    "event_minutes_legacy",
    "minute",
    "uniqExactMerge(legacy_events)",
    DIMENSIONS,
    final=False,
    users="uniqStateIf(toUInt64(0), 0)",  # users are in the other tables' rows
)


def usable_tiers(filters: Mapping[str, str], bucket: int | None = None) -> tuple[Tier, ...]:
    """The tiers, coarsest first, that can answer ``filters`` (and whose period divides
    ``bucket``, for a timeline); the minute table can answer everything."""
    wanted = {name for name, value in filters.items() if value}
    return tuple(
        t
        for t in TIERS
        if t is MINUTES or (wanted <= set(t.dims) and (bucket is None or bucket % t.seconds == 0))
    )


def spans(lo: int, hi: int, tiers: tuple[Tier, ...] = TIERS) -> list[tuple[Tier, int, int]]:
    """[lo, hi) (minute-aligned epoch seconds) as whole periods of the coarsest tier that
    fits, the rest at either end cut the same way by the finer tiers; in time order."""
    if lo >= hi:
        return []
    tier, finer = tiers[0], tiers[1:]
    if not finer:
        return [(tier, lo, hi)]
    start = -(-lo // tier.seconds) * tier.seconds
    end = hi // tier.seconds * tier.seconds
    if start >= end:
        return spans(lo, hi, finer)
    return spans(lo, start, finer) + [(tier, start, end)] + spans(end, hi, finer)


def count_parts(lo: int, hi: int, tiers: tuple[Tier, ...], **fragments: str) -> list[tuple]:
    """The spans of [lo, hi) plus the legacy counts over all of it: what a count reads."""
    parts = spans(lo, hi, tiers) + ([(LEGACY, lo, hi)] if lo < hi else [])
    return [(*part, fragments) for part in parts]


def minute_range(since: float, until: float) -> tuple[int, int]:
    """The minutes [lo, hi) a range covers: the minute of ``since`` through the minute of
    ``until`` when it is not a whole minute (as ``minute < until`` reads it)."""
    return minute_floor(since), -(-int(-(-until // 1)) // 60) * 60


# An unbounded range ends here (a day and month boundary before DateTime's end): a span
# from 0 or to it has no bound on that side, and its condition is left out (a condition
# that every row meets still costs the engine a filter step: ~1.7 ms of an issue's split).
ALL_TIME_END = 4102444800  # 2100-01-01


def _span_where(tier: Tier, i: int, filters: Mapping[str, str], lo: int, hi: int) -> str:
    clauses = []
    if lo > 0:
        clauses.append(f"{tier.column} >= toDateTime({{lo{i}:Int64}}, 'UTC')")
    if hi < ALL_TIME_END:
        clauses.append(f"{tier.column} < toDateTime({{hi{i}:Int64}}, 'UTC')")
    clauses += [f"{name} = {{{name}:String}}" for name in DIMENSIONS if filters.get(name)]
    return " AND ".join(clauses) or "1"


def _union(
    template: str,
    backend: Backend,
    parts: list[tuple],
    filters: Mapping[str, str],
    params: dict[str, Any],
    **fragments: str,
) -> str:
    """One subquery per span ``(tier, lo, hi[, {fragment: text}])``, UNION ALL; fills
    ``params`` with each span's bounds."""
    selects = []
    for i, (tier, lo, hi, *own) in enumerate(parts):
        params[f"lo{i}"], params[f"hi{i}"] = lo, hi
        text = template
        for name, value in {**fragments, **(own[0] if own else {})}.items():
            text = text.replace(f"__{name.upper()}__", value)
        selects.append(
            _sql(
                text,
                backend,
                table=tier.table,
                col=tier.column,
                count=tier.count,
                final="FINAL" if tier.final else "",
                users_state=tier.users,
                first=tier.first or tier.column,
                last=tier.last or tier.column,
                where=_span_where(tier, i, filters, lo, hi),
            )
        )
    return "\n    UNION ALL\n".join(selects)


# -- timeline ---------------------------------------------------------------------------
TIMELINE_SQL = """
SELECT toUnixTimestamp(bucket) AS ts, n_events
FROM (
    SELECT bucket, sum(n) AS n_events
    FROM (
    __SPANS__
    )
    GROUP BY bucket
    ORDER BY bucket
    WITH FILL
        FROM toDateTime(toStartOfInterval(toDateTime({since:Int64}, 'UTC'),
                                          toIntervalSecond({bucket:UInt32})), 'UTC')
        TO toDateTime({until:Int64}, 'UTC')
        STEP toIntervalSecond({bucket:UInt32})
)
"""
TIMELINE_SPAN = """
    SELECT toDateTime(toStartOfInterval(__COL__, toIntervalSecond({bucket:UInt32})), 'UTC')
               AS bucket,
           __COUNT__ AS n
    FROM {db}.__TABLE__ __FINAL__
    WHERE __WHERE__
    GROUP BY bucket"""


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
    _, params = where(filters)
    params.update(_range_params(since, until), bucket=bucket)
    parts = count_parts(*minute_range(since, until), usable_tiers(filters, bucket))
    sql = _sql(TIMELINE_SQL, backend, spans=_union(TIMELINE_SPAN, backend, parts, filters, params))
    rows = backend.query(sql + FINAL_SETTINGS, params)
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
SELECT fingerprint, sumIf(n, cur = 1) AS n_events, sumIf(n, cur = 0) AS n_previous,
       __USERS__ AS n_users
FROM (
    __SPANS__
)
GROUP BY fingerprint
HAVING n_events > 0
ORDER BY __ORDER__ DESC, fingerprint
LIMIT {limit:UInt32}
"""
TOP_SPAN = """
    SELECT fingerprint, __COUNT__ AS n, toUInt8(__CUR__) AS cur__STATE__
    FROM {db}.__TABLE__ __FINAL__
    WHERE __WHERE____EXTRA__
    GROUP BY fingerprint"""
TOP_ORDER = {
    "count": "n_events",
    "users": "n_users",
    "growth": "n_events - n_previous",
    "new": "n_events",
}
# The spans' states are merged once, in the outer GROUP BY (merging per span first, then the
# merged states again, cost a fifth more for 50 issues over 30 days).
USERS_SQL = """
SELECT fingerprint, uniqMerge(users) AS n_users
FROM (
    __SPANS__
)
GROUP BY fingerprint
"""
USERS_SPAN = """
    SELECT fingerprint, users
    FROM {db}.__TABLE__
    WHERE fingerprint IN {fingerprints:Array(String)} AND __WHERE__"""
NEW_FILTER = """
  AND fingerprint IN (SELECT fingerprint FROM {db}.issues FINAL
                      WHERE first_seen >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
                        AND first_seen < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC'))"""
PRIORITY_FILTER = """
  AND fingerprint IN (SELECT fingerprint FROM {db}.issues FINAL
                      WHERE priority = {priority:String})"""
ISSUES_SQL = """
SELECT fingerprint, service, title, culprit, category, status,
       toUnixTimestamp64Milli(first_seen) / 1000 AS first_seen,
       toUnixTimestamp64Milli(last_seen) / 1000 AS last_seen,
       count, users, levels,
       toUnixTimestamp64Milli(resolved_at) / 1000 AS resolved_at,
       resolved_in_release, priority, priority_source, assignee, merged_into, version
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
    for key in ("resolved_in_release", "assignee", "merged_into"):
        out[key] = out.get(key) or None
    return out


def month_start(ts: int) -> int:
    """The first second (UTC) of the calendar month of ``ts``."""
    day = datetime.fromtimestamp(ts, UTC)
    return int(datetime(day.year, day.month, 1, tzinfo=UTC).timestamp())


def next_month(ts: int) -> int:
    """The first second (UTC) of the calendar month after the one of ``ts``."""
    day = datetime.fromtimestamp(ts, UTC)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def month_spans(
    lo: int, hi: int, records: tuple[int, int]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """[lo, hi) for issues whose records in it all lie in [records): the whole calendar
    months inside [lo, hi) that hold some of those records, and the pieces of the records'
    range left for the finer spans (the range is cut to the records first: outside them
    within [lo, hi) there is nothing to read)."""
    first, end = max(lo, records[0]), min(hi, records[1])
    if first >= end:
        return [], []
    months = []
    start = month_start(first)
    while start < end:
        stop = next_month(start)
        if start >= lo and stop <= hi:
            months.append((start, stop))
        start = stop
    if not months:
        return [], [(first, end)]
    rest = [(first, months[0][0])] if first < months[0][0] else []
    rest += [(months[-1][1], end)] if months[-1][1] < end else []
    return months, rest


def users_by_fingerprint(
    backend: Backend,
    fingerprints: list[str],
    since: float,
    until: float,
    records: tuple[int, int] | None = None,
    **filters: str,
) -> dict[str, int]:
    """Distinct users of each of ``fingerprints`` over [since, until) (uniq states merged
    across the spans, so a user seen in two spans counts once). ``records``: the minutes
    [lo, hi) outside which these issues have no record (issue detail knows them from its
    split); the range is then cut to them and whole calendar months inside are read from
    the month states."""
    if not fingerprints:
        return {}
    filters.pop("fingerprint", None)
    params: dict[str, Any] = {**where(filters)[1], "fingerprints": list(fingerprints)}
    tiers = usable_tiers(filters)
    lo, hi = minute_range(since, until)
    months: list[tuple[int, int]] = []
    pieces = [(lo, hi)]
    if records is not None and DAYS in tiers:
        months, pieces = month_spans(lo, hi, records)
    elif records is not None:  # a filter the month states cannot answer: the cut alone
        first, end = max(lo, records[0]), min(hi, records[1])
        pieces = [(first, end)] if first < end else []
    # the months are contiguous: one span of them
    parts = [(MONTH_USERS, months[0][0], months[-1][1])] if months else []
    parts += [
        (DAY_USERS if tier is DAYS and z - a >= DAY_USERS_MIN_SPAN else tier, a, z)
        for piece in pieces
        for tier, a, z in spans(*piece, tiers)
    ]
    if not parts:
        return {}
    sql = _sql(USERS_SQL, backend, spans=_union(USERS_SPAN, backend, parts, filters, params))
    return {r["fingerprint"]: int(r["n_users"]) for r in backend.query(sql, params)}


def top_issues(
    backend: Backend,
    since: float,
    until: float,
    order: str = "count",
    limit: int = 50,
    priority: str = "",
    **filters: str,
) -> dict[str, Any]:
    """The issues with the most events (or users, or growth over the previous period of the
    same length, or first seen in the range), with their titles, states and priorities;
    ``priority`` keeps only the issues of that priority."""
    if order not in TOP_ORDERS:
        raise ValueError(f"order must be one of {', '.join(TOP_ORDERS)}")
    if priority and priority not in ("high", "medium", "low"):
        raise ValueError("`priority` must be one of high, medium, low")
    filters.pop("fingerprint", None)
    _, params = where(filters)
    params.update(_range_params(since, until), limit=int(limit))
    if priority:
        params["priority"] = priority
    tiers = usable_tiers(filters)
    lo, hi = minute_range(since, until)
    parts = count_parts(lo, hi, tiers, cur="1")
    if order == "growth":  # the previous period of the same length, counted apart
        parts = count_parts(minute_floor(since - (until - since)), lo, tiers, cur="0") + parts
    union = _union(
        TOP_SPAN,
        backend,
        parts,
        filters,
        params,
        extra=(NEW_FILTER if order == "new" else "") + (PRIORITY_FILTER if priority else ""),
        state=", __USERS_STATE__ AS u" if order == "users" else "",
    )
    # Merging uniq states is the costly part: rank by users only when asked to, and count
    # the users of the top `limit` issues in a second pass otherwise.
    sql = _sql(
        TOP_SQL,
        backend,
        spans=union,
        order=TOP_ORDER[order],
        users="uniqMerge(u)" if order == "users" else "0",
    )
    rows = backend.query(sql + FINAL_SETTINGS, params)
    fingerprints = [r["fingerprint"] for r in rows]
    if order != "users" and fingerprints:
        by_fp = users_by_fingerprint(backend, fingerprints, since, until, **filters)
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
                "priority": state.get("priority") or "medium",
                "assignee": state.get("assignee"),
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
# One pass over the issue's keys gives the count per (release, environment, level) and the
# first and last minute; the breakdowns and the total are sums of those (counts add up
# across keys). Whole days of the range are read from issue_days (migration 0010: a row per
# day and key, its minutes' counts in a map), the minutes left at either end from
# issue_minutes (migration 0009: event_minutes' keys and counts, partitioned by month), the
# legacy counts from their own table. The users are merged month states (issue_month_users)
# for the calendar months the issue's records fall in, day / hour / minute states for the
# rest; the latest body is one row of issue_latest.
ISSUE_MINUTES = Tier(60, "issue_minutes", "minute", "sum(events)", DIMENSIONS)
# issue_days holds the legacy counts of its days too: a span of it is the whole count.
ISSUE_DAYS = Tier(
    86400,
    "issue_days",
    "day",
    ROLLUP_COUNT + " + uniqExactMerge(legacy_events)",
    DIMENSIONS,
    first="first_minute",
    last="last_minute",
)
ISSUE_TIERS = (ISSUE_DAYS, ISSUE_MINUTES)
MONTH_USERS = Tier(0, "issue_month_users", "month", "", ("fingerprint", "service"), final=False)
DETAIL_SPLIT_SQL = """
SELECT release, environment, level, sum(n) AS n_events,
       min(first_minute) AS first_minute, max(last_minute) AS last_minute
FROM (
    __SPANS__
)
GROUP BY release, environment, level
"""
DETAIL_SPLIT_SPAN = """
    SELECT release, environment, level, __COUNT__ AS __N__,
           toUnixTimestamp(min(__FIRST__)) AS first_minute,
           toUnixTimestamp(max(__LAST__)) AS last_minute
    FROM {db}.__TABLE__ __FINAL__
    WHERE __WHERE__
    GROUP BY release, environment, level"""
# The latest stored body: the argMax state of issue_latest (migration 0010), merged over
# the issue's rows (one after merges): the greatest (timestamp, event_id) among the stored
# bodies (last_at is its timestamp), the body that ``ORDER BY timestamp DESC, event_id DESC LIMIT 1`` over events gives.
LATEST_EVENT_SQL = """
SELECT latest.1 AS event_id, toUnixTimestamp64Milli(last_at) / 1000 AS timestamp,
       latest.2 AS level, latest.3 AS release, latest.4 AS environment, latest.5 AS message,
       latest.6 AS exception_type, latest.7 AS payload
FROM (
    SELECT argMaxMerge(latest) AS latest, max(last_at) AS last_at
    FROM {db}.issue_latest
    WHERE fingerprint = {fingerprint:String}
    GROUP BY fingerprint
)
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


# Issue detail's parts in one statement (each statement costs the engine a few ms of its
# own): each branch gives its rows as (part, JSON text of the row). The branch's own select
# list goes into formatRow: wrapped as a subquery instead (``formatRow(..., *) FROM (...)``)
# the same branches took 0.4-0.8 ms more each.
_TOP_FROM = re.compile(r"\n\s*FROM ")


def _detail_branch(name: str, sql: str) -> str:
    """``SELECT <list> FROM ...`` as ``SELECT '<name>' AS part, formatRow('JSONEachRow',
    <list>) AS body FROM ...`` (the first FROM of these statements is their own)."""
    head, rest = _TOP_FROM.split(sql.strip(), maxsplit=1)
    if not head.startswith("SELECT "):
        raise ValueError(f"an issue detail branch must be a SELECT: {head[:40]!r}")
    return f"SELECT '{name}' AS part, formatRow('JSONEachRow', {head[7:]}) AS body\nFROM {rest}"


# Over all time the users are every month state of the issue: no records needed first.
ALL_USERS_SQL = """
SELECT uniqMerge(users) AS n_users
FROM {db}.issue_month_users
WHERE fingerprint = {fingerprint:String}
"""


def issue_detail(
    backend: Backend, fingerprint: str, since: float = 0.0, until: float | None = None
) -> dict[str, Any] | None:
    """First/last seen, totals, users, release and environment breakdowns, and the latest
    stored event with its stack trace, over [since, until) (until None: no end). None when
    the issue is unknown."""
    unbounded = until is None
    until = ALL_TIME_END if until is None else until
    params: dict[str, Any] = {"fingerprint": fingerprint, **_range_params(since, until)}
    lo, hi = minute_range(since, until)
    parts = spans(lo, hi, ISSUE_TIERS)
    parts += [(LEGACY, a, z) for tier, a, z in parts if tier is not ISSUE_DAYS]
    branches = [
        ("state", ISSUES_SQL.replace("IN {fingerprints:Array(String)}", "= {fingerprint:String}"))
    ]
    branches.append(("latest", LATEST_EVENT_SQL))
    if len(parts) == 1:  # one span (the whole life: days only) needs no second grouping
        split = _union(
            DETAIL_SPLIT_SPAN, backend, parts, {"fingerprint": fingerprint}, params, n="n_events"
        )
        branches.append(("split", split))
    elif parts:
        union = _union(
            DETAIL_SPLIT_SPAN, backend, parts, {"fingerprint": fingerprint}, params, n="n"
        )
        branches.append(("split", _sql(DETAIL_SPLIT_SQL, backend, spans=union)))
    all_users = unbounded and since <= 0
    if all_users:
        branches.append(("users", ALL_USERS_SQL))
    sql = "\nUNION ALL\n".join(_detail_branch(name, _sql(text, backend)) for name, text in branches)
    found: dict[str, list[dict[str, Any]]] = {"state": [], "latest": [], "split": [], "users": []}
    for r in backend.query(sql + FINAL_SETTINGS, params):
        found[r["part"]].append(orjson.loads(r["body"]))
    combos = found["split"]
    state = _issue(found["state"][0]) if found["state"] else None
    events = sum(int(r["n_events"]) for r in combos)
    if not events and state is None:
        return None
    splits = {}
    for dim in ("release", "environment", "level"):
        per_value: dict[str, int] = {}
        for r in combos:
            per_value[r[dim]] = per_value.get(r[dim], 0) + int(r["n_events"])
        ranked = sorted(per_value.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
        splits[dim] = [{"value": value, "events": n} for value, n in ranked]
    # Every record of the range has its minute key in the split: no users outside them.
    users, first_minute, last_minute = 0, 0, 0
    if combos:
        first_minute = min(int(r["first_minute"]) for r in combos)
        last_minute = max(int(r["last_minute"]) for r in combos)
        if all_users:
            users = int(found["users"][0]["n_users"]) if found["users"] else 0
        else:
            records = (first_minute, last_minute + 60)
            by_fp = users_by_fingerprint(backend, [fingerprint], since, until, records)
            users = by_fp.get(fingerprint, 0)
    if state is None:
        first_seen, last_seen = first_minute, last_minute
    else:
        first_seen, last_seen = state["first_seen"], state["last_seen"]
    sample = None
    if found["latest"]:
        row = found["latest"][0]
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
        "users": users,
        "first_seen": first_seen,
        "last_seen": last_seen,
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
