"""Read queries the dashboard needs beyond pipeline/queries.py: one issue's latest stored
events, its most affected users and its tag values. Parameterized SQL over the events
table (one issue's rows are one range of its primary key); pure apart from the query."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.queries import _range_params, _sql, stack_trace, time_range
from pipeline.storage import Backend

EVENTS_SQL = """
SELECT event_id, toUnixTimestamp64Milli(timestamp) / 1000 AS timestamp, service, level,
       release, environment, message, exception_type, user_id, tags, payload
FROM {db}.events FINAL
WHERE fingerprint = {fingerprint:String}
  AND timestamp >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
  AND timestamp < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')
ORDER BY timestamp DESC, event_id DESC
LIMIT {limit:UInt32}
"""
USERS_SQL = """
SELECT user_id, count() AS events,
       toUnixTimestamp64Milli(min(timestamp)) / 1000 AS first_seen,
       toUnixTimestamp64Milli(max(timestamp)) / 1000 AS last_seen
FROM {db}.events FINAL
WHERE fingerprint = {fingerprint:String} AND user_id != ''
  AND timestamp >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
  AND timestamp < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')
GROUP BY user_id
ORDER BY events DESC, user_id
LIMIT {limit:UInt32}
"""
TAGS_SQL = """
SELECT key, value, count() AS events
FROM {db}.events FINAL
ARRAY JOIN mapKeys(tags) AS key, mapValues(tags) AS value
WHERE fingerprint = {fingerprint:String}
  AND timestamp >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
  AND timestamp < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')
GROUP BY key, value
ORDER BY key, events DESC, value
"""
MAX_LIMIT = 200
MAX_TAG_VALUES = 10


def _params(fingerprint: str, since: Any, until: Any, limit: Any, default: int):
    if not fingerprint:
        raise ValueError("fingerprint: required")
    lo, hi = time_range(since, until, default=30 * 86400)
    n = int(limit or default)
    if not 1 <= n <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    return {"fingerprint": fingerprint, "limit": n, **_range_params(lo, hi)}, lo, hi


def latest_events(
    backend: Backend, fingerprint: str, since: Any = None, until: Any = None, limit: Any = None
) -> dict[str, Any]:
    """The issue's newest stored events (bodies kept by the sink), each with its
    message, user, tags and stack trace."""
    params, lo, hi = _params(fingerprint, since, until, limit, 20)
    events = []
    for row in backend.query(_sql(EVENTS_SQL, backend), params):
        body = orjson.loads(row.pop("payload") or "{}")
        row["timestamp"] = float(row["timestamp"])
        row["tags"] = dict(row.get("tags") or {})
        row["exception"] = stack_trace(body)
        events.append(row)
    return {"fingerprint": fingerprint, "since": lo, "until": hi, "events": events}


def affected_users(
    backend: Backend, fingerprint: str, since: Any = None, until: Any = None, limit: Any = None
) -> dict[str, Any]:
    """The users with the most stored events of the issue."""
    params, lo, hi = _params(fingerprint, since, until, limit, 20)
    users = [
        {
            "user_id": r["user_id"],
            "events": int(r["events"]),
            "first_seen": float(r["first_seen"]),
            "last_seen": float(r["last_seen"]),
        }
        for r in backend.query(_sql(USERS_SQL, backend), params)
    ]
    return {"fingerprint": fingerprint, "since": lo, "until": hi, "users": users}


def tag_breakdown(
    backend: Backend, fingerprint: str, since: Any = None, until: Any = None
) -> dict[str, Any]:
    """Per tag key, its most frequent values over the issue's stored events (at most
    ``MAX_TAG_VALUES`` per key, the rest summed as ``other``)."""
    params, lo, hi = _params(fingerprint, since, until, None, 20)
    by_key: dict[str, dict[str, Any]] = {}
    for r in backend.query(_sql(TAGS_SQL, backend), params):
        entry = by_key.setdefault(r["key"], {"key": r["key"], "values": [], "other": 0})
        if len(entry["values"]) < MAX_TAG_VALUES:
            entry["values"].append({"value": r["value"], "events": int(r["events"])})
        else:
            entry["other"] += int(r["events"])
    return {"fingerprint": fingerprint, "since": lo, "until": hi, "tags": list(by_key.values())}
