"""Stream agents on the real broker with the real worker: alerts, crash recovery, scaling.

Event timestamps drive the windows: an hour of history is produced with old timestamps, then
bursts at "now". Nothing is mocked; every check reads a real topic or the worker's API.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pipeline.control import make_command, send_command
from pipeline.grouping import GroupingConfig, group_event
from pipeline.settings import load_settings
from pipeline.stages.decode import DecodedEvent, decode_event
from pipeline.stages.envelope import unpack
from tests.integration.harness import WorkerProcess, pipeline_env

pytestmark = pytest.mark.integration
CONFIG = GroupingConfig()
_counter = iter(range(10**9))


def event(kind: str, ts: float, service: str, **extra: Any) -> dict:
    """An event whose fingerprint is decided by ``kind`` (the exception type)."""
    return {
        "event_id": f"{next(_counter):032x}",
        "timestamp": ts,
        "service": service,
        "level": "error",
        "platform": "python",
        "release": f"{service}@1.0.0",
        "environment": "test",
        "exception": {"values": [{"type": kind, "value": "boom", "module": "app"}]},
        **extra,
    }


def fingerprint(e: dict) -> str:
    decoded = decode_event(orjson.dumps(e))
    assert isinstance(decoded, DecodedEvent)
    return group_event(decoded.event, CONFIG).fingerprint


async def _produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for e in events:
            await producer.send(topic, orjson.dumps(e), key=e["service"].encode())  # in order
        await producer.flush()
    finally:
        await producer.stop()


def produce(env: dict, events: list[dict]) -> None:
    asyncio.run(
        _produce(env["ERRORSTREAM_KAFKA_BOOTSTRAP"], env["ERRORSTREAM_TOPIC_EVENTS"], events)
    )


async def _read_all(bootstrap: str, topic: str, idle: float) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        last = time.monotonic()
        while time.monotonic() - last < idle:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                values.extend(m.value for m in messages)
                last = time.monotonic()
    finally:
        await consumer.stop()
    return values


def read_all(env: dict, topic_key: str, idle: float = 2.0) -> list[dict]:
    raw = asyncio.run(_read_all(env["ERRORSTREAM_KAFKA_BOOTSTRAP"], env[topic_key], idle))
    return [orjson.loads(line) for v in raw for line in unpack(v)]  # envelopes: JSON Lines


def issue_counts(*workers: WorkerProcess) -> dict[str, int]:
    out: dict[str, int] = {}
    for w in workers:
        for issue in w.get("/api/state/issues")["issues"]:
            # a standby replica of another worker's partition may lag: the active one is the max
            out[issue["fingerprint"]] = max(out.get(issue["fingerprint"], 0), issue["count"])
    return out


def wait_counts(workers, total: int, timeout: float = 90.0) -> dict[str, int]:
    def done():
        counts = issue_counts(*workers)
        return counts if sum(counts.values()) >= total else None

    return workers[0].wait_for(done, timeout=timeout) or issue_counts(*workers)


def history(kinds: list[str], service: str, start: float) -> list[dict]:
    """One event per fingerprint every 5 minutes for 65 minutes (a full baseline)."""
    return [event(k, start + m * 60, service) for m in range(0, 65, 5) for k in kinds]


def burst(kinds: list[str], service: str, ts: float, n: int, **extra: Any) -> list[dict]:
    return [event(k, ts + i * 0.01, service, **extra) for i in range(n) for k in kinds]


def test_each_alert_kind_fires_exactly_when_it_should(kafka_bootstrap, tmp_path):
    env = pipeline_env(
        kafka_bootstrap,
        tmp_path / "data",
        spike_min_count=10,
        service_spike_min_count=100000,
        error_rate_per_minute=100000,
        threshold_rules="events>25/5m",
        incident_min_issues=3,
        partitions=1,  # service-level rules compare per-partition shares: one partition here
    )
    now = time.time() // 60 * 60 + 30  # mid-minute: the burst stays in one minute
    start = now - 3900
    pay = ["PayTimeout", "PayDeclined"]
    shop = [f"ShopError{k}" for k in range(6)]
    events = history(pay, "pay", start) + history(shop, "shop", start)
    fps = {k: fingerprint(event(k, now, "pay" if k in pay else "shop")) for k in pay + shop}
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        produce(env, events)
        wait_counts([worker], len(events))
        # the bursts: one spiking issue in pay, six at once in shop, a threshold in a new issue,
        # a fatal event of a known issue, and a late event that must not alert
        events2 = burst(["PayTimeout"], "pay", now, 12)
        events2 += burst(shop, "shop", now, 12)
        events2 += burst(["ThrError"], "thr", now, 30)
        events2 += [event("PayDeclined", now + 1, "pay", level="fatal")]
        events2 += [event("PayDeclined", now - 1800, "pay") for _ in range(15)]
        fps["ThrError"] = fingerprint(event("ThrError", now, "thr"))
        produce(env, events2)
        wait_counts([worker], len(events) + len(events2))

        # regression: resolve in pay@1.2.10; an old release and an old event do not reopen it
        settings = load_settings(env=env)
        declined = fps["PayDeclined"]
        asyncio.run(send_command(settings, make_command("resolve", declined, release="pay@1.2.10")))

        def resolved():
            states = {i["fingerprint"]: i for i in worker.get("/api/state/issues")["issues"]}
            return states[declined]["status"] == "resolved"

        assert worker.wait_for(resolved, timeout=30)
        later = time.time() + 30
        tail = [
            event("PayDeclined", later, "pay", release="pay@1.2.9"),
            event("PayDeclined", now - 600, "pay", release="pay@1.3.0"),
            event("PayDeclined", later + 1, "pay", release="pay@1.2.10"),
        ]
        tail += burst(["PayTimeout"], "pay", now + 60, 12)  # within the spike cooldown
        produce(env, tail)
        wait_counts([worker], len(events) + len(events2) + len(tail))
        alerts = read_all(env, "ERRORSTREAM_TOPIC_ALERTS")
    finally:
        code = worker.stop()
    by_kind = collections.defaultdict(list)
    for a in alerts:
        by_kind[a["kind"]].append(a)
    assert sorted(a["fingerprint"] for a in by_kind["new_issue"]) == sorted(fps.values())
    # ingest partitions interleave, so which shop issues spike first is not fixed: two spike
    # alerts, then the third makes the incident that lists all three; the other three join it
    shop_fps = {fps[k] for k in shop}
    spiked = [a["fingerprint"] for a in by_kind["spike"]]
    assert fps["PayTimeout"] in spiked and len(spiked) == 3
    shop_spiked = [fp for fp in spiked if fp != fps["PayTimeout"]]
    assert set(shop_spiked) <= shop_fps
    spike = next(a for a in by_kind["spike"] if a["fingerprint"] == fps["PayTimeout"])
    assert spike["numbers"]["count"] == 10 and spike["numbers"]["baseline"] == 1.0
    [incident] = by_kind["incident"]
    assert incident["fingerprints"][:2] == shop_spiked and len(incident["fingerprints"]) == 3
    assert set(incident["fingerprints"]) <= shop_fps and incident["service"] == "shop"
    [threshold] = by_kind["threshold"]
    assert threshold["fingerprint"] == fps["ThrError"] and threshold["numbers"]["count"] == 26
    [critical] = by_kind["critical"]
    assert critical["fingerprint"] == declined and critical["level"] == "fatal"
    [regression] = by_kind["regression"]
    assert regression["event_id"] == tail[2]["event_id"]
    assert set(by_kind) == {"new_issue", "spike", "incident", "threshold", "critical", "regression"}
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    assert code == 0


def mixed_events(n: int, services: int, kinds: int, with_users: bool = True) -> list[dict]:
    now = time.time() // 60 * 60
    out = []
    for i in range(n):
        out.append(
            event(
                f"Err{i % kinds}",
                now - 600 + (i % 600),
                f"svc{i % services}",
                user={"id": f"u{i % 50}"} if with_users else None,
            )
        )
    return out


def expected_minute_counts(events: list[dict]) -> dict[tuple, int]:
    counts: collections.Counter = collections.Counter()
    for e in events:
        key = (e["service"], fingerprint(e), int(e["timestamp"] // 60 * 60))
        counts[key] += 1
    return dict(counts)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_sigkill_mid_stream_recovers_without_lost_or_double_counts(
    kafka_bootstrap, tmp_path, store
):
    """With the in-memory store the restarted worker rebuilds its tables from the changelog
    alone; with RocksDB (the production store) it starts from what its local store has and
    reads the changelog from the persisted offsets on."""
    env = pipeline_env(kafka_bootstrap, tmp_path / "data", table_store=store)
    events = mixed_events(4000, services=3, kinds=6)
    duplicates = events[100:300]  # a producer retry: the same event_ids again
    expected = collections.Counter(fingerprint(e) for e in events)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        produce(env, events[:2000])
        assert worker.wait_for(lambda: sum(issue_counts(worker).values()) >= 500, timeout=60)
        produce(env, events[2000:] + duplicates)  # still flowing when the worker dies
        worker.kill()
        worker = WorkerProcess(env, tmp_path / "worker.log").start()
        counts = wait_counts([worker], len(events))
        time.sleep(2)  # duplicates or replays would show up as extra counts now
        counts = issue_counts(worker)
        processed = read_all(env, "ERRORSTREAM_TOPIC_PROCESSED")
        alerts = read_all(env, "ERRORSTREAM_TOPIC_ALERTS", idle=1.0)
    finally:
        code = worker.stop()
    assert counts == dict(expected)
    # every event reached the processed topic at least once; max(minute_count) is exact
    assert {r["event_id"] for r in processed} == {e["event_id"] for e in events}
    got: dict[tuple, int] = {}
    for r in processed:
        m = r["_meta"]
        key = (r["service"], m["fingerprint"], m["minute"])
        got[key] = max(got.get(key, 0), m["minute_count"])
    assert got == expected_minute_counts(events)
    # one new_issue per issue: a kill between an alert's delivery and the delivery of the state
    # that remembers it may repeat the alert on the topic, always with the same alert_id (the
    # idempotency key the alerts table and consumers dedup on); never a second id, never none
    new_issues = [a for a in alerts if a["kind"] == "new_issue"]
    ids_by_fp: dict[str, set] = collections.defaultdict(set)
    for a in new_issues:
        ids_by_fp[a["fingerprint"]].add(a["alert_id"])
    assert sorted(ids_by_fp) == sorted(expected)
    assert all(len(ids) == 1 for ids in ids_by_fp.values())
    assert code == 0


def test_two_workers_split_partitions_and_totals_match(kafka_bootstrap, tmp_path):
    env = pipeline_env(kafka_bootstrap, tmp_path / "a", partitions=4)
    (port,) = __import__("pipeline.kafka_local", fromlist=["free_ports"]).free_ports(1)
    env_b = {**env, "ERRORSTREAM_WEB_PORT": str(port), "ERRORSTREAM_DATA_DIR": str(tmp_path / "b")}
    events = mixed_events(3000, services=8, kinds=12)
    expected = collections.Counter(fingerprint(e) for e in events)
    a = WorkerProcess(env, tmp_path / "a.log").start()
    b = None
    try:
        b = WorkerProcess(env_b, tmp_path / "b.log").start()
        time.sleep(3)  # the rebalance that gives b its share
        produce(env, events)
        counts = wait_counts([a, b], len(events))
        share_a, share_b = issue_counts(a), issue_counts(b)
    finally:
        code_b = b.stop() if b else None
        code_a = a.stop()
    assert counts == dict(expected)
    # each worker serves issues; where both show one (faust keeps standby replicas of the
    # other's partitions) the replica agrees
    assert share_a and share_b
    assert all(max(share_a.get(fp, 0), share_b.get(fp, 0)) == n for fp, n in expected.items())
    assert (code_a, code_b) == (0, 0)
