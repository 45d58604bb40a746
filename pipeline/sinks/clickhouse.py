"""The ClickHouse sink: a dedicated consumer of the processed and alerts topics.

    poll ─▶ batch by size OR time ─▶ [thread] build rows ─▶ [thread] insert per table ─▶ commit offsets
               │                          │ unparseable record ──▶ dead-letter topic
               │                          │ row ClickHouse refuses (bisected) ──▶ dead-letter
               └─ pause partitions while `sink_max_inflight_inserts` inserts run, one more
                  batch is being built, and the next batch is full; polling goes on, so the
                  consumer stays in its group

Offsets are committed only after ClickHouse has the batch, in batch order, so a crash replays
the uncommitted tail — and every table is replay-safe (events collapse by event_id, minute
aggregates keep a max and uniq states, issues the highest version, alerts the alert_id).
When ClickHouse is down or slow, an insert raises ``SinkBackpressure`` and is retried with
capped exponential backoff until it succeeds: nothing is dropped and nothing is acked.

Row building and inserts run in threads, off the event loop the agents share, and overlap:
the rows of the next batch are built (Python, holding the GIL) while the engine inserts the
previous one (chDB releases the GIL), so on two cores a batch costs about the larger of the
two instead of their sum.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.kafka_clients import client_config, group_options
from pipeline.metrics import Metrics
from pipeline.settings import Settings
from pipeline.sinks.batching import Batch, Batcher, Message
from pipeline.sinks.rows import COLUMNS, Row, TableRows, build_rows
from pipeline.stages.envelope import count
from pipeline.storage import Backend, ClickHouseUnavailable
from pipeline.storage.backend import RowsRejected

log = logging.getLogger("errorstream.sink")
# a processed envelope the agent built from a command starts with the issue's new state
ISSUE_STATE_PREFIX = b'{"_kind":"issue_state"'

DRAIN_TIMEOUT = 15.0  # seconds a stop or a revocation waits for inserts before giving up
FIRST_BACKOFF = 0.05
PAUSED_POLL = 0.1  # seconds getmany waits while paused (it must be called to stay in the group)


class SinkBackpressure(Exception):
    """ClickHouse is not taking inserts; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, cause: Exception) -> None:
        super().__init__(f"ClickHouse insert failed, retry in {retry_after:.2f}s: {cause}")
        self.retry_after = retry_after
        self.cause = cause


def split_rejected(
    insert: Callable[[Sequence[Row]], int], rows: Sequence[Row]
) -> tuple[int, list[tuple[Row, str]]]:
    """Insert ``rows``, isolating the rows ClickHouse refuses by bisection.

    Returns (rows inserted, [(row, error)]). ``ClickHouseUnavailable`` propagates: an
    unreachable or broken engine is not a property of the rows.
    """
    try:
        return insert(rows), []
    except RowsRejected as exc:
        if len(rows) == 1:
            return 0, [(rows[0], str(exc))]
    mid = len(rows) // 2
    n1, bad1 = split_rejected(insert, rows[:mid])
    n2, bad2 = split_rejected(insert, rows[mid:])
    return n1 + n2, bad1 + bad2


@dataclass
class InsertResult:
    inserted: dict[str, int]
    rejected: list[tuple[str, Row, str]]  # table, row, error


def insert_tables(backend: Backend, tables: list[tuple[str, list[Row]]]) -> InsertResult:
    """Insert every table of a batch (blocking). Idempotent, so a retry after a partial
    failure inserts the tables that had succeeded again without changing any count."""
    result = InsertResult({}, [])
    for table, rows in tables:
        columns = COLUMNS[table]

        def insert(chunk, table=table, columns=columns):
            return backend.insert(table, columns, chunk)

        inserted, rejected = split_rejected(insert, rows)
        result.inserted[table] = inserted
        result.rejected.extend((table, row, error) for row, error in rejected)
    return result


SendDeadLetter = Callable[[bytes], Awaitable[None]]


class ClickHouseSink:
    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        metrics: Metrics,
        send_dead_letter: SendDeadLetter,
        *,
        group_id: str | None = None,
        topics: Sequence[str] | None = None,
    ) -> None:
        s = self.settings = settings
        self.backend = backend
        self.metrics = metrics
        self.send_dead_letter = send_dead_letter
        self.group_id = group_id or f"{s.app_id}-sink"
        self.topics = list(topics or (s.topic_processed, s.topic_alerts))
        self.batcher = Batcher(s.sink_max_batch_size, s.sink_max_batch_time)
        # Batches between "taken from the batcher" and "committed": the inserting ones plus
        # one whose rows are being built.
        self.inflight: deque[tuple[Batch, asyncio.Task]] = deque()
        self.capacity = s.sink_max_inflight_inserts + 1
        self.pool = ThreadPoolExecutor(
            max_workers=s.sink_max_inflight_inserts, thread_name_prefix="clickhouse-sink"
        )
        self.build_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-rows")
        self.insert_slots = asyncio.Semaphore(s.sink_max_inflight_inserts)
        self.inserting = 0  # batches holding an insert slot (the inflight-inserts gauge)
        self.consumer: AIOKafkaConsumer | None = None
        self.healthy = True
        self.paused = False
        self.committed_messages = 0
        self._stopping = asyncio.Event()

    # -- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            **client_config(s, "sink"),
            **group_options(s),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        sink = self

        class DrainOnRevoke(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                await sink._drain(revoked=True)

            async def on_partitions_assigned(self, assigned):
                sink.paused = False

        self.consumer.subscribe(self.topics, listener=DrainOnRevoke())
        await self.consumer.start()
        try:
            while not self._stopping.is_set():
                await self._step()
            await self._drain(revoked=False)
        finally:
            await self.consumer.stop()
            self.pool.shutdown(wait=False)
            self.build_pool.shutdown(wait=False)

    async def _step(self) -> None:
        assert self.consumer is not None
        now = time.monotonic()
        self._apply_backpressure(now)
        # Paused: poll with a real timeout. A batch that is due while every slot is busy
        # pauses too, so getmany never spins with timeout 0 (that never yields to the loop:
        # the insert's completion would not be delivered and the agents would starve), and
        # it is still called, so the consumer stays in its group however long ClickHouse
        # takes (max_poll_interval_ms counts from the last getmany).
        wait = PAUSED_POLL if self.paused else min(self.batcher.wait_time(now), 0.25)
        room = max(1, self.batcher.room())
        polled = await self.consumer.getmany(timeout_ms=int(wait * 1000), max_records=room)
        now = time.monotonic()
        for tp, records in polled.items():
            for record in records:
                value = record.value or b""
                self.batcher.add(
                    Message(tp.topic, tp.partition, record.offset, value),
                    now,
                    count(value),
                    urgent=value.startswith(ISSUE_STATE_PREFIX),  # after a command: no wait
                )
        await self._commit_done()
        if len(self.inflight) < self.capacity:
            if (batch := self.batcher.take_if_due(now)) is not None:
                self._submit(batch)
        elif not polled and not self.paused:
            await asyncio.sleep(0)  # let finished inserts report even if getmany did not wait

    def _apply_backpressure(self, now: float) -> None:
        """Pause fetching while every insert slot is busy, a batch is being built, and the
        next batch is full or due; resume as soon as a slot frees."""
        assert self.consumer is not None
        full = len(self.inflight) >= self.capacity and (
            self.batcher.room() <= 0 or self.batcher.due(now)
        )
        if full and not self.paused:
            self.consumer.pause(*self.consumer.assignment())
            self.paused = True
        elif not full and self.paused:
            self.consumer.resume(*self.consumer.paused())
            self.paused = False
        self.metrics.sink_paused.set(1 if self.paused else 0)

    def _submit(self, batch: Batch) -> None:
        """Start inserting ``batch`` (the caller checked that a slot is free)."""
        task = asyncio.ensure_future(self._write(batch))
        self.inflight.append((batch, task))

    async def _commit_done(self, wait: bool = False) -> None:
        """Commit the offsets of finished batches, oldest first, stopping at the first one
        still running: offsets never pass a batch ClickHouse does not have yet."""
        if wait and self.inflight:
            await asyncio.wait({self.inflight[0][1]}, timeout=0.1)
        while self.inflight and self.inflight[0][1].done():
            batch, task = self.inflight.popleft()
            task.result()  # a bug in _write must not be swallowed
            await self._commit(batch)

    async def _commit(self, batch: Batch) -> None:
        if self.consumer is None:
            return
        assigned = self.consumer.assignment()
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "")
            for (topic, partition), offset in batch.offsets.items()
            if TopicPartition(topic, partition) in assigned
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
            self.committed_messages += len(batch)
        except Exception as exc:  # a rebalance took the partitions: they will replay
            log.warning("sink commit failed, the batch will be replayed: %s", exc)
            return
        for tp, meta in offsets.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                self.metrics.sink_lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, high - meta.offset)
                )

    # -- one batch ------------------------------------------------------------------
    async def _write(self, batch: Batch) -> None:
        loop = asyncio.get_running_loop()
        topic_alerts = self.settings.topic_alerts
        rows, errors = await loop.run_in_executor(
            self.build_pool, build_rows, batch.messages, topic_alerts
        )
        for message, error in errors:
            await self._reject(message.value, error, message)
        tables = rows.tables()
        if tables:
            async with self.insert_slots:
                self.inserting += 1
                self.metrics.sink_inflight.set(self.inserting)
                try:
                    result = await self._insert_with_retry(tables)
                finally:
                    self.inserting -= 1
                    self.metrics.sink_inflight.set(self.inserting)
            for table, row, error in result.rejected:
                record = {
                    column: value.decode("utf-8", errors="replace")
                    if isinstance(value, bytes)
                    else value
                    for column, value in zip(COLUMNS[table], row, strict=True)
                }
                payload = orjson.dumps({"table": table, "row": record}, default=str)
                await self._reject(payload, error)
            for table, n in result.inserted.items():
                self.metrics.sink_rows_inserted.labels(table).inc(n)
        self.metrics.sink_batches.inc()
        self.metrics.sink_batch_size.observe(len(batch))

    async def _insert_with_retry(self, tables: list[tuple[str, list[Row]]]) -> InsertResult:
        backoff = FIRST_BACKOFF
        while True:
            try:
                result = await self._insert_once(tables, retry_after=backoff)
                self.healthy = True
                return result
            except SinkBackpressure as exc:
                self.healthy = False
                self.metrics.sink_retries.inc()
                log.warning("%s", exc)
                await asyncio.sleep(exc.retry_after)
                backoff = min(backoff * 2, self.settings.sink_retry_max_backoff)

    async def _insert_once(
        self, tables: list[tuple[str, list[Row]]], retry_after: float
    ) -> InsertResult:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(self.pool, insert_tables, self.backend, tables)
        except ClickHouseUnavailable as exc:
            self.metrics.sink_failures.inc()
            raise SinkBackpressure(retry_after, exc) from exc
        self.metrics.sink_insert_latency.observe(time.perf_counter() - started)
        return result

    async def _reject(self, value: bytes | str, error: str, message: Message | None = None):
        self.metrics.sink_rejected.inc()
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        source = (
            {"topic": message.topic, "partition": message.partition, "offset": message.offset}
            if message
            else {}
        )
        record = {"reason": "sink_rejected", "error": error, "source": source, "payload": value}
        await self.send_dead_letter(orjson.dumps(record))

    # -- stop and rebalance ---------------------------------------------------------
    async def _drain(self, revoked: bool) -> None:
        """Insert what is pending and commit, within ``DRAIN_TIMEOUT``. What does not make
        it is not committed: whoever owns the partitions next replays it (replay-safe)."""
        batch = self.batcher.take()
        if batch is not None:
            task = asyncio.ensure_future(self._write(batch))
            self.inflight.append((batch, task))
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while self.inflight and time.monotonic() < deadline:
            await self._commit_done(wait=True)
        for _, task in self.inflight:
            task.cancel()
        if self.inflight:
            log.warning(
                "sink %s with %d batch(es) not in ClickHouse; they will be replayed",
                "revoked" if revoked else "stopped",
                len(self.inflight),
            )
        self.inflight.clear()

    def stop(self) -> None:
        self._stopping.set()

    def checks(self) -> dict[str, bool]:
        return {"sink_writable": self.healthy}


def send_dead_letter_with(producer: Any, topic: str) -> SendDeadLetter:
    """A dead-letter callback over an aiokafka producer, acknowledged before it returns."""

    async def send(value: bytes) -> None:
        await producer.send_and_wait(topic, value)

    return send


__all__ = ["ClickHouseSink", "SinkBackpressure", "TableRows", "insert_tables", "split_rejected"]
