"""Events through the real broker and the real worker: exact counts at every hop."""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pipeline.grouping import GroupingConfig, group_event
from pipeline.stages.decode import DecodedEvent, decode_event
from schemas import example_paths, invalid_expectations
from tests.integration.harness import WorkerProcess, pipeline_env

pytestmark = pytest.mark.integration

BASE_TS = time.time() - 1800  # half an hour ago, spread over 10 minutes


def make_events(n: int) -> list[dict]:
    """Four distinct bugs, repeated with varying ids, hosts and line numbers."""
    events = []
    for i in range(n):
        kind = i % 4
        ts = BASE_TS + (i * 600.0 / n)
        event = {
            "event_id": f"{i:032x}",
            "timestamp": ts,
            "service": "checkout" if kind < 2 else "billing",
            "level": "error",
            "platform": "python",
            "release": "app@1.0.0",
            "environment": "test",
        }
        if kind == 0:
            event["exception"] = {
                "values": [
                    {
                        "type": "ConnectionError",
                        "value": f"Connection to 10.0.0.{i % 200}:5432 timed out after {i % 30}s",
                        "module": "app.db",
                        "stacktrace": {
                            "frames": [
                                {
                                    "module": "app.views",
                                    "function": "pay",
                                    "filename": "app/views.py",
                                    "lineno": 10 + i % 7,
                                    "in_app": True,
                                },
                                {
                                    "module": "app.db",
                                    "function": "connect",
                                    "filename": "app/db.py",
                                    "lineno": 40 + i % 3,
                                    "in_app": True,
                                },
                            ]
                        },
                    }
                ]
            }
        elif kind == 1:
            event["exception"] = {
                "values": [
                    {
                        "type": "KeyError",
                        "value": f"'order-{i}'",
                        "stacktrace": {
                            "frames": [
                                {
                                    "module": "app.cart",
                                    "function": "total",
                                    "filename": "app/cart.py",
                                    "lineno": 5 + i % 11,
                                    "in_app": True,
                                },
                            ]
                        },
                    }
                ]
            }
        elif kind == 2:
            event["message"] = f"invoice {1000 + i} failed for customer {i}@example.com"
        else:
            event["exception"] = {
                "values": [
                    {
                        "type": "ZeroDivisionError",
                        "value": "division by zero",
                        "stacktrace": {
                            "frames": [
                                {
                                    "module": "billing.tax",
                                    "function": "rate",
                                    "filename": "billing/tax.py",
                                    "lineno": 99,
                                    "in_app": True,
                                },
                            ]
                        },
                    }
                ]
            }
        events.append(event)
    return events


async def produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, payload in enumerate(payloads):
            await producer.send(topic, payload, key=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[bytes]:
    """Read a topic from the start until ``expected`` records came, then 1.5 s more for extras."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=250)
            for messages in batch.values():
                values.extend(m.value for m in messages)
            if len(values) >= expected and settle_until is None:
                settle_until = time.monotonic() + 1.5
            if settle_until is not None and time.monotonic() >= settle_until:
                break
    finally:
        await consumer.stop()
    return values


def test_events_flow_end_to_end_with_exact_counts(kafka_bootstrap, tmp_path):
    events = make_events(400)
    invalid = [p.read_bytes() for p in example_paths("event", "invalid")]
    expectations = invalid_expectations("event")
    valid_examples = [p.read_bytes() for p in example_paths("event", "valid")]

    # What the pipeline must find, computed independently from the produced events.
    expected_by_fp: collections.Counter = collections.Counter()
    expected_minutes: collections.Counter = collections.Counter()
    config = GroupingConfig()
    for raw in [orjson.dumps(e) for e in events] + valid_examples:
        decoded = decode_event(raw)
        assert isinstance(decoded, DecodedEvent)
        expected_by_fp[group_event(decoded.event, config).fingerprint] += 1
        expected_minutes[int(decoded.ts // 60 * 60)] += 1
    n_valid = len(events) + len(valid_examples)
    assert len({group_event(e, config).fingerprint for e in events}) == 4

    env = pipeline_env(kafka_bootstrap, tmp_path / "data")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        payloads = [orjson.dumps(e) for e in events] + valid_examples + invalid
        asyncio.run(produce(kafka_bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"], payloads))

        # Hop 1: the dead-letter topic has exactly the invalid ones, each with its reason.
        dlq = asyncio.run(consume(kafka_bootstrap, env["ERRORSTREAM_TOPIC_DLQ"], len(invalid)))
        records = [orjson.loads(v) for v in dlq]
        assert len(records) == len(invalid)
        reasons = collections.Counter(r["reason"] for r in records)
        assert reasons == collections.Counter(x["reason"] for x in expectations.values())
        for record in records:
            assert {"reason", "error", "source", "payload"} <= record.keys()
            assert record["source"]["topic"] == env["ERRORSTREAM_TOPIC_EVENTS"]

        # Hop 2: one new_issue alert per distinct fingerprint, no more.
        alerts_raw = asyncio.run(
            consume(kafka_bootstrap, env["ERRORSTREAM_TOPIC_ALERTS"], len(expected_by_fp))
        )
        alerts = [orjson.loads(v) for v in alerts_raw]
        assert [a["kind"] for a in alerts] == ["new_issue"] * len(expected_by_fp)
        assert sorted(a["fingerprint"] for a in alerts) == sorted(expected_by_fp)

        # Hop 3: the issue table counts every valid event under its fingerprint.
        def issues_complete():
            state = worker.get("/api/state/issues")["issues"]
            got = {i["fingerprint"]: i["count"] for i in state}
            return got if sum(got.values()) >= n_valid else None

        assert worker.wait_for(issues_complete) == dict(expected_by_fp)

        # Hop 4: ClickHouse holds one row per valid event.
        def stored():
            counts = worker.get("/api/counts")
            return counts if counts["events"] >= n_valid else None

        assert worker.wait_for(stored) == {"events": n_valid, "issues": len(expected_by_fp)}
        # ... and the worker's sink process serves it to ClickHouse's own clients, read-only
        import clickhouse_connect

        client = clickhouse_connect.get_client(
            host="127.0.0.1", port=int(env["ERRORSTREAM_CLICKHOUSE_HTTP_PORT"])
        )
        per_fp = client.query(
            "SELECT fingerprint, count() FROM errorstream.events FINAL GROUP BY fingerprint"
        ).result_rows
        assert dict(per_fp) == dict(expected_by_fp)
        with pytest.raises(Exception, match="(?i)readonly|not allowed|READONLY"):
            client.command("DROP TABLE errorstream.events")

        # Hop 5: the timeline, through the CLI, matches per-minute counts of the produced events.
        since = int(min(expected_minutes)) - 120
        until = int(max(expected_minutes)) + 120
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "query",
                "timeline",
                "--json",
                "--since",
                str(since),
                "--until",
                str(until),
                "--bucket",
                "60",
            ],
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        timeline = json.loads(cli.stdout)
        got_minutes = {p["ts"]: p["events"] for p in timeline["points"] if p["events"]}
        assert got_minutes == dict(expected_minutes)
        assert timeline["total"] == n_valid
        # Gaps are filled: one point per minute of the range.
        assert len(timeline["points"]) >= (until - since) // 60
    finally:
        code = worker.stop()
        print(worker.log())
    assert code == 0
