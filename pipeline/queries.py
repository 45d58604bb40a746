"""Timeline analytics: one module of parameterized SQL shared by both ClickHouse backends.

Every value reaches ClickHouse as a server-side parameter (``{name:Type}``); only the
database name (a validated identifier) is formatted into the text.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.storage import Backend

# Bucket sizes for automatic choice: about 30 to 200 points over the range.
BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400)


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


_FILTERS = (
    "({fingerprint:String} = '' OR fingerprint = {fingerprint:String})"
    " AND ({service:String} = '' OR service = {service:String})"
)

TIMELINE_SQL = """
SELECT toUnixTimestamp(bucket) AS ts, events
FROM (
    SELECT toDateTime(toStartOfInterval(timestamp, toIntervalSecond({bucket:UInt32})), 'UTC')
               AS bucket,
           count() AS events
    FROM {db}.events FINAL
    WHERE timestamp >= toDateTime64({since:Float64}, 3, 'UTC')
      AND timestamp < toDateTime64({until:Float64}, 3, 'UTC')
      AND __FILTERS__
    GROUP BY bucket
    ORDER BY bucket
    WITH FILL
        FROM toDateTime(toStartOfInterval(toDateTime({since:Float64}, 'UTC'),
                                          toIntervalSecond({bucket:UInt32})), 'UTC')
        TO toDateTime({until:Float64}, 'UTC')
        STEP toIntervalSecond({bucket:UInt32})
)
""".replace("__FILTERS__", _FILTERS)

EVENT_COUNT_SQL = (
    "SELECT count() AS events, uniqExact(fingerprint) AS issues FROM {db}.events FINAL"
    " WHERE " + _FILTERS
)


def _sql(template: str, backend: Backend) -> str:
    return template.replace("{db}", backend.database)


def timeline(
    backend: Backend,
    since: float,
    until: float | None = None,
    bucket: int | None = None,
    fingerprint: str = "",
    service: str = "",
) -> dict[str, Any]:
    """Bucketed event counts over [since, until) with empty buckets filled with zero."""
    until = time.time() if until is None else until
    if until <= since:
        raise ValueError("the time range is empty: until must be after since")
    bucket = bucket or auto_bucket(until - since)
    rows = backend.query(
        _sql(TIMELINE_SQL, backend),
        {
            "since": since,
            "until": until,
            "bucket": bucket,
            "fingerprint": fingerprint,
            "service": service,
        },
    )
    points = [{"ts": int(r["ts"]), "events": int(r["events"])} for r in rows]
    return {
        "since": since,
        "until": until,
        "bucket_seconds": bucket,
        "fingerprint": fingerprint or None,
        "service": service or None,
        "total": sum(p["events"] for p in points),
        "points": points,
    }


def event_count(backend: Backend, fingerprint: str = "", service: str = "") -> dict[str, int]:
    rows = backend.query(
        _sql(EVENT_COUNT_SQL, backend), {"fingerprint": fingerprint, "service": service}
    )
    return {"events": int(rows[0]["events"]), "issues": int(rows[0]["issues"])}
