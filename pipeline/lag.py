"""Consumer lag and table sizes, measured from outside the consumers every ``lag_interval``.

    lag(partition) = end offset - committed offset of the group
                     (no commit yet: end - beginning, since both groups start at earliest)

Measured from the broker (admin API + a group-less consumer), not from the consumers' own
positions: a stuck consumer stops updating its own numbers, the broker's numbers keep growing,
which is what the ``ConsumerLagGrowing`` alert needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from mode import Service

from pipeline.kafka_clients import client_config
from pipeline.metrics import Metrics
from pipeline.settings import Settings

log = logging.getLogger("errorstream.lag")


def partition_lag(
    ends: Mapping[TopicPartition, int],
    committed: Mapping[TopicPartition, int],
    beginnings: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Messages each partition's group is behind; never negative."""
    out = {}
    for tp, end in ends.items():
        start = committed.get(tp, -1)
        if start < 0:
            start = beginnings.get(tp, 0)
        out[tp] = max(0, end - start)
    return out


def consumer_groups(settings: Settings) -> dict[str, list[str]]:
    """Each consumer group of the worker and the topics it reads."""
    s = settings
    return {
        f"{s.app_id}-decode": [s.topic_events],
        s.app_id: [s.topic_by_fingerprint, s.topic_control],
        f"{s.app_id}-sink": [s.topic_processed, s.topic_alerts],
    }


class LagMonitor(Service):
    """Sets ``errorstream_kafka_consumer_lag_messages`` and ``errorstream_state_table_keys``."""

    def __init__(
        self, settings: Settings, metrics: Metrics, tables: Mapping[str, Any], **kwargs: Any
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tables = tables
        self.admin: AIOKafkaAdminClient | None = None
        self.offsets: AIOKafkaConsumer | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.admin = AIOKafkaAdminClient(
            **client_config(self.settings, "lag"), request_timeout_ms=10_000
        )
        self.offsets = AIOKafkaConsumer(
            **client_config(self.settings, "lag"), enable_auto_commit=False
        )
        await self.admin.start()
        await self.offsets.start()

    async def on_stop(self) -> None:
        try:
            if self.offsets is not None:
                await self.offsets.stop()
            if self.admin is not None:
                await self.admin.close()
        except Exception as exc:  # noqa: BLE001 - stopping anyway
            log.debug("closing the lag clients: %s", exc)

    @Service.task
    async def _measure_forever(self) -> None:
        interval = self.settings.lag_interval
        while not self.should_stop:
            try:
                await self.measure_lag()
            except Exception as exc:  # noqa: BLE001 - a failed measurement is a metric
                self.metrics.lag_measure_failures.inc()
                log.debug("consumer lag measurement failed: %s", exc)
            # after the lag: a reading of lag 0 then implies table sizes taken after the commit
            self.measure_tables()
            await self.sleep(interval)

    def measure_tables(self) -> None:
        for name, table in self.tables.items():
            try:
                self.metrics.table_keys.labels(name).set(len(table))
            except Exception as exc:  # noqa: BLE001 - store not open yet (before recovery)
                log.debug("table %s size: %s", name, exc)

    async def measure_lag(self) -> None:
        assert self.admin is not None and self.offsets is not None
        for group, topics in consumer_groups(self.settings).items():
            tps = await self._partitions(topics)
            if not tps:
                continue
            committed = await self.admin.list_consumer_group_offsets(group, partitions=tps)
            ends = await self.offsets.end_offsets(tps)
            beginnings = await self.offsets.beginning_offsets(tps)
            done = {tp: meta.offset for tp, meta in committed.items() if meta is not None}
            for tp, lag in partition_lag(ends, done, beginnings).items():
                self.metrics.consumer_lag.labels(group, tp.topic, str(tp.partition)).set(lag)

    async def _partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        assert self.admin is not None
        described = await self.admin.describe_topics(list(topics))
        return [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if not t.get("error_code")
            for p in t["partitions"]
        ]
