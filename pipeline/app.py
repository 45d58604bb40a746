"""The faust app of the agent role: wiring only. The whole topology, top to bottom:

    errorstream-events (any key)                          ingest topic, raw JSON bytes
        │  decoder process (pipeline/decoder.py, consumer group <app_id>-decode):
        │  decode + validate + fingerprint ──invalid──▶ errorstream-dlq (reason, offset)
        ▼
    errorstream-events-by-fingerprint                     repartition: envelopes (JSON Lines)
        ▲                                                 per partition of the fingerprint
        │  ControlAgent (agents/control.py): validate, send to every partition
    errorstream-control (resolve/ignore/unresolve/merge)
        │
        │  IssuesAgent (agents/issues.py), tables co-partitioned, changelog-backed:
        │    dedup · aliases · issues · services · minutes
        │                new_issue, regression, critical, threshold, spike, incident,
        │                error_rate ────────────────────▶  errorstream-alerts
        ▼
    errorstream-processed (envelopes, same partition)     one record per event (+ issue_state)
        │  sink process (pipeline/roles.py SinkRunner, group <app_id>-sink): batch → insert → commit
        ▼
    ClickHouse (chDB in the sink process, or a server) ◀── HTTP API (sink process) ◀── CLI

Stages are pure functions in ``pipeline/stages``; agents decode, call them, and hand on.
Everything that reaches past faust's public API is in ``pipeline/faust_internals.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust

from pipeline.agents.control import ControlAgent
from pipeline.agents.issues import TABLES, IssuesAgent
from pipeline.faust_internals import PartitionGuard, check_faust, ignore_gaps
from pipeline.kafka_clients import faust_broker_options
from pipeline.metrics import Metrics
from pipeline.settings import Settings
from pipeline.stages.rules import StreamRules

log = logging.getLogger("errorstream.app")


@dataclass
class Pipeline:
    app: faust.App
    settings: Settings
    metrics: Metrics
    topics: dict[str, faust.TopicT]
    tables: dict[str, Any]
    issues_agent: IssuesAgent

    def issue_snapshots(self) -> list[dict]:
        return self.issues_agent.issue_snapshots()


def create_app(settings: Settings, metrics: Metrics) -> Pipeline:
    s = settings
    check_faust()
    app = faust.App(
        s.app_id,
        **faust_broker_options(s),
        store=s.table_store,
        datadir=f"{s.data_dir}/faust",
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        web_enabled=False,  # health and live state are served by pipeline/worker.py
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

    def table(name: str) -> Any:
        return app.Table(
            name,
            default=None,
            partitions=s.partitions,
            schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        )

    topics = {
        "by_fingerprint": topic(s.topic_by_fingerprint),
        "processed": topic(s.topic_processed),
        "alerts": topic(s.topic_alerts),
        "dlq": topic(s.topic_dlq),
        "control": topic(s.topic_control),
    }
    tables = {name: table(name) for name in TABLES}
    guarded = {s.topic_by_fingerprint, s.topic_control}
    guard = PartitionGuard(app, guarded, metrics)
    issues = IssuesAgent(
        app, tables, topics, StreamRules.from_settings(s), metrics, guard, partitions=s.partitions
    )
    control = ControlAgent(topics, s.partitions, guard)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        issues.eviction.forget(
            {tp.partition for tp in revoked if tp.topic == s.topic_by_fingerprint}
        )
        guard.forget(revoked)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        guard.forget(assigned)

    @app.timer(interval=0.5)
    async def rewind_overdue() -> None:
        try:
            await guard.check_partitions()
        except Exception:  # a rebalance under it (partition no longer assigned): next turn
            if not app.rebalancing:
                log.exception("offset guard check failed; retried in 0.5 s")

    @app.agent(topics["control"], name="control")
    async def control_agent(stream):
        ignore_gaps(app, guarded)
        await control.run(stream)

    @app.agent(topics["by_fingerprint"], name="issues")
    async def issues_agent(stream):
        ignore_gaps(app, guarded)
        await issues.run(stream)

    return Pipeline(app, s, metrics, topics, tables, issues)
