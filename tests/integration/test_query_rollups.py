"""Rollup-based answers are the minute table's answers, exactly, on the real embedded engine.

Generated per-minute input rows (the rows the sink writes into ``event_minutes_input``) with
contract counts, legacy records counted by event_id, users, shed bodies (records with no
``events`` row) and replays (whole batches and random rows inserted again, before and after
merges). Every timeline, top-issues and issue-detail answer read through the hourly and daily
rollups (``event_hours``, ``event_days``) and the legacy table, and every issue detail read
through ``issue_minutes``, must equal the same query read from ``event_minutes`` alone, and
the counts must equal the ones computed here independently. A second database gets part of
its data before migrations 0006, 0007, 0009 and 0010 (the backfill paths).
"""

from __future__ import annotations

import collections
import random
import time
import uuid

import pytest

from pipeline import queries
from pipeline.sinks.rows import MINUTE_COLUMNS
from pipeline.storage import ChdbBackend
from pipeline.storage import migrate as migrate_module
from pipeline.storage.migrate import migrate

pytestmark = pytest.mark.integration

DAY = 86400
D0 = int(time.time() // DAY) * DAY - 3 * DAY  # midnight three days ago
START = D0 - 2 * 3600 - 17 * 60  # a partial day and a partial hour before D0
END = D0 + 2 * DAY + 5 * 3600 + 3 * 60  # and after D0 + 2 days
SERVICES = {"fp0": "api", "fp1": "api", "fp2": "web", "fp3": "web", "fp4": "jobs", "fp5": "api"}
FINGERPRINTS = tuple(SERVICES)
LEVELS = ("error", "warning", "fatal")
RELEASES = ("app@1.0", "app@1.1")
ENVIRONMENTS = ("prod", "staging")
EVENT_COLUMNS = (
    "event_id",
    "timestamp",
    "received_at",
    "service",
    "environment",
    "release",
    "level",
    "fingerprint",
    "title",
    "payload",
    "user_hash",
)
RANGES = (
    (START - 600, END + 600),  # everything
    (D0, D0 + 2 * DAY),  # whole days
    (D0 + 3 * 3600 + 30.5, D0 + DAY + 7 * 3600 + 1799.2),  # unaligned, to the second
    (D0 - 1800, D0 + 1800),  # across midnight, under an hour each side
    (D0 + 5 * 60, D0 + 47 * 60),  # inside one hour
    (D0 + DAY - 7200, D0 + 2 * DAY + 3600),  # hours + a day + hours
)
FILTERS = (
    {},
    {"fingerprint": "fp0"},
    {"service": "api"},
    {"level": "warning"},
    {"fingerprint": "fp5", "service": "web"},
    {"environment": "staging", "service": "api"},
)


def generate(n: int, seed: int) -> tuple[list[list[tuple]], list[tuple], list[dict]]:
    """Input rows in batches (replays included), stored bodies, and the events themselves
    (for the expected counts): contract counts are cumulative per minute key; ~15% of the
    records are legacy (minute_count 0, counted by event_id); ~30% of bodies are shed."""
    rnd = random.Random(seed)
    hot = [D0 + rnd.randrange(0, 2 * DAY, 60) for _ in range(20)]  # minutes with many events
    cumulative: collections.Counter = collections.Counter()
    events, rows, bodies = [], [], []
    for _ in range(n):
        fp = rnd.choice(FINGERPRINTS)
        service = "web" if fp == "fp5" and rnd.random() < 0.3 else SERVICES[fp]
        ts = rnd.choice(hot) + rnd.uniform(0, 60) if rnd.random() < 0.4 else rnd.uniform(START, END)
        minute = int(ts // 60 * 60)
        level = LEVELS[rnd.random() < 0.2] if fp != "fp4" else rnd.choice(LEVELS)
        release, environment = rnd.choice(RELEASES), ENVIRONMENTS[rnd.random() < 0.1]
        key = (minute, service, fp, level, release, environment)
        legacy = rnd.random() < 0.15
        if not legacy:
            cumulative[key] += 1
        user = rnd.randrange(1, 400) * 7_919 if rnd.random() < 0.8 else None
        event_id = uuid.UUID(int=rnd.getrandbits(128)).hex
        row = (minute, service, fp, level, release, environment)
        row += (0 if legacy else cumulative[key], event_id, user or 0, int(user is not None))
        rows.append(row)
        events.append({"ts": ts, "key": key, "user": user, "fp": fp, "service": service})
        if rnd.random() < 0.7:  # the body is stored; otherwise shed: counted, not stored
            bodies.append(
                (event_id, ts, ts, service, environment, release, level, fp, fp, "{}", user or 0)
            )
    batches = [rows[i : i + n // 8] for i in range(0, n, n // 8)]
    batches.append(rnd.sample(rows, len(rows) * 3 // 10))  # replayed rows, any order
    batches.append(list(batches[2]))  # a whole batch again
    return batches, bodies, events


def issue_rows() -> list[list]:
    # fp5 has no state: issue_detail takes first/last seen from the minutes
    return [
        [fp, SERVICES[fp], f"Error {fp}", "x", "bug", "ongoing", START + i * 3600, END, 1, 1, [], 1]
        for i, fp in enumerate(FINGERPRINTS[:5])
    ]


COUNT_TABLES = (
    "event_minutes",
    "event_minutes_legacy",
    "event_hours",
    "event_days",
    "event_day_users",
    "issue_minutes",
    "issue_days",
    "issue_month_users",
)
ISSUE_COLUMNS = [
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
    "version",
]


def load(backend, batches, bodies, *, optimize_between: bool = True) -> None:
    for i, batch in enumerate(batches):
        backend.insert("event_minutes_input", MINUTE_COLUMNS, batch)
        if optimize_between and i == len(batches) - 3:  # merge, then replays land on top
            for table in COUNT_TABLES:
                backend.command(f"OPTIMIZE TABLE {backend.database}.{table} FINAL")
    backend.insert("events", EVENT_COLUMNS, bodies)
    backend.insert("issues", ISSUE_COLUMNS, issue_rows())


def expected_counts(events, since, until, **filters) -> dict[int, int]:
    """Events per minute over [since, until) as the minute table defines them."""
    lo, hi = queries.minute_range(since, until)
    out: collections.Counter = collections.Counter()
    for e in events:
        minute, service, fp, level, release, environment = e["key"]
        values = {"fingerprint": fp, "service": service, "level": level}
        values.update(release=release, environment=environment)
        if lo <= minute < hi and all(values[k] == v for k, v in filters.items() if v):
            out[minute] += 1
    return dict(out)


def expected_users(events, since, until) -> dict[str, int]:
    lo, hi = queries.minute_range(since, until)
    users = collections.defaultdict(set)
    for e in events:
        if lo <= e["key"][0] < hi and e["user"] is not None:
            users[e["fp"]].add(e["user"])
    return {fp: len(u) for fp, u in users.items()}


def answers(backend) -> dict:
    out = {}
    for r, (since, until) in enumerate(RANGES):
        for f, filters in enumerate(FILTERS):
            for bucket in (None, 60, 300, 3600, 3 * 3600, DAY):
                if bucket == 60 and until - since > 2 * DAY:
                    continue
                out["timeline", r, f, bucket] = queries.timeline(
                    backend, since, until, bucket, **filters
                )
            top_filters = {k: v for k, v in filters.items() if k != "fingerprint"}
            for order in queries.TOP_ORDERS:
                out["top", r, f, order] = queries.top_issues(
                    backend, since, until, order, limit=100, **top_filters
                )
        for fp in FINGERPRINTS:
            out["detail", r, fp] = queries.issue_detail(backend, fp, since, until)
    for fp in FINGERPRINTS:  # no range: the users are every month state of the issue
        out["detail_all", fp] = queries.issue_detail(backend, fp)
    return out


def minutes_only(backend, monkeypatch) -> dict:
    """Every answer read from event_minutes alone: no rollups, issue detail's split from
    event_minutes instead of issue_days / issue_minutes, its users from every span of the
    range instead of month states (over all time they are read from the month states
    still: ``check_against_generated`` checks those against the generated users)."""
    users = queries.users_by_fingerprint
    with monkeypatch.context() as m:
        m.setattr(queries, "TIERS", (queries.MINUTES,))
        m.setattr(queries, "ISSUE_TIERS", (queries.MINUTES,))
        m.setattr(
            queries,
            "users_by_fingerprint",
            lambda b, fps, since, until, records=None, **f: users(b, fps, since, until, **f),
        )
        return answers(backend)


def assert_issue_minutes_are_event_minutes(backend) -> None:
    """issue_minutes holds event_minutes' keys with the same counts (legacy keys with 0)."""
    db = backend.database
    keys = "minute, service, fingerprint, level, release, environment"
    rows = [
        backend.query(f"SELECT {keys}, {count} AS n FROM {db}.{table} FINAL ORDER BY {keys}")
        for table, count in (("event_minutes", "events"), ("issue_minutes", "events"))
    ]
    assert rows[0] and rows[0] == rows[1]


@pytest.fixture(scope="module")
def data():
    return generate(4000, seed=3)


@pytest.fixture(scope="module")
def backend(tmp_path_factory, data):
    b = ChdbBackend(str(tmp_path_factory.mktemp("rollups") / "clickhouse"), "rollups")
    migrate(b, 90)
    batches, bodies, _ = data
    load(b, batches, bodies)
    yield b
    b.close()


def test_ranges_really_use_the_rollups():
    parts = queries.spans(*queries.minute_range(*RANGES[0]))
    assert [(t.table, lo - D0, hi - D0) for t, lo, hi in parts] == [
        ("event_minutes", -147 * 60, -2 * 3600),
        ("event_hours", -2 * 3600, 0),
        ("event_days", 0, 2 * DAY),
        ("event_hours", 2 * DAY, 2 * DAY + 5 * 3600),
        ("event_minutes", 2 * DAY + 5 * 3600, 2 * DAY + 5 * 3600 + 13 * 60),
    ]
    assert queries.spans(*queries.minute_range(*RANGES[4])) == [
        (queries.MINUTES, D0 + 300, D0 + 47 * 60)
    ]
    # a level filter cannot be answered by a rollup; a 15-minute bucket not by an hourly one
    assert queries.usable_tiers({"level": "error"}) == (queries.MINUTES,)
    assert queries.usable_tiers({"service": "a"}, 900) == (queries.MINUTES,)
    assert queries.usable_tiers({}, 3 * 3600) == (queries.HOURS, queries.MINUTES)


def test_rollup_answers_equal_minute_table_answers(backend, data, monkeypatch):
    _, _, events = data
    # the rollups hold every contract count (legacy ones are in their own table)
    db = backend.database
    contract = backend.query(
        f"SELECT sum(events) AS n FROM {db}.event_minutes FINAL"
        " UNION ALL "
        f"SELECT sum(arraySum(mapValues(counts))) FROM {db}.event_hours FINAL"
        " UNION ALL "
        f"SELECT sum(arraySum(mapValues(counts))) FROM {db}.event_days FINAL"
    )
    assert len({int(r["n"]) for r in contract}) == 1
    legacy = backend.query(
        f"SELECT uniqExactMerge(legacy_events) AS n FROM {db}.event_minutes_legacy"
    )
    assert int(legacy[0]["n"]) == sum(1 for b in data[0][:8] for row in b if row[6] == 0)

    tiered = answers(backend)
    assert tiered == minutes_only(backend, monkeypatch)
    check_against_generated(tiered, events)
    assert_issue_minutes_are_event_minutes(backend)


def test_users_read_from_the_day_users_table_are_the_same(backend, data, monkeypatch):
    # the ranges here span at most 2 whole days: let every whole day read event_day_users
    with monkeypatch.context() as m:
        m.setattr(queries, "DAY_USERS_MIN_SPAN", DAY)
        got = answers(backend)
    assert got == answers(backend)
    check_against_generated(got, data[2])


def check_against_generated(got: dict, events: list[dict]) -> None:
    for r, (since, until) in enumerate(RANGES):
        for f, filters in enumerate(FILTERS):
            per_minute = expected_counts(events, since, until, **filters)
            for bucket in (None, 3600, DAY):
                tl = got["timeline", r, f, bucket]
                size = tl["bucket_seconds"]
                want: collections.Counter = collections.Counter()
                for minute, n in per_minute.items():
                    want[minute // size * size] += n
                assert {p["ts"]: p["events"] for p in tl["points"] if p["events"]} == dict(want)
            top_filters = {k: v for k, v in filters.items() if k != "fingerprint"}
            per_fp = collections.Counter()
            lo, hi = queries.minute_range(since, until)
            for e in events:
                minute, service, fp, level, release, environment = e["key"]
                values = {"service": service, "level": level, "environment": environment}
                if lo <= minute < hi and all(values[k] == v for k, v in top_filters.items()):
                    per_fp[fp] += 1
            top = got["top", r, f, "count"]["issues"]
            assert {i["fingerprint"]: i["events"] for i in top} == dict(per_fp)
            if not top_filters:
                users = expected_users(events, since, until)
                assert {i["fingerprint"]: i["users"] for i in top} == {
                    fp: users.get(fp, 0) for fp in per_fp
                }
        lo, hi = queries.minute_range(since, until)
        for fp in FINGERPRINTS:
            detail = got["detail", r, fp]
            n = sum(expected_counts(events, since, until, fingerprint=fp).values())
            assert (detail["events"] if detail else 0) == n
            if not detail:
                continue
            assert detail["users"] == expected_users(events, since, until).get(fp, 0)
            mine = [e for e in events if e["fp"] == fp and lo <= e["key"][0] < hi]
            for name, i in (("levels", 3), ("releases", 4), ("environments", 5)):
                split = collections.Counter(e["key"][i] for e in mine)
                assert {v["value"]: v["events"] for v in detail[name]} == dict(split)
            if fp == "fp5":  # no issue state: first and last seen are the minutes'
                minutes = [e["key"][0] for e in mine]
                assert (detail["first_seen"], detail["last_seen"]) == (min(minutes), max(minutes))
    everything = expected_users(events, START - DAY, END + DAY)
    for fp in FINGERPRINTS:
        detail, mine = got["detail_all", fp], [e for e in events if e["fp"] == fp]
        assert (detail["events"], detail["users"]) == (len(mine), everything.get(fp, 0))
        for name, i in (("levels", 3), ("releases", 4), ("environments", 5)):
            split = collections.Counter(e["key"][i] for e in mine)
            assert {v["value"]: v["events"] for v in detail[name]} == dict(split)


def test_answers_survive_merges_and_more_replays(backend, data, monkeypatch):
    batches, _, events = data
    before = answers(backend)
    backend.insert("event_minutes_input", MINUTE_COLUMNS, batches[0] + batches[5])
    assert answers(backend) == before
    for table in COUNT_TABLES:
        backend.command(f"OPTIMIZE TABLE {backend.database}.{table} FINAL")
    assert answers(backend) == before
    assert minutes_only(backend, monkeypatch) == before
    assert_issue_minutes_are_event_minutes(backend)


def test_backfill_of_existing_minutes_is_exact(backend, data, monkeypatch):
    """Data inserted before migration 0006 (so only in event_minutes) is backfilled into the
    rollups and the legacy table, data inserted before 0007 into the users table, data
    inserted before 0009 into issue_minutes, data inserted before 0010 into issue_days and
    issue_month_users; later rows, including replays of the earlier ones, are counted once."""
    batches, bodies, events = data
    b = ChdbBackend(backend.path, "backfill")
    every = migrate_module.load_migrations()
    try:
        for below, batch in (
            (6, batches[:3]),
            (7, batches[3:5]),
            (9, batches[5:6]),
            (10, batches[6:7]),
        ):
            with monkeypatch.context() as m:
                m.setattr(
                    migrate_module,
                    "load_migrations",
                    lambda below=below: [x for x in every if x.version < below],
                )
                migrate(b, 90)
            for rows in batch:
                b.insert("event_minutes_input", MINUTE_COLUMNS, rows)
        applied = [x.name for x in migrate(b, 90)]  # 0010 and every later migration
        assert applied == [x.name for x in every if x.version >= 10]
        assert applied[0] == "issue_detail_rollups"
        assert migrate(b, 90) == []  # a second run does nothing
        load(b, batches[5:] + [batches[1], batches[3], batches[6]], bodies, optimize_between=False)
        got = answers(b)
        assert got == answers(backend)
        assert got == minutes_only(b, monkeypatch)
        check_against_generated(got, events)
        assert_issue_minutes_are_event_minutes(b)
        with monkeypatch.context() as m:  # the backfilled users table answers the same
            m.setattr(queries, "DAY_USERS_MIN_SPAN", DAY)
            assert answers(b) == got
    finally:
        b.close()


def body_row(fp: str, event_id: str, ts: float, n: int) -> tuple:
    return (
        event_id,
        ts,
        ts,
        "api",
        "prod",
        "app@1.0",
        "error",
        fp,
        fp,
        f'{{"tags":{{"n":"{n}"}}}}',
        0,
    )


def plain_latest(b, fp: str) -> str:
    rows = b.query(
        f"SELECT event_id FROM {b.database}.events WHERE fingerprint = {{fp:String}} "
        "ORDER BY timestamp DESC, event_id DESC LIMIT 1",
        {"fp": fp},
    )
    return rows[0]["event_id"]


def test_latest_event_is_the_latest_stored_body(backend, monkeypatch):
    """issue_latest (migration 0010) gives the body ``ORDER BY timestamp DESC, event_id DESC
    LIMIT 1`` over events gives: bodies stored before the migration (its backfill) and after,
    out of order, a tie on the timestamp, replays, merges; whatever the issue's last_seen
    says; and a shed body (no events row) is never it."""
    b = ChdbBackend(backend.path, "latest")  # one embedded engine per process: its folder
    every = migrate_module.load_migrations()
    try:
        with monkeypatch.context() as m:
            m.setattr(
                migrate_module, "load_migrations", lambda: [x for x in every if x.version < 10]
            )
            migrate(b, 90)
        fp = "fp-latest"
        b.insert("events", EVENT_COLUMNS, [body_row(fp, "e0", D0 + 3600.25, 0)])
        assert [x.name for x in migrate(b, 90)] == ["issue_detail_rollups"]
        backfilled = b.query(
            f"SELECT argMaxMerge(latest).1 AS id FROM {b.database}.issue_latest "
            "WHERE fingerprint = {fp:String}",
            {"fp": fp},
        )
        assert backfilled == [{"id": "e0"}]
        later = [
            body_row(fp, "e2", D0 + DAY + 7300.75, 2),
            body_row(fp, "e1", D0 + DAY + 7200.5, 1),
        ]
        b.insert("events", EVENT_COLUMNS, later)
        b.insert(
            "event_minutes_input",
            MINUTE_COLUMNS,
            [
                (int(ts // 60 * 60), "api", fp, "error", "app@1.0", "prod", 1, f"e{i}", 0, 0)
                for i, ts in enumerate([D0 + 3600.25, D0 + DAY + 7200.5, D0 + DAY + 7300.75])
            ],
        )
        for version, last_seen in enumerate((D0 + DAY + 7300.75, D0 + 5 * DAY, D0 + 60), 1):
            state = [fp, "api", "t", "x", "bug", "ongoing", D0, last_seen, 3, 0, [], version]
            b.insert("issues", ISSUE_COLUMNS, [state])
            detail = queries.issue_detail(b, fp)
            assert (detail["issue"]["last_seen"], detail["events"]) == (last_seen, 3)
            latest = detail["latest_event"]
            assert (latest["event_id"], latest["timestamp"], latest["tags"]) == (
                "e2",
                D0 + DAY + 7300.75,
                {"n": "2"},
            )
        # a tie on the timestamp goes to the greater event_id, as the plain statement has it
        b.insert("events", EVENT_COLUMNS, [body_row(fp, "e3", D0 + DAY + 7300.75, 3)])
        assert (
            queries.issue_detail(b, fp)["latest_event"]["event_id"] == "e3" == plain_latest(b, fp)
        )
        # replays of older bodies and merges change nothing
        b.insert("events", EVENT_COLUMNS, later + [body_row(fp, "e0", D0 + 3600.25, 0)])
        b.command(f"OPTIMIZE TABLE {b.database}.issue_latest FINAL")
        assert (
            queries.issue_detail(b, fp)["latest_event"]["event_id"] == "e3" == plain_latest(b, fp)
        )
        # a newer record whose body was shed (counted, not stored) is not the latest body
        b.insert(
            "event_minutes_input",
            MINUTE_COLUMNS,
            [(D0 + 2 * DAY, "api", fp, "error", "app@1.0", "prod", 1, "e4", 0, 0)],
        )
        detail = queries.issue_detail(b, fp)
        assert (detail["events"], detail["latest_event"]["event_id"]) == (4, "e3")
        # an issue with records and no stored body at all has no latest event
        b.insert(
            "event_minutes_input",
            MINUTE_COLUMNS,
            [(D0, "api", "fp-shed", "error", "app@1.0", "prod", 1, "e5", 0, 0)],
        )
        detail = queries.issue_detail(b, "fp-shed")
        assert (detail["events"], detail["latest_event"]) == (1, None)
    finally:
        b.close()
