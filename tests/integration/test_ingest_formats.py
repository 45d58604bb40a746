"""Sentry payloads published to the ingest topic as plain Kafka messages, against the real
broker, the real worker and the real gateway: every shape becomes the same issue (same
fingerprint and title) as when it is posted to the gateway; a Node service publishing with
kafkajs (from npm, installed by the fixture) creates an issue."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import example_paths
from tests.integration.gateway_harness import KEY, GatewayProcess, gateway_env, topic_records
from tests.integration.harness import WorkerProcess, pipeline_env
from tests.integration.test_gateway import envelope, post
from tests.integration.test_pipeline_e2e import consume
from tests.integration.test_stream_agents import read_all

pytestmark = pytest.mark.integration

KAFKAJS_VERSION = "2.2.4"
AUTH = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1, sentry_key={KEY}"}
PAYLOADS = {p.stem: orjson.loads(p.read_bytes()) for p in example_paths("sentry", "valid")}
SENTRY_TYPE = b"application/vnd.sentry.event+json"


def with_id(payload: dict, event_id: str) -> dict:
    return {**payload, "event_id": event_id}


async def publish(bootstrap: str, topic: str, messages: list[tuple[bytes, list]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value, headers in messages:
            await producer.send(topic, value, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


def metric_samples(worker: WorkerProcess, name: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{worker.api}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_sentry_payloads_on_kafka_are_the_same_issues_as_through_the_gateway(
    kafka_bootstrap, tmp_path
):
    env = pipeline_env(kafka_bootstrap, tmp_path / "data")
    topic = env["ERRORSTREAM_TOPIC_EVENTS"]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    gw = GatewayProcess(
        gateway_env(kafka_bootstrap, topic_events=topic), tmp_path / "gateway.log"
    ).start()
    try:
        names = sorted(PAYLOADS)
        gateway_ids = {name: f"{1000 + i:032x}" for i, name in enumerate(names)}
        kafka_ids = {name: f"{2000 + i:032x}" for i, name in enumerate(names)}
        # the gateway: envelopes and the legacy store endpoint, project 1 = service checkout
        for i, name in enumerate(names):
            payload = with_id(PAYLOADS[name], gateway_ids[name])
            if i % 2:
                status, _, _ = post(gw, "/api/1/store/", orjson.dumps(payload), AUTH)
            else:
                status, _, _ = post(gw, "/api/1/envelope/", envelope(payload), AUTH)
            assert status == 200, (name, gw.log())
        # Kafka: the same payloads as they are; by shape, by content-type, as envelopes
        messages = []
        for i, name in enumerate(names):
            payload = with_id(PAYLOADS[name], kafka_ids[name])
            headers = [("service", b"checkout")]
            if i % 3 == 0:
                messages.append((orjson.dumps(payload), headers))
            elif i % 3 == 1:
                messages.append((orjson.dumps(payload), headers + [("content-type", SENTRY_TYPE)]))
            else:
                messages.append((envelope(payload, extra=[("session", b"{}")]), headers))
        # the service rule without a header: the payload's `service` tag, else the default
        tagged = with_id(PAYLOADS["go_logentry_params"], f"{3000:032x}")
        untagged = with_id(PAYLOADS["ruby_message_string"], f"{3001:032x}")
        messages += [(orjson.dumps(tagged), []), (orjson.dumps(untagged), [])]
        asyncio.run(publish(kafka_bootstrap, topic, messages))

        # the gateway published exactly its events (v1) on the same topic
        records = asyncio.run(topic_records(kafka_bootstrap, topic))
        assert len(records) == len(names) + len(messages)
        # the gateway keys its records by event_id; the plain producer above sets no key
        gateway_events = [orjson.loads(v) for k, v in records if k is not None]
        assert sorted(e["event_id"] for e in gateway_events) == sorted(gateway_ids.values())

        # the issues: wait until every event is counted
        total = len(names) * 2 + 2

        def issues():
            state = worker.get("/api/state/issues")["issues"]
            got = {i["fingerprint"]: i for i in state}
            return got if sum(i["count"] for i in got.values()) >= total else None

        state = worker.wait_for(issues)
        assert state, worker.log()
        by_id = {r["event_id"]: r for r in read_all(env, "ERRORSTREAM_TOPIC_PROCESSED")}
        assert len(by_id) == total, worker.log()
        for name in names:
            via_gateway = by_id[gateway_ids[name]]
            via_kafka = by_id[kafka_ids[name]]
            for key in ("fingerprint", "title", "culprit", "grouping_variant"):
                assert via_kafka["_meta"][key] == via_gateway["_meta"][key], (name, key)
            assert via_kafka["service"] == via_gateway["service"] == "checkout"
            assert via_kafka["level"] == via_gateway["level"]
        assert by_id[f"{3000:032x}"]["service"] == "inventory"
        assert by_id[f"{3001:032x}"]["service"] == "sentry"
        # one issue per fingerprint, holding the events of both paths, under that title
        kafka_meta = [by_id[kafka_ids[n]]["_meta"] for n in names]
        per_fingerprint = collections.Counter(m["fingerprint"] for m in kafka_meta)
        titles = {m["fingerprint"]: m["title"] for m in kafka_meta}
        extra = collections.Counter(
            by_id[f"{i:032x}"]["_meta"]["fingerprint"] for i in (3000, 3001)
        )
        assert len(per_fingerprint) == len(names)  # every shape is an issue of its own
        assert set(state) == set(per_fingerprint) | set(extra)
        for fp, n in per_fingerprint.items():
            assert state[fp]["count"] == 2 * n + extra[fp]
            assert state[fp]["title"] == titles[fp]

        # nothing dead-lettered; counted by format
        dlq = asyncio.run(consume(kafka_bootstrap, env["ERRORSTREAM_TOPIC_DLQ"], 0, timeout=2))
        assert dlq == []
        received = metric_samples(worker, "errorstream_ingest_events_received_total")
        by_format = {dict(k)["format"]: v for k, v in received.items()}
        shapes = collections.Counter(i % 3 for i in range(len(names)))
        assert by_format.get("v1") == len(names)  # the gateway's
        assert by_format.get("sentry") == shapes[0] + shapes[1] + 2
        assert by_format.get("sentry_envelope") == shapes[2]
        skipped = metric_samples(worker, "errorstream_ingest_envelope_items_skipped_total")
        assert skipped == {(("type", "session"),): shapes[2]}
    finally:
        gw.stop()
        worker.stop()


def test_bad_sentry_payloads_are_dead_lettered_naming_the_format(kafka_bootstrap, tmp_path):
    env = pipeline_env(kafka_bootstrap, tmp_path / "data")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        deep = example_paths("sentry", "invalid")[0].read_bytes()
        messages = [
            (deep, []),
            (b'{}\n{"type":"event","length":5}\n{"message":"hello"}\n', []),
            (b"{}", [("content-type", b"text/xml")]),
        ]
        asyncio.run(publish(kafka_bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"], messages))
        dlq = asyncio.run(consume(kafka_bootstrap, env["ERRORSTREAM_TOPIC_DLQ"], 3))
        letters = sorted((orjson.loads(v) for v in dlq), key=lambda x: x["source"]["offset"])
        assert [(x["format"], x["reason"]) for x in letters] == [
            ("sentry", "json_too_deep"),
            ("sentry_envelope", "envelope"),
            ("unknown", "content_type"),
        ]
        assert letters[0]["error"].startswith("sentry event: ")
        assert letters[1]["error"].startswith("sentry envelope: ")
    finally:
        worker.stop()


# -- a Node service with kafkajs ------------------------------------------------------------
@pytest.fixture(scope="session")
def kafkajs() -> Path:
    """kafkajs installed from the npm registry into a cache folder (reused by later runs):
    ``ERRORSTREAM_NPM_CACHE_DIR`` or ``~/.cache/errorstream/npm``. Fails, never skips, when
    node or npm is missing or the registry cannot be reached."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the kafkajs producer test", pytrace=False)
    root = Path(
        os.environ.get("ERRORSTREAM_NPM_CACHE_DIR") or Path.home() / ".cache/errorstream/npm"
    )
    prefix = root / f"kafkajs-{KAFKAJS_VERSION}"
    package = prefix / "node_modules/kafkajs/package.json"
    if package.is_file() and json.loads(package.read_text())["version"] == KAFKAJS_VERSION:
        return prefix
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"kafkajs@{KAFKAJS_VERSION}",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("npm install kafkajs: no answer from the npm registry in 300 s", pytrace=False)
    if out.returncode != 0 or not package.is_file():
        pytest.fail(
            f"npm install kafkajs@{KAFKAJS_VERSION} failed (is the npm registry reachable?):\n"
            f"{out.stderr[-3000:]}",
            pytrace=False,
        )
    return prefix


NODE_PRODUCER = r"""
const { Kafka, logLevel } = require("kafkajs");
const [bootstrap, topic] = process.argv.slice(2);
const kafka = new Kafka({ clientId: "orders-node", brokers: [bootstrap], logLevel: logLevel.WARN });
const event = {
  event_id: "4e1f0c9b8a7d4e6f9a8b7c6d5e4f3a2b",
  timestamp: new Date().toISOString(),
  platform: "node",
  exception: { values: [{ type: "TypeError", value: "order.total is not a function",
    stacktrace: { frames: [{ filename: "/app/src/orders.js", function: "placeOrder",
      lineno: 88, colno: 21, in_app: true }] } }] },
};
(async () => {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: [
    { value: JSON.stringify(event), headers: { service: "orders-node" } },
  ] });
  await producer.disconnect();
})().catch((err) => { console.error(err); process.exit(1); });
"""


def test_node_service_publishes_with_kafkajs(kafka_bootstrap, tmp_path, kafkajs):
    env = pipeline_env(kafka_bootstrap, tmp_path / "data")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        script = tmp_path / "producer.js"
        script.write_text(NODE_PRODUCER)
        out = subprocess.run(
            ["node", str(script), kafka_bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"]],
            env={**os.environ, "NODE_PATH": str(kafkajs / "node_modules")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr

        def issue():
            state = worker.get("/api/state/issues")["issues"]
            return state or None

        state = worker.wait_for(issue)
        assert state, worker.log()
        assert len(state) == 1 and state[0]["count"] == 1
        assert state[0]["title"] == "TypeError: order.total is not a function"
        (processed,) = read_all(env, "ERRORSTREAM_TOPIC_PROCESSED")
        assert processed["service"] == "orders-node"
        assert processed["event_id"] == "4e1f0c9b8a7d4e6f9a8b7c6d5e4f3a2b"
    finally:
        worker.stop()
