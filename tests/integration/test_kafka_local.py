"""The local broker is a real Kafka: round-trips, partitions, lifecycle, and clear errors."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.kafka_local import (
    DEFAULT_VERSION,
    KafkaBroker,
    KafkaUnavailable,
    PortInUse,
    free_ports,
    start_on_free_ports,
    wait_for_kafka,
)
from pipeline.kafka_local.broker import _pid_alive

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VERSION = os.environ.get("ERRORSTREAM_KAFKA_VERSION") or DEFAULT_VERSION


async def test_produce_consume_round_trip(kafka_bootstrap: str, unique_topic: str) -> None:
    sent = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(5)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in sent:
            await producer.send_and_wait(unique_topic, value, key=key)  # auto-creates the topic
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        unique_topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{unique_topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[tuple[bytes | None, bytes | None]] = []
    try:
        while len(received) < len(sent):
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"no records within 10 s; got {received}"
            for records in batches.values():
                received += [(r.key, r.value) for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    assert received == sent


async def test_create_topic_with_three_partitions(kafka_bootstrap: str, unique_topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=unique_topic, num_partitions=3, replication_factor=1)]
        )
        # Leaders are elected just after creation: metadata may lag for a moment.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            [described] = await admin.describe_topics([unique_topic])
            ready = described["error_code"] == 0 and len(described["partitions"]) == 3
            if ready or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    assert described["error_code"] == 0
    assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        assert await producer.partitions_for(unique_topic) == {0, 1, 2}
    finally:
        await producer.stop()


def test_session_broker_reports_running(kafka_broker: Any) -> None:
    if kafka_broker.broker is None:
        pytest.skip(f"session broker is {kafka_broker.kind}, not local")
    status = kafka_broker.broker.status()
    assert status.running and status.pid is not None
    assert status.bootstrap == kafka_broker.bootstrap


@pytest.fixture
def second_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test's own, on its own free ports; stopped whatever the test does."""
    broker = start_on_free_ports(tmp_path / "kafka", version=VERSION)
    try:
        yield broker
    finally:
        broker.stop()


def test_stop_ends_the_jvm(second_broker: KafkaBroker) -> None:
    pid = second_broker.status().pid
    assert pid is not None and _pid_alive(pid)
    wait_for_kafka(second_broker.bootstrap, 10)

    assert second_broker.stop() is True

    assert not _pid_alive(pid)
    assert not second_broker.pid_path.exists()
    status = second_broker.status()
    assert (status.running, status.pid) == (False, None)
    assert second_broker.stop() is False  # idempotent
    with pytest.raises(KafkaUnavailable, match=r"is not reachable after 1s"):
        wait_for_kafka(second_broker.bootstrap, 1)


def test_start_is_idempotent_while_running(second_broker: KafkaBroker) -> None:
    pid = second_broker.status().pid
    port, controller_port = free_ports(2)
    again = KafkaBroker(second_broker.home, port, controller_port)
    assert again.start() == pid  # adopts the running broker instead of starting a second JVM
    assert again.bootstrap == second_broker.bootstrap  # on the ports it was started with


def _cli(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.kafka_local", *args, "--home", str(home)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_of_a_stopped_broker_says_not_running(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    broker = KafkaBroker(tmp_path / "never-started", port, controller_port)
    assert broker.status().running is False

    result = _cli("status", home=tmp_path / "never-started")
    assert result.returncode == 3
    assert "not running" in result.stdout


def test_stale_pid_file_is_not_running(tmp_path: Path) -> None:
    home = tmp_path / "stale"
    home.mkdir()
    (home / "broker.pid").write_text(f"{os.getpid()}\n")  # alive, but not a Kafka broker
    port, controller_port = free_ports(2)
    broker = KafkaBroker(home, port, controller_port)
    assert broker.status().running is False
    assert broker.stop() is False
    assert not broker.pid_path.exists()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_start_on_a_port_in_use_is_a_clear_error(tmp_path: Path, busy_port: int) -> None:
    [controller_port] = free_ports(1)
    broker = KafkaBroker(tmp_path / "kafka", busy_port, controller_port)
    with pytest.raises(PortInUse, match=rf"port 127\.0\.0\.1:{busy_port} is already in use"):
        broker.start()
    assert broker.status().running is False


def test_cli_up_on_a_port_in_use_prints_one_line_and_exits_2(
    tmp_path: Path, busy_port: int
) -> None:
    [controller_port] = free_ports(1)
    result = _cli(
        "up",
        "--port",
        str(busy_port),
        "--controller-port",
        str(controller_port),
        home=tmp_path / "kafka",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"127.0.0.1:{busy_port} is already in use" in lines[0]


def test_cli_up_status_down(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    home = tmp_path / "kafka"
    env = {
        "ERRORSTREAM_KAFKA_PORT": str(port),
        "ERRORSTREAM_KAFKA_CONTROLLER_PORT": str(controller_port),
    }
    try:
        up = _cli("up", home=home, env=env)
        assert up.returncode == 0, up.stderr
        assert up.stdout.startswith(f"Kafka {VERSION} ready on 127.0.0.1:{port} (pid ")

        again = _cli("up", home=home, env=env)
        assert again.returncode == 0, again.stderr
        assert f"already running on 127.0.0.1:{port}" in again.stdout

        status = _cli("status", home=home, env=env)
        assert status.returncode == 0 and "running on" in status.stdout
    finally:
        down = _cli("down", home=home, env=env)
    assert down.returncode == 0 and "Kafka stopped" in down.stdout
    assert _cli("status", home=home, env=env).returncode == 3


def test_wait_for_kafka_on_a_closed_port_fails_with_one_clear_message() -> None:
    [port] = free_ports(1)
    with pytest.raises(KafkaUnavailable) as info:
        wait_for_kafka(f"127.0.0.1:{port}", 0.5)
    assert str(info.value).startswith(f"Kafka at 127.0.0.1:{port} is not reachable after 0.5s: ")
