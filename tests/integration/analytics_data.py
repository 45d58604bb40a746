"""Generated error-tracker data for the ClickHouse HTTP interface, docs/analytics.md and the
Grafana dashboard tests, stored through the sink's own row builders, and a server thread.

``generate()`` makes processed-topic records per the stream-agents contract (exact
cumulative minute counts, some bodies shed, users, issue snapshots) and alerts, over the
last 40 days, every timestamp at least 15 minutes away from the window edges the example
queries use (1 h, 1 d, 2 d, 7 d, 30 d), so a query run a few seconds later sees the same rows.
Expected answers are computed from the records here, in Python, independently of SQL.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.chhttp import ClickHouseHttpService
from pipeline.settings import load_settings
from pipeline.sinks.rows import ALERT_COLUMNS, COLUMNS, ISSUES, TABLES, rows_for_record
from pipeline.storage import ChdbBackend
from pipeline.storage.migrate import migrate

NOW = int(time.time()) // 60 * 60
HOUR, DAY = 3600, 86400
EDGES = (HOUR, DAY, 2 * DAY, 7 * DAY, 30 * DAY)
SERVICES = {
    "fp0": "api",
    "fp1": "api",
    "fp2": "web",
    "fp3": "web",
    "fp4": "jobs",
    "fp5": "api",
    "fp6": "jobs",
    "fp7": "web",
}
WEIGHTS = (30, 18, 12, 9, 7, 5, 3, 2)
LEVELS = ("error", "error", "error", "warning", "fatal")
RELEASES = ("app@1.0", "app@1.1", "app@1.2")
EXCEPTIONS = {
    "fp0": "ConnectionError",
    "fp1": "KeyError",
    "fp2": "TimeoutError",
    "fp3": "KeyError",
    "fp4": "ValueError",
    "fp5": "TypeError",
    "fp6": "OSError",
    "fp7": "ZeroDivisionError",
}
FINAL_STATUS = {"fp3": "resolved", "fp4": "resolved", "fp5": "regressed", "fp6": "resolved"}
# (oldest, newest) age in days of each issue's events: some issues are new in the last 30
# days, the resolved ones stopped before their resolution
AGES = {
    "fp0": (41, 0),
    "fp1": (41, 0),
    "fp2": (41, 0),
    "fp3": (25.3, 12.4),
    "fp4": (18.6, 4.2),
    "fp5": (10.5, 0),
    "fp6": (5.7, 2.6),
    "fp7": (1.6, 0),
}
PASSWORD = "s3cret-analytics"


@dataclass
class Data:
    records: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)


def _offset(rnd: random.Random) -> float:
    """Seconds before NOW: 40% within the last day, the rest over 40 days; never within
    15 minutes of a window edge (nor of NOW)."""
    while True:
        span = DAY if rnd.random() < 0.4 else 40 * DAY
        offset = rnd.uniform(0, span)
        if offset > 900 and all(abs(offset - e) > 900 for e in EDGES):
            return round(offset, 3)


def generate(n: int = 3000, seed: int = 11) -> Data:
    rnd = random.Random(seed)
    times = sorted((NOW - _offset(rnd) for _ in range(n)), key=float)
    minute_counts: collections.Counter = collections.Counter()
    versions: collections.Counter = collections.Counter()
    users: dict[str, set[int]] = collections.defaultdict(set)
    first: dict[str, float] = {}
    records = []
    for i, ts in enumerate(times):
        age = (NOW - ts) / DAY
        live = [
            (f, w) for f, w in zip(SERVICES, WEIGHTS, strict=True) if AGES[f][1] < age < AGES[f][0]
        ]
        fp = rnd.choices([f for f, _ in live], [w for _, w in live])[0]
        service = SERVICES[fp]
        level = rnd.choice(LEVELS)
        release = RELEASES[min(2, int((NOW - ts) < 20 * DAY) + int((NOW - ts) < 3 * DAY))]
        environment = "staging" if i % 9 == 0 else "prod"
        minute = int(ts // 60 * 60)
        key = (service, fp, minute, level, release, environment)
        minute_counts[key] += 1
        user = f"user-{rnd.randrange(40)}" if i % 6 else None
        uhash = 1000 + int(user.split("-")[1]) if user else None
        if uhash is not None:
            users[fp].add(uhash)
        versions[fp] += 1
        first.setdefault(fp, ts)
        body_stored = i % 5 != 0
        status = FINAL_STATUS.get(fp, "ongoing")
        issue = {
            "fingerprint": fp,
            "service": service,
            "title": f"{EXCEPTIONS[fp]} in {service}",
            "culprit": f"app.{service} in handler",
            "category": "database" if fp == "fp0" else "bug",
            "status": status,
            "first_seen": first[fp],
            "last_seen": ts,
            "count": versions[fp],
            "users": len(users[fp]),
            "levels": ["error"],
            "resolved_at": None,
            "resolved_in_release": "app@1.1" if status in ("resolved", "regressed") else None,
            "version": versions[fp],
        }
        meta = {
            "ts": ts,
            "received_at": ts + 0.05,
            "fingerprint": fp,
            "grouping_variant": "app",
            "title": issue["title"],
            "culprit": issue["culprit"],
            "category": issue["category"],
            "secondary_fingerprints": [],
            "body_stored": body_stored,
            "shed_reason": None if body_stored else "fingerprint_limit",
            "sample_rate": 1.0,
            "minute": minute,
            "minute_count": minute_counts[key],
            "user_hash": uhash,
            "issue": issue,
        }
        record: dict[str, Any] = {
            "event_id": uuid.UUID(int=rnd.getrandbits(128)).hex,
            "timestamp": ts,
            "service": service,
            "level": level,
            "release": release,
            "environment": environment,
            "platform": "python",
            "_meta": meta,
        }
        if user:
            record["user"] = {"id": user}
        if body_stored:
            record["exception"] = {
                "values": [
                    {
                        "type": EXCEPTIONS[fp],
                        "value": f"failure {i % 13}",
                        "stacktrace": {"frames": [{"filename": "app/views.py", "lineno": 7}]},
                    }
                ]
            }
        records.append(record)
    # resolution times for the resolved issues: some hours after their last event
    last = {r["_meta"]["fingerprint"]: r for r in records}
    for k, (fp, rec) in enumerate(sorted(last.items())):
        if FINAL_STATUS.get(fp) == "resolved":
            rec["_meta"]["issue"]["resolved_at"] = rec["_meta"]["ts"] + 3600 * (k + 1)
    issues = {fp: rec["_meta"]["issue"] for fp, rec in last.items()}
    alerts = []
    for k in range(40):
        fp = sorted(issues)[k % len(issues)]
        created = NOW - _offset(rnd)
        alerts.append(
            {
                "alert_id": f"alert-{k}",
                "kind": ("new_issue", "spike", "threshold")[k % 3],
                "created_at": datetime.fromtimestamp(created, UTC).isoformat(),
                "event_time": datetime.fromtimestamp(created - 1, UTC).isoformat(),
                "service": SERVICES[fp],
                "fingerprint": fp,
                "title": issues[fp]["title"],
                "level": "error",
                "rule": "",
                "numbers": {"count": k},
            }
        )
    return Data(records, alerts, issues)


def load(backend: ChdbBackend, data: Data) -> None:
    from pipeline.sinks.rows import to_alert_row

    rows: dict[str, list] = {t: [] for t in TABLES}
    issues: dict[str, tuple] = {}
    for record in data.records:
        for table, row in rows_for_record(record):
            if table == ISSUES:
                if row[0] not in issues or row[-1] >= issues[row[0]][-1]:
                    issues[row[0]] = row
            else:
                rows[table].append(row)
    rows[ISSUES] = list(issues.values())
    rows["alerts"] = [to_alert_row(a) for a in data.alerts]
    for table in TABLES:
        columns = ALERT_COLUMNS if table == "alerts" else COLUMNS[table]
        # several inserts per table, as several sink batches would be
        chunk = max(1, len(rows[table]) // 3 + 1)
        for start in range(0, len(rows[table]), chunk):
            backend.insert(table, columns, rows[table][start : start + chunk])


def open_store(path: str, data: Data) -> ChdbBackend:
    backend = ChdbBackend(path, "errorstream")
    migrate(backend, 90)
    load(backend, data)
    return backend


class ServerThread:
    """The interface on 127.0.0.1 (a free port), in its own event loop on a thread, so
    blocking clients (clickhouse-connect, curl) can call it from the test."""

    def __init__(self, backend: ChdbBackend, **overrides: Any) -> None:
        values = {"clickhouse_http_password": PASSWORD, **overrides}
        self.settings = load_settings(env={}, overrides=values)
        self.backend = backend
        self.loop = asyncio.new_event_loop()
        self.service = ClickHouseHttpService(backend, self.settings)
        self.port = 0

    def __enter__(self) -> ServerThread:
        self.port = self.loop.run_until_complete(self.service.start(port=0))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
