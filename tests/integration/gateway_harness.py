"""Run the real gateway (`errorstream gateway`) as a child process, and read its topic.

Each gateway gets its own ingest topic and port. ``topic_records`` reads a topic up to its
end offsets at the time of the call: after a 200 (acks=all) the records are there, so the
read is exact, with no waiting for stragglers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.kafka_local import free_ports

KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # project 1
KEY_ROTATED = "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # project 1, second active key
KEY_P2 = "22222222222222222222222222222222"  # project 2
KEY_DISABLED = "33333333333333333333333333333333"  # project 3 (disabled)


def gateway_env(bootstrap: str, **extra: Any) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    (port,) = free_ports(1)
    env = {
        "ERRORSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "ERRORSTREAM_TOPIC_EVENTS": f"t-{tag}-gw-events",
        "ERRORSTREAM_WEB_PORT": str(port),
        "ERRORSTREAM_PARTITIONS": "2",
        "ERRORSTREAM_LOG_FORMAT": "plain",
        "ERRORSTREAM_GATEWAY_KEYS": f"1={KEY},{KEY_ROTATED}; 2={KEY_P2}; 3={KEY_DISABLED}",
        "ERRORSTREAM_GATEWAY_DISABLED_PROJECTS": "3",
        "ERRORSTREAM_GATEWAY_PROJECTS": "1=checkout; 2=payments",
        "ERRORSTREAM_GATEWAY_PUBLISH_TIMEOUT": "3",
        "ERRORSTREAM_SHUTDOWN_TIMEOUT": "10",
    }
    env.update({f"ERRORSTREAM_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class GatewayProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen | None = None
        self.port = int(env["ERRORSTREAM_WEB_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.topic = env["ERRORSTREAM_TOPIC_EVENTS"]

    def start(self, ready_timeout: float = 60.0, want_ready: bool = True) -> GatewayProcess:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ERRORSTREAM_")}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "gateway"],
            env={**clean, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = self.get("/readyz")
                if status == 200 or (not want_ready and status == 503):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gateway not ready after {ready_timeout}s:\n{self.log()}")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def terminate(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


async def topic_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) on ``topic`` up to its end offsets now ([] if it has none)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not pending:
                break
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for messages in batch.values():
                out.extend((m.key, m.value) for m in messages)
        return out
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str) -> list[dict]:
    return [orjson.loads(v) for _, v in asyncio.run(topic_records(bootstrap, topic))]
