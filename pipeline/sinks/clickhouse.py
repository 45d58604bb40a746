"""The ClickHouse sink: a dedicated consumer of the processed topic.

    poll → build rows (bad ones → dead-letter topic) → batch by size OR time
         → insert in a thread (retry with backoff; consumption pauses meanwhile)
         → commit offsets

Offsets are committed only after ClickHouse has the batch, so a crash replays the
uncommitted tail; the events table collapses replays by event_id (ReplacingMergeTree).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.metrics import Metrics
from pipeline.settings import Settings
from pipeline.sinks.rows import EVENT_COLUMNS, RowError, to_event_row
from pipeline.storage import Backend, ClickHouseUnavailable, StorageError

log = logging.getLogger("errorstream.sink")


class SinkBackpressure(Exception):
    """ClickHouse is not taking inserts; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, cause: Exception) -> None:
        super().__init__(f"ClickHouse insert failed, retry in {retry_after:.2f}s: {cause}")
        self.retry_after = retry_after


@dataclass
class Batch:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next offset to commit
    started: float = 0.0

    def add(self, tp: TopicPartition, offset: int, row: tuple[Any, ...] | None) -> None:
        if not self.rows and not self.offsets:
            self.started = time.monotonic()
        if row is not None:
            self.rows.append(row)
        self.offsets[tp] = offset + 1

    def __len__(self) -> int:
        return len(self.rows)


def split_rejected(
    insert, rows: Sequence[tuple[Any, ...]]
) -> tuple[int, list[tuple[tuple[Any, ...], str]]]:
    """Insert ``rows``, isolating rows ClickHouse rejects by bisection.

    Returns (rows inserted, [(row, error)]). ``ClickHouseUnavailable`` propagates: an
    unreachable engine is not a property of the rows.
    """
    try:
        return insert(rows), []
    except ClickHouseUnavailable:
        raise
    except StorageError as exc:
        if len(rows) == 1:
            return 0, [(rows[0], str(exc))]
    mid = len(rows) // 2
    n1, bad1 = split_rejected(insert, rows[:mid])
    n2, bad2 = split_rejected(insert, rows[mid:])
    return n1 + n2, bad1 + bad2


class ClickHouseSink:
    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        metrics: Metrics,
        send_dead_letter,  # async (value: bytes) -> None
        table: str = "events",
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.metrics = metrics
        self.send_dead_letter = send_dead_letter
        self.table = table
        self.batch = Batch()
        self.consumer: AIOKafkaConsumer | None = None
        self.healthy = True
        self._stopping = asyncio.Event()

    # -- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=f"{s.app_id}-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        sink = self

        class FlushOnRevoke(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                await sink.flush()

            async def on_partitions_assigned(self, assigned):
                pass

        self.consumer.subscribe([s.topic_processed], listener=FlushOnRevoke())
        await self.consumer.start()
        try:
            while not self._stopping.is_set():
                room = max(1, s.sink_max_batch_size - len(self.batch))
                wait = s.sink_max_batch_time
                if self.batch.offsets:
                    wait = max(0.0, s.sink_max_batch_time - (time.monotonic() - self.batch.started))
                polled = await self.consumer.getmany(timeout_ms=int(wait * 1000), max_records=room)
                for tp, messages in polled.items():
                    for message in messages:
                        await self._add(tp, message)
                if self._batch_due():
                    await self.flush()
            await self.flush()
        finally:
            await self.consumer.stop()

    def _batch_due(self) -> bool:
        if not self.batch.offsets:
            return False
        if len(self.batch) >= self.settings.sink_max_batch_size:
            return True
        return time.monotonic() - self.batch.started >= self.settings.sink_max_batch_time

    async def _add(self, tp: TopicPartition, message) -> None:
        row = None
        try:
            row = to_event_row(orjson.loads(message.value))
        except (RowError, orjson.JSONDecodeError) as exc:
            await self._reject(message.value, str(exc), tp, message.offset)
        self.batch.add(tp, message.offset, row)

    async def _reject(self, value: bytes | str, error: str, tp=None, offset=None) -> None:
        self.metrics.sink_rejected.inc()
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        source = {"topic": tp.topic, "partition": tp.partition, "offset": offset} if tp else {}
        record = {"reason": "sink_rejected", "error": error, "source": source, "payload": value}
        await self.send_dead_letter(orjson.dumps(record))

    async def flush(self) -> None:
        """Insert the pending batch (retrying until ClickHouse takes it), then commit."""
        batch, self.batch = self.batch, Batch()
        if not batch.offsets:
            return
        if batch.rows:
            await self._insert_with_retry(batch.rows)
        if self.consumer is not None:
            commit = {tp: OffsetAndMetadata(off, "") for tp, off in batch.offsets.items()}
            try:
                await self.consumer.commit(commit)
            except Exception as exc:  # a rebalance took the partitions: they will replay
                log.warning("sink commit failed, the batch will be replayed: %s", exc)

    async def _insert_with_retry(self, rows: list[tuple[Any, ...]]) -> None:
        backoff = 0.05
        while True:
            try:
                await self._insert(rows, retry_after=backoff)
                self.healthy = True
                return
            except SinkBackpressure as exc:
                # Nothing is polled while we wait: consumption is paused, nothing is acked.
                self.healthy = False
                self.metrics.sink_retries.inc()
                log.warning("%s", exc)
                await asyncio.sleep(exc.retry_after)
                backoff = min(backoff * 2, self.settings.sink_retry_max_backoff)

    async def _insert(self, rows: list[tuple[Any, ...]], retry_after: float) -> None:
        started = time.perf_counter()

        def insert(chunk):
            return self.backend.insert(self.table, EVENT_COLUMNS, chunk)

        try:
            inserted, rejected = await asyncio.to_thread(split_rejected, insert, rows)
        except ClickHouseUnavailable as exc:
            self.metrics.sink_failures.inc()
            raise SinkBackpressure(retry_after, exc) from exc
        self.metrics.sink_insert_latency.observe(time.perf_counter() - started)
        for row, error in rejected:
            record = dict(zip(EVENT_COLUMNS, row, strict=True))
            await self._reject(orjson.dumps(record, default=str), error)
        self.metrics.sink_rows_inserted.labels(self.table).inc(inserted)
        self.metrics.sink_batches.inc()
        self.metrics.sink_batch_size.observe(len(rows))

    def stop(self) -> None:
        self._stopping.set()
