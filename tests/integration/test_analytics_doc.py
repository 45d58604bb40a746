"""docs/analytics.md and the Grafana issues dashboard, run on the real embedded engine.

Every ``### N.`` query of the doc is read from the doc's text and run through the ClickHouse
HTTP interface with clickhouse-connect against generated data (tests/integration/
analytics_data.py); each answer is compared with the same question answered here in Python
from the generated records. Every dashboard panel's SQL runs with the Grafana ClickHouse
data source's macros expanded the way the plugin expands them.
"""

from __future__ import annotations

import collections
import json
import math
import re
from datetime import UTC, date, datetime
from pathlib import Path

import clickhouse_connect
import pytest

from tests.integration.analytics_data import (
    DAY,
    HOUR,
    NOW,
    PASSWORD,
    ServerThread,
    generate,
    open_store,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "analytics.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "errorstream-issues.json"
_QUERY = re.compile(r"^### (\d+)\. (.+?)$.*?^```sql\n(.*?)^```", re.M | re.S)


def doc_queries() -> dict[int, str]:
    found = {int(n): sql for n, _, sql in _QUERY.findall(DOC.read_text())}
    assert sorted(found) == list(range(1, 11)), sorted(found)
    return found


@pytest.fixture(scope="module")
def data():
    return generate()


@pytest.fixture(scope="module")
def client(tmp_path_factory, data):
    backend = open_store(str(tmp_path_factory.mktemp("analytics") / "clickhouse"), data)
    with ServerThread(backend) as server:
        yield clickhouse_connect.get_client(
            host="127.0.0.1", port=server.port, username="default", password=PASSWORD
        )
    backend.close()


def age(ts: float) -> float:
    return NOW - ts


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(round(ts, 3), UTC).replace(tzinfo=None)


def stored(data):
    return [r for r in data.records if r["_meta"]["body_stored"]]


def expected(n: int, data) -> list[tuple]:
    recs = data.records
    fp_of = lambda r: r["_meta"]["fingerprint"]  # noqa: E731
    if n == 1:
        c = collections.Counter(
            r["release"] for r in recs if age(r["timestamp"]) < 7 * DAY and r["level"] != "warning"
        )
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
    if n == 2:
        c = collections.Counter(
            datetime.fromtimestamp(i["first_seen"], UTC).date()
            for i in data.issues.values()
            if age(i["first_seen"]) < 30 * DAY
        )
        return sorted(c.items())
    if n == 3:
        events: collections.Counter = collections.Counter()
        issues = collections.defaultdict(set)
        for r in stored(data):
            if age(r["timestamp"]) < 7 * DAY and "user" in r:
                events[r["user"]["id"]] += 1
                issues[r["user"]["id"]].add(fp_of(r))
        rows = [(u, e, len(issues[u])) for u, e in events.items()]
        return sorted(rows, key=lambda t: (-t[1], t[0]))[:10]
    if n == 4:
        c = collections.Counter(r["service"] for r in recs if age(r["timestamp"]) < HOUR)
        rows = [(s, e, round(e / 60, 2)) for s, e in c.items()]
        return sorted(rows, key=lambda t: (-t[1], t[0]))
    if n == 5:
        events = collections.Counter()
        users = collections.defaultdict(set)
        for r in recs:
            if age(r["timestamp"]) < DAY:
                events[fp_of(r)] += 1
                if r["_meta"]["user_hash"] is not None:
                    users[fp_of(r)].add(r["_meta"]["user_hash"])
        rows = [
            (fp, data.issues[fp]["title"], data.issues[fp]["status"], e, len(users[fp]))
            for fp, e in events.items()
        ]
        return sorted(rows, key=lambda t: (-t[3], t[0]))[:10]
    if n == 6:
        c = collections.Counter(
            int(r["timestamp"] // HOUR * HOUR)
            for r in recs
            if fp_of(r) == "fp0" and age(r["timestamp"]) < 2 * DAY
        )
        hours = range(min(c), max(c) + HOUR, HOUR)
        return [(utc(h), c.get(h, 0)) for h in hours]
    if n == 7:
        first: dict[str, dict] = {}
        for r in stored(data):  # records are in time order
            first.setdefault(fp_of(r), r)
        per = collections.defaultdict(list)
        for fp, r in first.items():
            per[r["release"]].append(fp)
        return sorted((rel, len(fps), sorted(fps)) for rel, fps in per.items())
    if n == 8:
        return [
            (
                i["fingerprint"],
                i["service"],
                i["title"],
                i["resolved_in_release"],
                utc(i["last_seen"]),
                i["count"],
            )
            for i in sorted(data.issues.values(), key=lambda i: -i["last_seen"])
            if i["status"] == "regressed"
        ]
    if n == 9:
        c = collections.Counter()
        for a in data.alerts:
            created = datetime.fromisoformat(a["created_at"])
            if NOW - created.timestamp() < 30 * DAY:
                c[(created.date(), a["kind"])] += 1
        return sorted((d, k, v) for (d, k), v in c.items())
    if n == 10:
        per = collections.defaultdict(list)
        for i in data.issues.values():
            if i["resolved_at"] is not None:
                seconds = math.floor(round(i["resolved_at"], 3)) - math.floor(
                    round(i["first_seen"], 3)
                )
                per[i["service"]].append(seconds)
        return sorted((s, len(v), round(sum(v) / len(v) / 3600, 2)) for s, v in per.items())
    raise AssertionError(n)


def normalized(n: int, rows: list[tuple]) -> list[tuple]:
    if n == 7:
        return [(rel, count, sorted(fps)) for rel, count, fps in rows]
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("number", range(1, 11))
def test_doc_query_answers_what_the_generated_data_says(client, data, number):
    sql = doc_queries()[number]
    parameters = {"fingerprint": "fp0"} if "{fingerprint:String}" in sql else None
    rows = client.query(sql, parameters=parameters).result_rows
    want = expected(number, data)
    assert want, f"query {number}: the generated data must give it something to find"
    if number == 10:  # averages: ClickHouse's and Python's rounding may differ in the last digit
        assert [r[:2] for r in rows] == [w[:2] for w in want]
        assert all(abs(r[2] - w[2]) <= 0.011 for r, w in zip(rows, want, strict=True))
        return
    assert normalized(number, rows) == want


def test_doc_queries_cover_the_tables_they_document(data):
    text = " ".join(doc_queries().values())
    for table in ("event_minutes", "issues", "events", "alerts"):
        assert re.search(rf"\bFROM {table}\b", text), table
    assert isinstance(expected(2, data)[0][0], date)


# -- the Grafana dashboard ----------------------------------------------------------------

INTERVAL = 3600


def expand_macros(sql: str, start: int, end: int) -> str:
    """The Grafana ClickHouse data source's macros, as the plugin expands them."""
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        lambda m: f"{m.group(1)} >= toDateTime({start}) AND {m.group(1)} <= toDateTime({end})",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)",
        lambda m: f"toStartOfInterval(toDateTime({m.group(1)}), INTERVAL {INTERVAL} second)",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace(
        "$__toTime", f"toDateTime({end})"
    )
    sql = sql.replace("$__interval_s", str(INTERVAL))
    assert "$" not in sql, sql
    return sql


def panels() -> list[dict]:
    return json.loads(DASHBOARD.read_text())["panels"]


def test_every_dashboard_panel_runs_and_the_totals_match(client, data):
    start, end = NOW - 7 * DAY, NOW + 600
    in_range = [r for r in data.records if start <= r["timestamp"] <= end]
    answers = {}
    for p in panels():
        (target,) = p["targets"]
        rows = client.query(expand_macros(target["rawSql"], start, end)).result_rows
        assert rows, p["title"]
        answers[p["title"]] = rows
    assert answers["Events in range"] == [(len(in_range),)]
    assert answers["Issues seen in range"] == [
        (len({r["_meta"]["fingerprint"] for r in in_range}),)
    ]
    new = [i for i in data.issues.values() if start <= i["first_seen"] <= end]
    assert answers["New issues in range"] == [(len(new),)]
    assert sum(r[1] for r in answers["Events"]) == len(in_range)
    by_service = collections.Counter(r["service"] for r in in_range)
    got = collections.Counter()
    for _, service, events in answers["Events by service"]:
        got[service] += events
    assert got == by_service
    assert [r[0] for r in answers["Regressed issues"]] == ["fp5"]
    top = answers["Top issues"]
    assert [r[4] for r in top] == sorted((r[4] for r in top), reverse=True)
    counts = collections.Counter(r["_meta"]["fingerprint"] for r in in_range)
    assert {r[0]: r[4] for r in top} == dict(counts)
