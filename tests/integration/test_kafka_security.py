"""Every Kafka client of every worker process connects the way the settings say: against a
real broker that only takes SASL (PLAIN) connections, the whole worker (decoder, agent with
faust, sink, lag monitor) runs and stores what was produced; a wrong password is a preflight
error that names the problem, exit code 2."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.kafka_local import default_cache_dir, start_on_free_ports
from tests.integration.harness import WorkerProcess, pipeline_env
from tests.integration.test_pipeline_e2e import make_events

pytestmark = pytest.mark.integration

USERS = (("broker", "broker-secret"), ("app", "app-secret"))


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    broker = start_on_free_ports(
        tmp_path_factory.mktemp("sasl-kafka"), cache_dir=default_cache_dir(), sasl_users=USERS
    )
    yield broker
    broker.stop()


def sasl_env(broker, tmp_path, password: str) -> dict[str, str]:
    return pipeline_env(
        broker.bootstrap,
        tmp_path / "data",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="app",
        kafka_sasl_password=password,
        kafka_ready_timeout=8,
        lag_interval=0.5,
    )


async def produce(broker, topic: str, payloads: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="app",
        sasl_plain_password="app-secret",
        acks="all",
    )
    await producer.start()
    try:
        for payload in payloads:
            await producer.send(topic, payload)
        await producer.flush()
    finally:
        await producer.stop()


def test_the_whole_worker_runs_on_a_sasl_only_broker(sasl_broker, tmp_path):
    env = sasl_env(sasl_broker, tmp_path, "app-secret")
    events = make_events(40)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        asyncio.run(
            produce(sasl_broker, env["ERRORSTREAM_TOPIC_EVENTS"], [orjson.dumps(e) for e in events])
        )
        counts = worker.wait_for(
            lambda: (c := worker.get("/api/counts"))["events"] >= len(events) and c, timeout=60
        )
        issues = sum(i["count"] for i in worker.get("/api/state/issues")["issues"])
        metrics = worker.wait_for(
            lambda: (
                (m := __import__("urllib.request").request.urlopen(f"{worker.api}/metrics").read())
                and b"errorstream_kafka_consumer_lag_messages{" in m
                and m
            ),
            timeout=30,
        )
    finally:
        code = worker.stop()
    assert counts == {"events": 40, "issues": 4}
    assert issues == 40
    assert metrics, "the lag monitor never measured through SASL"
    from prometheus_client.parser import text_string_to_metric_families

    groups = {
        s.labels["group"]
        for family in text_string_to_metric_families(metrics.decode())
        for s in family.samples
        if s.name == "errorstream_kafka_consumer_lag_messages"
    }
    app_id = env["ERRORSTREAM_APP_ID"]
    assert groups == {app_id, f"{app_id}-decode", f"{app_id}-sink"}
    assert code == 0


def test_a_wrong_password_is_a_preflight_error(sasl_broker, tmp_path):
    env = sasl_env(sasl_broker, tmp_path, "wrong")
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("ERRORSTREAM_")}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "worker"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("errorstream worker: Kafka at ")
    assert "check kafka_security_protocol=SASL_PLAINTEXT, the SASL credentials" in line, line
    assert "kafka_sasl_username='app'" in line and "wrong" not in line  # never the password
