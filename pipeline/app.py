"""The faust app: wiring only. The whole topology, top to bottom:

    errorstream-events (any key)                          ingest topic, raw JSON bytes
        │  decode_agent: decode + validate  ──invalid──▶  errorstream-dlq (reason, source offset)
        │                fingerprint (grouping engine)
        ▼
    errorstream-events-by-fingerprint (key = fingerprint) repartition: one issue, one partition
        │  issues_agent: issue state table (changelog-backed, co-partitioned)
        │                new issue ─────────────────────▶  errorstream-alerts (key = fingerprint)
        ▼
    errorstream-processed (key = fingerprint)
        │  ClickHouseSink (own consumer group): batch → insert → commit
        ▼
    ClickHouse (chDB in-process, or a server) ◀── queries ── HTTP API ◀── `errorstream query`

Stages are pure functions in ``pipeline/stages``; agents decode, call them, and hand on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import faust
import orjson

from pipeline.grouping import GroupingConfig
from pipeline.metrics import Metrics
from pipeline.settings import Settings
from pipeline.stages.alerts import make_alert
from pipeline.stages.decode import DecodedEvent, dead_letter, decode_event
from pipeline.stages.fingerprint import enrich
from pipeline.stages.issues import update_issue


@dataclass
class Pipeline:
    app: faust.App
    settings: Settings
    metrics: Metrics
    topics: dict[str, faust.TopicT]
    issues: Any  # faust.Table of fingerprint → issue state

    async def send_dead_letter(self, value: bytes) -> None:
        await self.topics["dlq"].send(value=value)


def create_app(settings: Settings, metrics: Metrics, grouping: GroupingConfig) -> Pipeline:
    s = settings
    app = faust.App(
        s.app_id,
        broker=[f"kafka://{server.strip()}" for server in s.kafka_bootstrap.split(",")],
        store=s.table_store,
        datadir=f"{s.data_dir}/faust",
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        web_enabled=False,  # the worker serves its own HTTP API (pipeline/api.py)
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=5,
        producer_compression_type=None,
        producer_metadata_max_age_ms=10_000,
        consumer_metadata_max_age_ms=10_000,
        broker_commit_interval=1.0,
        table_cleanup_interval=30.0,
    )

    def topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_serializer="raw", value_serializer="raw", partitions=s.partitions
        )

    topics = {
        "events": topic(s.topic_events),
        "by_fingerprint": topic(s.topic_by_fingerprint),
        "processed": topic(s.topic_processed),
        "alerts": topic(s.topic_alerts),
        "dlq": topic(s.topic_dlq),
    }
    issues = app.Table(
        "issues", default=None, partitions=s.partitions, key_type=bytes, value_type=None
    )
    pipeline = Pipeline(app, s, metrics, topics, issues)

    @app.agent(topics["events"], name="decode")
    async def decode_agent(stream):
        async for event in stream.events():
            started = time.perf_counter()
            raw: bytes = event.value
            metrics.events_received.inc()
            result = decode_event(raw)
            if not isinstance(result, DecodedEvent):
                metrics.events_invalid.labels(result.reason).inc()
                msg = event.message
                source = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
                await topics["dlq"].send(value=dead_letter(raw, result, source))
                continue
            metrics.events_accepted.inc()
            record = enrich(result, grouping, received_at=time.time())
            fingerprint = record["_meta"]["fingerprint"]
            await topics["by_fingerprint"].send(
                key=fingerprint.encode(), value=orjson.dumps(record)
            )
            metrics.stage_latency.labels("decode").observe(time.perf_counter() - started)

    @app.agent(topics["by_fingerprint"], name="issues")
    async def issues_agent(stream):
        async for event in stream.events():
            started = time.perf_counter()
            key: bytes = event.key
            record = orjson.loads(event.value)
            meta = record["_meta"]
            previous = issues.get(key)
            issues[key] = update_issue(previous, record)
            metrics.events_processed.inc()
            if previous is None:
                alert = make_alert(
                    "new_issue",
                    service=record["service"],
                    fingerprint=meta["fingerprint"],
                    title=meta["title"],
                    numbers={"count": 1, "first_seen": meta["ts"]},
                    trigger="first",
                    now=time.time(),
                    record=record,
                )
                await topics["alerts"].send(key=key, value=orjson.dumps(alert))
                metrics.alerts_emitted.labels("new_issue").inc()
            await topics["processed"].send(key=key, value=event.value)
            now = time.time()
            metrics.end_to_end_lag.observe(max(0.0, now - meta["ts"]))
            metrics.stage_latency.labels("issues").observe(time.perf_counter() - started)

    return pipeline
