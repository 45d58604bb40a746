"""Every metric of the pipeline, declared in one place.

Names follow ``errorstream_<stage>_<what>_<unit>``. ``Metrics(registry)`` takes the
registry to register on, so tests can use a fresh one and read exact values.
docs/metrics.md lists every name with its labels and what moves it.

Processes that fork (several workers behind one exporter, gunicorn-style gateways) set
``PROMETHEUS_MULTIPROC_DIR`` before start: prometheus_client then keeps values in files in
that folder and ``exposition()`` aggregates them with ``MultiProcessCollector``.
"""

from __future__ import annotations

import os
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "ObservationBatch", "exposed_names", "exposition"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # decode / validate
        self.events_received = Counter(
            "errorstream_ingest_events_received_total",
            "Messages read from the ingest topic, by format (v1, sentry, sentry_envelope, unknown)",
            ["format"],
            registry=r,
        )
        self.events_accepted = Counter(
            "errorstream_ingest_events_accepted_total", "Events that passed validation", registry=r
        )
        self.events_invalid = Counter(
            "errorstream_ingest_events_invalid_total",
            "Messages sent to the dead-letter topic, by reason and format",
            ["reason", "format"],
            registry=r,
        )
        self.envelope_items_skipped = Counter(
            "errorstream_ingest_envelope_items_skipped_total",
            "Items of Sentry envelopes on the ingest topic that are not events, by type",
            ["type"],
            registry=r,
        )
        # stateful stage
        self.events_processed = Counter(
            "errorstream_issues_events_processed_total",
            "Events counted into issue state",
            registry=r,
        )
        self.events_deduplicated = Counter(
            "errorstream_issues_events_deduplicated_total",
            "Redelivered events (same event_id) not counted again",
            registry=r,
        )
        self.events_sampled = Counter(
            "errorstream_issues_events_sampled_total",
            "Event bodies not stored because of server-side sampling, by level",
            ["level"],
            registry=r,
        )
        self.events_shed = Counter(
            "errorstream_issues_events_shed_total",
            "Event bodies not stored by admission control (still counted), by limit",
            ["limit"],
            registry=r,
        )
        self.envelopes_skipped = Counter(
            "errorstream_issues_envelopes_skipped_total",
            "By-fingerprint envelopes the issues agent did not process where they arrived: "
            "stale (already processed) or gap (records before them were dropped on the way; "
            "re-read after a seek back)",
            ["reason"],
            registry=r,
        )
        self.partition_rewinds = Counter(
            "errorstream_issues_partition_rewinds_total",
            "Seeks of a by-fingerprint partition back to the next offset the issues agent "
            "expects, after a gap",
            registry=r,
        )
        self.envelopes_expired = Counter(
            "errorstream_issues_envelopes_expired_total",
            "By-fingerprint envelopes deleted by retention before the issues agent processed "
            "them (lost)",
            registry=r,
        )
        self.events_late = Counter(
            "errorstream_issues_events_late_total",
            "Events older than their key's watermark minus the grace: counted, not windowed",
            registry=r,
        )
        self.commands_applied = Counter(
            "errorstream_issues_commands_applied_total",
            "Lifecycle commands applied to issue state, by command",
            ["command"],
            registry=r,
        )
        self.merge_forwards = Counter(
            "errorstream_issues_merge_forwards_total",
            "Events, commands and merged states sent on to a merge target's partition",
            registry=r,
        )
        self.api_issue_actions = Counter(
            "errorstream_api_issue_actions_total",
            "Issue actions asked of the HTTP API, by action and result",
            ["action", "result"],
            registry=r,
        )
        self.alerts_emitted = Counter(
            "errorstream_alerts_emitted_total",
            "Alerts sent to the alerts topic, by kind",
            ["kind"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "errorstream_stage_latency_seconds",
            "Processing time per event and stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_lag = Histogram(
            "errorstream_issues_end_to_end_lag_seconds",
            "Event time to processed (wall clock)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.issues_tracked = Gauge(
            "errorstream_issues_tracked_issues",
            "Issues in this worker's state (its partitions)",
            registry=r,
            multiprocess_mode="livesum",
        )
        # sink
        self.sink_rows_inserted = Counter(
            "errorstream_sink_rows_inserted_total",
            "Rows inserted into ClickHouse, by table",
            ["table"],
            registry=r,
        )
        self.sink_batches = Counter(
            "errorstream_sink_batches_total", "Insert batches committed", registry=r
        )
        self.sink_batch_size = Histogram(
            "errorstream_sink_batch_size_rows",
            "Rows per insert batch",
            buckets=(1, 10, 100, 500, 1000, 5000, 10000, 20000, 50000, 100000),
            registry=r,
        )
        self.sink_insert_latency = Histogram(
            "errorstream_sink_insert_latency_seconds",
            "Time of one ClickHouse insert",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sink_failures = Counter(
            "errorstream_sink_insert_failures_total", "Failed insert attempts", registry=r
        )
        self.sink_retries = Counter(
            "errorstream_sink_insert_retries_total", "Insert attempts retried", registry=r
        )
        self.sink_rejected = Counter(
            "errorstream_sink_rows_rejected_total",
            "Rows ClickHouse or the row builder refused, sent to the dead-letter topic",
            registry=r,
        )
        self.sink_lag = Gauge(
            "errorstream_sink_consumer_lag_messages",
            "Messages behind the end of each partition",
            ["topic", "partition"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.sink_paused = Gauge(
            "errorstream_sink_paused",
            "1 while the sink has paused fetching (every insert slot busy, next batch full)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.sink_inflight = Gauge(
            "errorstream_sink_inflight_inserts",
            "Batches being inserted into ClickHouse now",
            registry=r,
            multiprocess_mode="livesum",
        )
        # operations: measured every lag_interval by the worker's LagMonitor (pipeline/worker.py)
        self.consumer_lag = Gauge(
            "errorstream_kafka_consumer_lag_messages",
            "End offset minus committed offset per consumer group and partition, measured "
            "from the broker (group = app_id for the agents, app_id-sink for the sink)",
            ["group", "topic", "partition"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.table_keys = Gauge(
            "errorstream_state_table_keys",
            "Keys in each faust table on this worker (its active partitions)",
            ["table"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.lag_measure_failures = Counter(
            "errorstream_kafka_lag_measure_failures_total",
            "Consumer-lag measurements that failed (broker unreachable, group rebalancing)",
            registry=r,
        )
        # processes: `errorstream worker` supervises one decoder, agent and sink process
        self.child_restarts = Counter(
            "errorstream_worker_child_restarts_total",
            "Child processes of `errorstream worker` restarted after they exited unasked, by role",
            ["role"],
            registry=r,
        )
        self.child_up = Gauge(
            "errorstream_worker_child_up",
            "1 while the child process of a role runs under `errorstream worker`",
            ["role"],
            registry=r,
            multiprocess_mode="livemax",
        )
        # gateway: the HTTP ingest process (pipeline/gateway, docs/gateway.md)
        self.gateway_requests = Counter(
            "errorstream_gateway_requests_total",
            "HTTP requests served by the ingest gateway, by endpoint and status code",
            ["endpoint", "status"],
            registry=r,
        )
        self.gateway_items = Counter(
            "errorstream_gateway_items_total",
            "Envelope items (and store / v1 events) in accepted requests, by item type",
            ["type"],
            registry=r,
        )
        self.gateway_events_published = Counter(
            "errorstream_gateway_events_published_total",
            "Events acknowledged by Kafka on the ingest topic",
            registry=r,
        )
        self.gateway_bytes = Counter(
            "errorstream_gateway_received_bytes_total",
            "Request body bytes: as received (wire) and after decompression (decompressed)",
            ["stage"],
            registry=r,
        )
        self.gateway_rejects = Counter(
            "errorstream_gateway_rejects_total",
            "Requests refused, by reason (auth, size, envelope, json, rate_limited, kafka...)",
            ["reason"],
            registry=r,
        )
        self.gateway_publish_latency = Histogram(
            "errorstream_gateway_publish_latency_seconds",
            "From handing a request's events to the producer to Kafka's acknowledgement",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        # notifier (pipeline/notify): alerts topic → webhooks, Slack, e-mail
        self.notify_alerts_received = Counter(
            "errorstream_notify_alerts_received_total",
            "Alerts read from the alerts topic by the notifier",
            registry=r,
        )
        self.notify_alerts_routed = Counter(
            "errorstream_notify_alerts_routed_total",
            "Alerts a route's filter accepted, by route",
            ["route"],
            registry=r,
        )
        self.notify_deliveries = Counter(
            "errorstream_notify_deliveries_total",
            "Messages (one alert or a digest) by route, channel and outcome "
            "(delivered, dead_lettered)",
            ["route", "channel", "outcome"],
            registry=r,
        )
        self.notify_retries = Counter(
            "errorstream_notify_retries_total",
            "Delivery attempts that failed and were retried, by route and channel",
            ["route", "channel"],
            registry=r,
        )
        self.notify_dead_letters = Counter(
            "errorstream_notify_dead_letters_total",
            "Records sent to the notifier's dead-letter topic, by route and reason "
            "(retries_exhausted, rejected, invalid_alert)",
            ["route", "reason"],
            registry=r,
        )
        self.notify_delivery_latency = Histogram(
            "errorstream_notify_delivery_latency_seconds",
            "Alert read by the notifier to its message delivered, digest hold and retries "
            "included, by channel",
            ["channel"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.notify_digest_size = Histogram(
            "errorstream_notify_digest_size_alerts",
            "Alerts per delivered or dead-lettered message, by route (1 = a single alert)",
            ["route"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 500, 1000),
            registry=r,
        )
        self.notify_pending = Gauge(
            "errorstream_notify_pending_alerts",
            "Alerts read but not yet delivered or dead-lettered (held in digests or being "
            "delivered): their offsets are not committed",
            registry=r,
        )

        # the query API and the dashboard (pipeline/dashboard/auth.py)
        self.api_refused = Counter(
            "errorstream_api_requests_refused_total",
            "Requests to the query API or the dashboard refused by authentication or CSRF "
            "rules, by reason (unauthenticated, credentials, csrf, cross_origin, host)",
            ["reason"],
            registry=r,
        )

        # the read-only ClickHouse HTTP interface on the embedded store (pipeline/chhttp.py)
        self.chhttp_queries = Counter(
            "errorstream_chhttp_queries_total",
            "Queries received by the ClickHouse HTTP interface, by outcome "
            "(ok, refused: not allowed read-only, auth: bad credentials, error: the engine failed it)",
            ["outcome"],
            registry=r,
        )
        self.chhttp_query_latency = Histogram(
            "errorstream_chhttp_query_latency_seconds",
            "Time from request to response of answered ClickHouse HTTP interface queries",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        return exposition(self.registry)


def exposition(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry``, or of every process's values in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)
    return generate_latest(registry)


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name ``registry`` can expose (``x_total``, ``x_bucket``, ...), labelled
    metrics included before any label value exists; for checking dashboards and rules."""
    names: set[str] = set()
    for family in registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


class ObservationBatch:
    """Observations of one histogram (child) gathered in memory and added in one step.

    In multi-process mode every ``observe`` is a lock and two ``mmap`` writes; an agent that
    observes per event pays that per event. ``observe`` here only counts into a local bucket;
    ``flush`` adds each bucket's count and the sum once. The exposed values are exactly
    those of calling ``observe`` on the histogram for each value (unit-tested), so ``_count``
    still counts events. Relies on prometheus-client's Histogram internals ``_upper_bounds``,
    ``_buckets`` and ``_sum`` (0.2x), checked by that test."""

    __slots__ = ("histogram", "bounds", "counts", "total", "n")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.bounds = list(histogram._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.n = 0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # first bound >= amount, like observe
        self.total += amount
        self.n += 1

    def flush(self) -> None:
        if not self.n:
            return
        h = self.histogram
        h._sum.inc(self.total)
        for i, k in enumerate(self.counts):
            if k:
                h._buckets[i].inc(k)
                self.counts[i] = 0
        self.total = 0.0
        self.n = 0
