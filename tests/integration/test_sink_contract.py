"""The ClickHouse sink alone, on the real broker and the real embedded engine.

Each test produces processed-topic records per the stream-agents contract directly, runs the
sink in-process against its own chDB folder (test code holds the same Backend), and checks
ClickHouse against counts computed independently from the produced records.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline import queries
from pipeline.metrics import Metrics
from pipeline.settings import Settings
from pipeline.sinks.clickhouse import ClickHouseSink, send_dead_letter_with
from pipeline.storage import ChdbBackend
from pipeline.storage.migrate import migrate

pytestmark = pytest.mark.integration

NOW = time.time()
BASE = int(NOW // 60 * 60) - 3600  # an hour ago, minute-aligned
LEVELS = ("error", "warning")


def contract_records(n: int, seed: int = 7) -> tuple[list[tuple[bytes, bytes]], dict]:
    """``n`` events over 30 minutes, 3 fingerprints, per the contract: exact cumulative
    minute counts, some bodies shed, users hashed, issue snapshots with versions; plus the
    expected per-minute counts and distinct users computed here, independently."""
    rnd = random.Random(seed)
    minute_counts: collections.Counter = collections.Counter()
    expected_minutes: collections.Counter = collections.Counter()
    users: dict[str, set] = collections.defaultdict(set)
    versions: collections.Counter = collections.Counter()
    stored = 0
    out = []
    for i in range(n):
        fp = f"fp{i % 3}"
        ts = BASE + rnd.uniform(0, 1800)
        minute = int(ts // 60 * 60)
        level = LEVELS[i % 7 == 0]
        release = f"app@1.{i % 2}"
        key = ("svc", fp, minute, level, release, "prod")
        minute_counts[key] += 1
        expected_minutes[minute] += 1
        uhash = (i % 11) * 1_000_003 if i % 5 else None
        if uhash is not None:
            users[fp].add(uhash)
        versions[fp] += 1
        body_stored = i % 4 != 0
        stored += body_stored
        meta = {
            "ts": ts,
            "received_at": ts + 0.01,
            "fingerprint": fp,
            "grouping_variant": "app",
            "title": f"Error {fp}",
            "culprit": "app.views in pay",
            "category": "database" if fp == "fp0" else "bug",
            "secondary_fingerprints": [],
            "body_stored": body_stored,
            "shed_reason": None if body_stored else "fingerprint_limit",
            "sample_rate": 1.0,
            "minute": minute,
            "minute_count": minute_counts[key],
            "user_hash": uhash,
            "issue": {
                "fingerprint": fp,
                "service": "svc",
                "title": f"Error {fp}",
                "culprit": "app.views in pay",
                "category": "database" if fp == "fp0" else "bug",
                "status": "ongoing",
                "first_seen": BASE,
                "last_seen": ts,
                "count": versions[fp],
                "users": len(users[fp]),
                "levels": ["error"],
                "resolved_at": None,
                "resolved_in_release": None,
                "version": versions[fp],
            },
        }
        record = {
            "event_id": uuid.UUID(int=rnd.getrandbits(128)).hex,
            "timestamp": ts,
            "service": "svc",
            "level": level,
            "release": release,
            "environment": "prod",
            "_meta": meta,
        }
        if body_stored:
            record["platform"] = "python"
            record["exception"] = {
                "values": [
                    {
                        "type": "KeyError",
                        "value": f"'k{i}'",
                        "stacktrace": {"frames": [{"filename": "app/views.py", "lineno": 3}]},
                    }
                ]
            }
        out.append((fp.encode(), orjson.dumps(record)))
    expected = {
        "minutes": dict(expected_minutes),
        "total": n,
        "stored": stored,
        "users": {fp: len(u) for fp, u in users.items()},
        "versions": dict(versions),
    }
    return out, expected


async def create_topics(bootstrap: str, *names: str, partitions: int = 2) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()
    await asyncio.sleep(0.5)


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def sink_settings(bootstrap: str, tag: str, **extra) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        app_id=f"sink-{tag}",
        topic_processed=f"t-{tag}-processed",
        topic_alerts=f"t-{tag}-alerts",
        topic_dlq=f"t-{tag}-dlq",
        sink_max_batch_size=extra.pop("sink_max_batch_size", 200),
        sink_max_batch_time=0.2,
        sink_retry_max_backoff=0.5,
        **extra,
    )


class RunningSink:
    """The sink in this process and event loop, with a dead-letter producer."""

    def __init__(self, settings: Settings, backend, group_id: str | None = None) -> None:
        self.settings, self.backend, self.group_id = settings, backend, group_id

    async def __aenter__(self) -> ClickHouseSink:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap)
        await self.producer.start()
        dlq = send_dead_letter_with(self.producer, self.settings.topic_dlq)
        self.sink = ClickHouseSink(
            self.settings, self.backend, Metrics(), dlq, group_id=self.group_id
        )
        self.task = asyncio.ensure_future(self.sink.run())
        return self.sink

    async def __aexit__(self, *exc) -> None:
        self.sink.stop()
        await asyncio.wait_for(self.task, 60)
        await self.producer.stop()


async def wait_until(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.2)
    return value


def snapshot(backend) -> dict:
    """Every count the sink's tables answer."""
    tl = queries.timeline(backend, BASE - 120, BASE + 1920, bucket=60)
    top = queries.top_issues(backend, BASE - 120, BASE + 1920, order="count")
    return {
        "minutes": {p["ts"]: p["events"] for p in tl["points"] if p["events"]},
        "total": tl["total"],
        "stored": queries.event_count(backend)["events"],
        "users": {i["fingerprint"]: i["users"] for i in top["issues"]},
        "versions": {
            r["fingerprint"]: int(r["version"])
            for r in backend.query(
                f"SELECT fingerprint, version FROM {backend.database}.issues FINAL"
            )
        },
    }


@pytest.fixture
def backend(tmp_path):
    b = ChdbBackend(str(tmp_path / "clickhouse"), "errorstream")
    migrate(b, 90)
    yield b
    b.close()


async def test_timeline_matches_produced_counts_and_replay_changes_nothing(
    kafka_bootstrap, backend
):
    tag = uuid.uuid4().hex[:8]
    s = sink_settings(kafka_bootstrap, tag)
    await create_topics(kafka_bootstrap, s.topic_processed, s.topic_alerts, s.topic_dlq)
    records, expected = contract_records(1500)
    await produce(kafka_bootstrap, s.topic_processed, records)

    async with RunningSink(s, backend) as sink:
        assert await wait_until(lambda: sink.committed_messages >= len(records))
    first = snapshot(backend)
    # Shed bodies count in the timeline; only stored bodies are in the events table.
    assert first == expected

    # Replay: the same partitions from offset 0 in a new consumer group, and the same
    # records produced a second time. Every count stays as it was.
    await produce(kafka_bootstrap, s.topic_processed, records)
    async with RunningSink(s, backend, group_id=f"replay-{tag}") as sink:
        assert await wait_until(lambda: sink.committed_messages >= 2 * len(records))
    assert snapshot(backend) == first
    backend.command(f"OPTIMIZE TABLE {backend.database}.event_minutes FINAL")
    backend.command(f"OPTIMIZE TABLE {backend.database}.events FINAL")
    assert snapshot(backend) == first


async def test_engine_refusing_inserts_loses_nothing(kafka_bootstrap, backend):
    """The real engine refuses inserts (its events table detached), the sink backs off and
    pauses, then everything lands once the table is back."""
    tag = uuid.uuid4().hex[:8]
    s = sink_settings(kafka_bootstrap, tag, sink_max_batch_size=100)
    await create_topics(kafka_bootstrap, s.topic_processed, s.topic_alerts, s.topic_dlq)
    records, expected = contract_records(1200, seed=11)
    db = backend.database
    async with RunningSink(s, backend) as sink:
        await produce(kafka_bootstrap, s.topic_processed, records[:300])
        assert await wait_until(lambda: sink.committed_messages >= 300)

        await asyncio.to_thread(backend.command, f"DETACH TABLE {db}.events")
        await produce(kafka_bootstrap, s.topic_processed, records[300:])
        assert await wait_until(lambda: not sink.healthy, timeout=30)
        assert await wait_until(lambda: sink.paused, timeout=30)  # backpressure
        committed_while_down = sink.committed_messages
        await asyncio.sleep(2.0)
        assert sink.committed_messages == committed_while_down  # nothing acked while down
        assert sink.metrics.sink_retries._value.get() > 0

        await asyncio.to_thread(backend.command, f"ATTACH TABLE {db}.events")
        assert await wait_until(lambda: sink.committed_messages >= len(records))
        assert sink.healthy
    assert snapshot(backend) == expected


async def test_rows_the_engine_rejects_go_to_the_dead_letter_topic(kafka_bootstrap, backend):
    tag = uuid.uuid4().hex[:8]
    s = sink_settings(kafka_bootstrap, tag)
    await create_topics(kafka_bootstrap, s.topic_processed, s.topic_alerts, s.topic_dlq)
    records, _ = contract_records(60, seed=3)
    good = [r for r in records if orjson.loads(r[1])["_meta"]["body_stored"]]
    bad = orjson.loads(good[5][1])
    bad["event_id"] = "x" * 300  # the events table's constraint refuses it
    batch = good[:5] + [(b"fp", orjson.dumps(bad)), (b"fp", b"{not json")] + good[6:]
    await produce(kafka_bootstrap, s.topic_processed, batch)
    async with RunningSink(s, backend) as sink:
        assert await wait_until(lambda: sink.committed_messages >= len(batch))
    assert queries.event_count(backend)["events"] == len(good) - 1
    consumer = AIOKafkaConsumer(
        s.topic_dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        dead = []
        deadline = time.monotonic() + 20
        while len(dead) < 2 and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                dead.extend(orjson.loads(m.value) for m in msgs)
    finally:
        await consumer.stop()
    errors = sorted(d["error"] for d in dead)
    assert len(dead) == 2
    assert any("VIOLATED_CONSTRAINT" in e for e in errors)
    assert all(d["reason"] == "sink_rejected" for d in dead)


async def test_alerts_and_issue_states_are_stored_once(kafka_bootstrap, backend):
    tag = uuid.uuid4().hex[:8]
    s = sink_settings(kafka_bootstrap, tag)
    await create_topics(kafka_bootstrap, s.topic_processed, s.topic_alerts, s.topic_dlq)
    alert = {
        "schema_version": 1,
        "alert_id": "ab" * 16,
        "kind": "spike",
        "created_at": "2026-01-01T00:00:00.000Z",
        "event_time": "2026-01-01T00:00:00.000Z",
        "service": "svc",
        "fingerprint": "fp0",
        "title": "Error fp0",
        "numbers": {"count": 40, "baseline": 2.5},
    }
    replayed = dict(alert, created_at="2026-01-01T00:00:05.000Z")
    state = {
        "_kind": "issue_state",
        "issue": {
            "fingerprint": "fp9",
            "service": "svc",
            "title": "t",
            "culprit": "c",
            "category": "bug",
            "status": "resolved",
            "first_seen": NOW - 7200,
            "last_seen": NOW - 3600,
            "count": 3,
            "users": 1,
            "levels": ["error"],
            "resolved_at": NOW - 1800,
            "resolved_in_release": "app@2",
            "version": 4,
        },
    }
    older = {"_kind": "issue_state", "issue": dict(state["issue"], status="ongoing", version=3)}
    await produce(
        kafka_bootstrap, s.topic_alerts, [(b"fp0", orjson.dumps(a)) for a in (alert, replayed)]
    )
    await produce(
        kafka_bootstrap, s.topic_processed, [(b"fp9", orjson.dumps(x)) for x in (state, older)]
    )
    async with RunningSink(s, backend) as sink:
        assert await wait_until(lambda: sink.committed_messages >= 4)
    history = queries.alerts(backend, NOW - 10 * 365 * 86400, NOW)["alerts"]
    assert [a["alert_id"] for a in history] == [alert["alert_id"]]
    assert history[0]["numbers"] == {"count": 40, "baseline": 2.5}
    mttr = queries.mean_time_to_resolution(backend, NOW - 86400, NOW)
    assert mttr["resolved"] == 1 and round(mttr["mean_seconds"]) == 5400


def test_migrations_run_twice_are_a_no_op(tmp_path):
    backend = ChdbBackend(str(tmp_path / "ch"), "errorstream")
    try:
        assert migrate(backend, 90)
        tables = backend.query("SHOW CREATE TABLE errorstream.events")
        assert migrate(backend, 90) == []
        assert backend.query("SHOW CREATE TABLE errorstream.events") == tables
        # retention_days changes are applied on migrate, once
        migrate(backend, 30)
        from pipeline.storage.migrate import apply_retention, current_retention

        assert current_retention(backend) == 30
        assert apply_retention(backend, 30) is False
        # issue_latest holds a body per issue: it follows the events table's retention
        ttl = backend.query(
            "SELECT engine_full FROM system.tables "
            "WHERE database = 'errorstream' AND name = 'issue_latest'"
        )
        assert "toIntervalDay(30)" in ttl[0]["engine_full"]
    finally:
        backend.close()


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from aiokafka import TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(
            group, partitions=[TopicPartition(topic, p) for p in range(2)]
        )
    finally:
        await admin.close()
    return {tp.partition: m.offset for tp, m in offsets.items() if m is not None and m.offset >= 0}


async def test_no_offset_passes_a_dead_letter_the_broker_did_not_acknowledge(
    kafka_bootstrap, backend
):
    """The sink process's runner (own producer, dead letters acknowledged before the commit):
    when the broker refuses the dead letter (here: a topic name it rejects), the batch that
    produced it is never committed and the sink stops with the error; a sink whose dead
    letters are delivered then replays the batch and commits it."""
    from pipeline.roles import SinkRunner

    tag = uuid.uuid4().hex[:8]
    s = sink_settings(kafka_bootstrap, tag).replace(topic_dlq="refused/dead-letters")
    await create_topics(kafka_bootstrap, s.topic_processed, s.topic_alerts)
    records, _ = contract_records(20, seed=5)
    batch = records[:10] + [(b"fp0", b"{not json")] + records[10:]
    await produce(kafka_bootstrap, s.topic_processed, batch)
    runner = SinkRunner(s, backend, Metrics())
    with pytest.raises(Exception) as refused:
        await asyncio.wait_for(runner.run(), 120)
    assert not isinstance(refused.value, asyncio.TimeoutError)
    assert await committed(kafka_bootstrap, runner.sink.group_id, s.topic_processed) == {}

    good = s.replace(topic_dlq=f"t-{tag}-dlq")
    await create_topics(kafka_bootstrap, good.topic_dlq)
    runner = SinkRunner(good, backend, Metrics())
    task = asyncio.ensure_future(runner.run())
    try:
        assert await wait_until(lambda: runner.sink.committed_messages >= len(batch))
    finally:
        runner.stop()
        await asyncio.wait_for(task, 60)
    assert sum(
        (await committed(kafka_bootstrap, runner.sink.group_id, s.topic_processed)).values()
    ) == len(batch)
    consumer = AIOKafkaConsumer(
        good.topic_dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        dead = []
        deadline = time.monotonic() + 20
        while not dead and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                dead.extend(orjson.loads(m.value) for m in msgs)
    finally:
        await consumer.stop()
    assert [d["payload"] for d in dead] == ["{not json"]
