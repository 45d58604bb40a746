"""SIGTERM under load loses nothing and stores nothing twice; a restarted worker reports
ready only once its tables are back."""

from __future__ import annotations

import asyncio
import threading
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.harness import WorkerProcess, pipeline_env
from tests.integration.test_pipeline_e2e import make_events

pytestmark = pytest.mark.integration

N = 3000
RATE = 250.0  # events per second: the SIGTERM lands while events are still arriving


async def produce_steadily(bootstrap: str, topic: str, payloads: list[bytes], sent: list) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        for i, payload in enumerate(payloads):
            await producer.send(topic, payload, key=str(i).encode())
            sent[0] = i + 1
            ahead = (i + 1) / RATE - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()


def issue_total(worker: WorkerProcess) -> int:
    return sum(i["count"] for i in worker.get("/api/state/issues")["issues"])


def test_sigterm_mid_stream_loses_nothing_and_restart_recovers_first(kafka_bootstrap, tmp_path):
    payloads = [orjson.dumps(e) for e in make_events(N)]
    env = pipeline_env(kafka_bootstrap, tmp_path / "data", shutdown_timeout=20)
    first = WorkerProcess(env, tmp_path / "worker-1.log").start()
    sent = [0]
    producer = threading.Thread(
        target=lambda: asyncio.run(
            produce_steadily(kafka_bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"], payloads, sent)
        )
    )
    producer.start()
    second = None
    try:
        # Let part of the stream through all stages, then stop while events keep coming.
        assert first.wait_for(lambda: first.get("/api/counts")["events"] >= 300, timeout=60)
        counted_before = issue_total(first)
        assert counted_before > 0
        stop_started = time.monotonic()
        code = first.stop(timeout=40)
        stop_seconds = time.monotonic() - stop_started
        assert code == 0, first.log()
        assert stop_seconds < 20, f"stop took {stop_seconds:.1f}s"
        assert sent[0] < N, "the producer finished before the SIGTERM: not mid-stream"
        log = first.log()
        assert "sink stopped after its final drain" in log, log
        assert "\x1b[?25l" not in log

        # Restart: ready means the issue tables are recovered from their changelogs.
        second = WorkerProcess(env, tmp_path / "worker-2.log").start()
        ready = second.get("/readyz")
        assert ready["checks"]["tables_recovered"] is True
        assert issue_total(second) >= counted_before

        producer.join(timeout=60)
        assert not producer.is_alive()
        assert sent[0] == N

        def all_stored():
            counts = second.get("/api/counts")
            return counts if counts["events"] >= N else None

        assert second.wait_for(all_stored, timeout=90) == {"events": N, "issues": 4}
        time.sleep(2.0)  # replays would arrive now: still exactly N rows and N counted
        assert second.get("/api/counts") == {"events": N, "issues": 4}
        assert second.wait_for(lambda: issue_total(second) == N, timeout=30), issue_total(second)
    finally:
        producer.join(timeout=60)
        for w in (first, second):
            if w is not None:
                w.stop()
                print(w.log())
