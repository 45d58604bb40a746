"""/metrics of a real worker: every named metric moves by exactly what was produced."""

from __future__ import annotations

import asyncio
import collections
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.grouping import GroupingConfig, group_event
from pipeline.stages.decode import DecodedEvent, decode_event
from tests.integration.harness import WorkerProcess, pipeline_env
from tests.integration.test_pipeline_e2e import make_events, produce

pytestmark = pytest.mark.integration

INVALID = [
    b"{not json",  # bad JSON
    orjson.dumps({"event_id": "a" * 32, "service": "checkout"}),  # schema: no timestamp
    orjson.dumps(["an", "array"]),  # schema: not an object
]


def scrape(worker: WorkerProcess) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of the worker's /metrics."""
    with urllib.request.urlopen(f"{worker.api}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    assert "\x1b[" not in text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name: str, **labels) -> float:
    """Sum over every label combination matching ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def test_metrics_move_by_exact_amounts(kafka_bootstrap, tmp_path):
    events = make_events(10)
    valid = [orjson.dumps(e) for e in events]
    config = GroupingConfig()
    fingerprints = {group_event(decode_event(raw).event, config).fingerprint for raw in valid}
    assert all(isinstance(decode_event(raw), DecodedEvent) for raw in valid)
    reasons = collections.Counter(decode_event(raw).reason for raw in INVALID)
    assert not any(isinstance(decode_event(raw), DecodedEvent) for raw in INVALID)

    env = pipeline_env(kafka_bootstrap, tmp_path / "data", lag_interval=0.5)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        before = scrape(worker)
        assert total(before, "errorstream_ingest_events_received_total") == 0
        health = worker.get("/healthz")
        assert health == {"status": "alive"}
        ready = worker.get("/readyz")
        assert ready["ready"] and all(ready["checks"].values())

        asyncio.run(produce(kafka_bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"], valid + INVALID))

        def settled():
            m = scrape(worker)
            inserted = value(m, "errorstream_sink_rows_inserted_total", table="events")
            return m if inserted >= len(valid) else None

        m = worker.wait_for(settled, timeout=60)
        assert m, worker.log()
        # ingest
        assert value(m, "errorstream_ingest_events_received_total", format="v1") == 12
        assert value(m, "errorstream_ingest_events_received_total", format="unknown") == 1
        assert value(m, "errorstream_ingest_events_accepted_total") == 10
        for reason, n in reasons.items():
            assert total(m, "errorstream_ingest_events_invalid_total", reason=reason) == n
        assert total(m, "errorstream_ingest_events_invalid_total") == 3
        # issues stage
        assert value(m, "errorstream_issues_events_processed_total") == 10
        assert value(m, "errorstream_issues_events_deduplicated_total") == 0
        assert total(m, "errorstream_issues_events_shed_total") == 0
        assert total(m, "errorstream_issues_events_sampled_total") == 0
        assert value(m, "errorstream_issues_tracked_issues") == len(fingerprints)
        assert value(m, "errorstream_alerts_emitted_total", kind="new_issue") == len(fingerprints)
        assert total(m, "errorstream_alerts_emitted_total") == len(fingerprints)
        # latency histograms: one observation per valid event and stage
        assert value(m, "errorstream_stage_latency_seconds_count", stage="decode") == 10
        assert value(m, "errorstream_stage_latency_seconds_count", stage="issues") == 10
        assert value(m, "errorstream_issues_end_to_end_lag_seconds_count") == 10
        # events are ~30 min old: every end-to-end observation is above 600 s, below 3600 s
        assert value(m, "errorstream_issues_end_to_end_lag_seconds_bucket", le="300.0") == 0
        assert value(m, "errorstream_issues_end_to_end_lag_seconds_bucket", le="3600.0") == 10
        # sink
        assert value(m, "errorstream_sink_rows_inserted_total", table="events") == 10
        batches = value(m, "errorstream_sink_batches_total")
        assert batches >= 1
        assert value(m, "errorstream_sink_insert_failures_total") == 0
        assert value(m, "errorstream_sink_insert_retries_total") == 0
        assert value(m, "errorstream_sink_rows_rejected_total") == 0
        assert worker.get("/api/counts")["events"] == 10

        # operations: lag drops to 0 once everything is committed; table sizes are exact
        app_id = env["ERRORSTREAM_APP_ID"]

        def caught_up():
            m = scrape(worker)
            lag = {
                (dict(lab)["group"], dict(lab)["topic"]): v
                for (n, lab), v in m.items()
                if n == "errorstream_kafka_consumer_lag_messages"
            }
            groups = {f"{app_id}-decode", app_id, f"{app_id}-sink"}
            if not lag or {g for g, _ in lag} != groups or any(lag.values()):
                return None
            # gauges are sampled every lag_interval: wait for a sample taken after the work
            if value(m, "errorstream_state_table_keys", table="issues") != len(fingerprints):
                return None
            return m

        m = worker.wait_for(caught_up, timeout=30)
        assert m, "lag never reached 0 for all three groups with the issues table size exact"
        assert (
            total(
                m,
                "errorstream_kafka_consumer_lag_messages",
                group=f"{app_id}-decode",
                topic=env["ERRORSTREAM_TOPIC_EVENTS"],
            )
            == 0
        )
        partitions = {
            dict(lab)["partition"]
            for (n, lab) in m
            if n == "errorstream_kafka_consumer_lag_messages"
            and dict(lab)["topic"] == env["ERRORSTREAM_TOPIC_EVENTS"]
        }
        assert partitions == {"0", "1"}
        assert value(m, "errorstream_state_table_keys", table="issues") == len(fingerprints)
        # a measurement may fail while the sink group's coordinator is still being elected
        assert value(m, "errorstream_kafka_lag_measure_failures_total") <= 2

        # the issues agent's per-event counters, added once per envelope: two re-deliveries
        # of an event are counted as duplicates exactly
        asyncio.run(produce(kafka_bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"], [valid[0]] * 2))

        def deduplicated():
            m = scrape(worker)
            return m if value(m, "errorstream_issues_events_deduplicated_total") >= 2 else None

        m = worker.wait_for(deduplicated, timeout=30)
        assert m, "the two re-deliveries were not counted as duplicates"
        assert value(m, "errorstream_issues_events_deduplicated_total") == 2
        assert value(m, "errorstream_issues_events_processed_total") == 12
        assert value(m, "errorstream_stage_latency_seconds_count", stage="issues") == 12
        assert total(m, "errorstream_issues_events_shed_total") == 0
    finally:
        code = worker.stop()
        log = worker.log()
        print(log)
    assert code == 0
    assert "\x1b[?25l" not in log  # no spinner escape codes in non-tty output
