"""Integration fixtures: a real Kafka broker for the whole test session.

Where the broker comes from (first match wins):

1. ``ERRORSTREAM_TEST_KAFKA_BOOTSTRAP=host:port``: an external broker, only waited for.
2. ``ERRORSTREAM_TEST_KAFKA=testcontainers``: a KafkaContainer (needs the ``testcontainers``
   package and a Docker engine that answers; fails clearly otherwise).
3. Default: a local KRaft broker (``pipeline.kafka_local``) in a fresh temp dir on free ports,
   jars cached in ``ERRORSTREAM_KAFKA_CACHE_DIR`` or ``~/.cache/errorstream/kafka``; version from
   ``ERRORSTREAM_KAFKA_VERSION``. The JVM is always stopped (finally + atexit); when the session
   fails, the tail of its log is printed in the terminal summary.
"""

from __future__ import annotations

import atexit
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.kafka_local import (
    DEFAULT_VERSION,
    BrokerStartError,
    KafkaBroker,
    KafkaUnavailable,
    PortInUse,
    default_cache_dir,
    start_on_free_ports,
    wait_for_kafka,
)

READY_TIMEOUT_S = 90.0
LOG_TAIL_LINES = 60
_broker_logs: dict[Path, str] = {}  # log path → its tail just before the broker was stopped


@dataclass
class KafkaHandle:
    """What tests get: where to connect, and (for the local broker) the broker itself."""

    bootstrap: str
    kind: str  # "local" | "external" | "testcontainers"
    broker: KafkaBroker | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return self.broker.log_tail(lines) if self.broker else ""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs the real Kafka broker and/or the embedded ClickHouse engine"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if exitstatus == 0:
        return
    from pipeline.kafka_local.broker import tail

    for log, snapshot in _broker_logs.items():
        text = snapshot or tail(log, LOG_TAIL_LINES)
        if text:
            title = f"Kafka broker log before shutdown, last {LOG_TAIL_LINES} lines: {log}"
            terminalreporter.write_sep("-", title)
            terminalreporter.write_line(text)


def _stop_quietly(broker: KafkaBroker) -> None:
    try:
        broker.stop()
    except Exception as exc:  # noqa: BLE001 - best effort at interpreter exit
        print(f"could not stop Kafka broker in {broker.home}: {exc}")


def start_local_broker(home: Path) -> KafkaBroker:
    """A ready broker in ``home`` on free ports, stopped at interpreter exit at the latest."""
    version = os.environ.get("ERRORSTREAM_KAFKA_VERSION") or DEFAULT_VERSION
    broker = start_on_free_ports(
        home, version=version, cache_dir=default_cache_dir(), ready_timeout=READY_TIMEOUT_S
    )
    atexit.register(_stop_quietly, broker)
    return broker


def _external(bootstrap: str) -> Iterator[KafkaHandle]:
    try:
        wait_for_kafka(bootstrap, 30)
    except KafkaUnavailable as exc:
        pytest.fail(f"ERRORSTREAM_TEST_KAFKA_BOOTSTRAP: {exc}", pytrace=False)
    yield KafkaHandle(bootstrap=bootstrap, kind="external")


def _testcontainers() -> Iterator[KafkaHandle]:
    try:
        import docker  # type: ignore[import-untyped]
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-not-found]

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        pytest.fail(
            "ERRORSTREAM_TEST_KAFKA=testcontainers needs the testcontainers package and a running "
            f"Docker engine ({type(exc).__name__}: {exc}); unset it to use the local broker",
            pytrace=False,
        )
    with KafkaContainer().with_kraft() as container:
        bootstrap = container.get_bootstrap_server()
        wait_for_kafka(bootstrap, READY_TIMEOUT_S)
        yield KafkaHandle(bootstrap=bootstrap, kind="testcontainers")


def _local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaHandle]:
    home = tmp_path_factory.mktemp("kafka")
    _broker_logs[home / "broker.log"] = ""
    try:
        broker = start_local_broker(home)
    except (BrokerStartError, PortInUse) as exc:
        detail = getattr(exc, "log_tail", "")
        pytest.fail(f"local Kafka broker did not start: {exc}\n{detail}", pytrace=False)
    try:
        yield KafkaHandle(bootstrap=broker.bootstrap, kind="local", broker=broker)
    finally:
        _broker_logs[broker.log_path] = broker.log_tail(LOG_TAIL_LINES)  # before shutdown noise
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaHandle]:
    """A Kafka broker shared by the session; ``.bootstrap`` is ``"127.0.0.1:PORT"``."""
    if bootstrap := os.environ.get("ERRORSTREAM_TEST_KAFKA_BOOTSTRAP"):
        yield from _external(bootstrap)
    elif os.environ.get("ERRORSTREAM_TEST_KAFKA", "").lower() == "testcontainers":
        yield from _testcontainers()
    else:
        yield from _local(tmp_path_factory)


@pytest.fixture
def kafka_bootstrap(kafka_broker: KafkaHandle) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> str:
    """A topic name no other test (or earlier run on an external broker) uses."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name).strip("-")[:120]
    return f"test-{name}-{uuid.uuid4().hex[:8]}"
