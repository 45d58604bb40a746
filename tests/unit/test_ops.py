"""Operations pieces that need no broker: logs, lag math, health endpoints, multi-process
metrics, the progress helper."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from types import SimpleNamespace

from aiohttp.test_utils import TestClient, TestServer
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from pipeline.health import build_ops_app
from pipeline.lag import consumer_groups, partition_lag
from pipeline.logs import (
    JsonFormatter,
    PlainFormatter,
    configure_logging,
    dead_letter_context,
    with_context,
)
from pipeline.metrics import Metrics, exposed_names
from pipeline.progress import Progress, format_bar
from pipeline.settings import Settings


def record(msg: str = "hello", **extra) -> logging.LogRecord:
    r = logging.LogRecord("errorstream.dlq", logging.WARNING, "x.py", 1, msg, (), None)
    for k, v in extra.items():
        setattr(r, k, v)
    return r


def test_json_lines_carry_context_fields():
    line = JsonFormatter().format(record(fingerprint="ab12", partition=3, offset=42))
    data = json.loads(line)
    assert data["msg"] == "hello" and data["level"] == "warning"
    assert (data["fingerprint"], data["partition"], data["offset"]) == ("ab12", 3, 42)


def test_plain_lines_append_context():
    line = PlainFormatter().format(record(partition=3, offset=42))
    assert line.endswith("errorstream.dlq: hello [partition=3 offset=42]")


def test_context_adapter_and_dead_letter_context():
    stream = io.StringIO()
    configure_logging(SimpleNamespace(log_format="json", log_level="INFO"), stream=stream)
    dlq = {"reason": "schema", "source": {"topic": "t", "partition": 1, "offset": 7}}
    log = with_context(logging.getLogger("errorstream.test"), **dead_letter_context(dlq))
    log.warning("dead letter", extra={"fingerprint": "f00"})
    data = json.loads(stream.getvalue().splitlines()[-1])
    assert {k: data[k] for k in ("reason", "topic", "partition", "offset", "fingerprint")} == {
        "reason": "schema",
        "topic": "t",
        "partition": 1,
        "offset": 7,
        "fingerprint": "f00",
    }
    # faust/mode records go through the same handler, quieted to WARNING
    logging.getLogger("faust.worker").info("noise")
    logging.getLogger("mode.services").warning("kept")
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["msg"] for x in lines if x["logger"].startswith(("faust", "mode"))] == ["kept"]


def test_partition_lag():
    a, b, c = (TopicPartition("t", p) for p in range(3))
    ends = {a: 100, b: 50, c: 10}
    assert partition_lag(ends, {a: 90, b: 60}, {a: 0, b: 0, c: 4}) == {a: 10, b: 0, c: 6}


def test_consumer_groups_cover_every_consumed_topic():
    s = Settings()
    groups = consumer_groups(s)
    assert groups == {
        "errorstream-decode": [s.topic_events],
        "errorstream": [s.topic_by_fingerprint, s.topic_control],
        "errorstream-sink": [s.topic_processed, s.topic_alerts],
    }


async def test_ops_app_endpoints():
    metrics = Metrics(CollectorRegistry())
    metrics.events_received.labels("v1").inc(3)
    state = {"kafka": True, "sink_writable": False}
    async with TestClient(TestServer(build_ops_app(metrics.registry, lambda: state))) as client:
        r = await client.get("/healthz")
        assert r.status == 200 and await r.json() == {"status": "alive"}
        r = await client.get("/readyz")
        assert r.status == 503
        assert (await r.json())["failing"] == ["sink_writable"]
        state["sink_writable"] = True
        assert (await client.get("/readyz")).status == 200
        text = await (await client.get("/metrics")).text()
        assert 'errorstream_ingest_events_received_total{format="v1"} 3.0' in text


def test_exposed_names_include_unlabelled_and_labelled_metrics():
    names = exposed_names(Metrics().registry)
    assert {
        "errorstream_ingest_events_invalid_total",
        "errorstream_stage_latency_seconds_bucket",
        "errorstream_kafka_consumer_lag_messages",
        "errorstream_gateway_requests_total",
    } <= names
    assert all(n.startswith("errorstream_") for n in names)


def test_multiprocess_exposition_sums_forked_processes(tmp_path):
    script = textwrap.dedent(
        """
        import os
        from pipeline.metrics import Metrics
        m = Metrics()
        pids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                m.events_received.labels("sentry").inc(5)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        print(Metrics().exposition().decode())
        """
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert 'errorstream_ingest_events_received_total{format="sentry"} 15.0' in out.stdout


def test_progress_plain_lines_and_summary():
    stream = io.StringIO()
    with Progress("export", total=4, unit="row", stream=stream, interval=0.0, tty=False) as p:
        for _ in range(4):
            p.advance(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("export: [") and "1/4 rows" in lines[0]
    assert lines[-1].startswith("export: 4/4 rows in ")
    assert "\r" not in stream.getvalue()


def test_progress_tty_redraws_in_place():
    stream = io.StringIO()
    p = Progress("kafka", unit="file", stream=stream, tty=True)
    p.interval = 0.0
    p.advance(2)
    summary = p.finish()
    assert stream.getvalue().startswith("\r\x1b[K")
    assert summary.startswith("kafka: 2 files in ")
    assert format_bar(1, 2, width=4) == "[##..]  50%"


def test_an_observation_batch_exposes_exactly_what_observe_would():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from pipeline.metrics import LAG_BUCKETS, ObservationBatch

    values = [0.0, 0.01, 0.011, 0.3, 5.0, 7.5, 3600.0, 5000.0, 1e9, 0.05, 0.05]
    one, batched = CollectorRegistry(), CollectorRegistry()
    a = Histogram("x_seconds", "x", ["stage"], buckets=LAG_BUCKETS, registry=one)
    b = Histogram("x_seconds", "x", ["stage"], buckets=LAG_BUCKETS, registry=batched)
    batch = ObservationBatch(b.labels("s"))
    for round_ in range(2):  # a flushed batch starts again from zero
        for v in values:
            a.labels("s").observe(v + round_)
            batch.observe(v + round_)
        assert b.labels("s")._sum.get() == sum(values) * round_  # nothing added before flush
        batch.flush()

    def lines(registry):
        return [x for x in generate_latest(registry).decode().splitlines() if "_created" not in x]

    assert lines(batched) == lines(one)
    batch.flush()  # nothing pending: nothing changes
    assert lines(batched) == lines(one)
