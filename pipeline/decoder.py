"""The decode stage: ingest topic → decode + validate + fingerprint → by-fingerprint topic.

A message is a schema v1 event, a Sentry event payload or a Sentry envelope, told apart by
its ``content-type`` header or its shape (``pipeline/stages/formats.py``,
docs/ingest-formats.md). Stateless, so it is a plain consumer group (``<app_id>-decode``) rather than a faust agent:
one event per ingest message would cost the stream framework's per-message overhead on every
event (measured: a faust agent that only iterates tops out at ~7,000 messages/s here; a bare
aiokafka loop at ~300,000). Each poll is one batch:

    getmany → decode each (pure: format → v1 event(s)) → invalid ones to the DLQ with the reason
            → valid ones grouped by their by-fingerprint partition → one envelope per partition
            → wait until the broker has every message → commit the batch's offsets

Offsets advance only after the broker acknowledged the envelopes and dead letters, so a crash
or SIGTERM replays at most the batch in flight; the issues agent drops the replayed events by
event_id (dedup window). Stopping finishes the batch in flight first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.grouping import GroupingConfig
from pipeline.grouping.watcher import RulesWatcher
from pipeline.kafka_clients import client_config, group_options
from pipeline.metrics import Metrics, ObservationBatch
from pipeline.settings import Settings
from pipeline.stages.decode import dead_letter
from pipeline.stages.envelope import group_by_partition, packed
from pipeline.stages.fingerprint import enrich
from pipeline.stages.formats import Headers, IngestFormats, decode_message, ingest_formats
from pipeline.stages.records import by_fingerprint_line

log = logging.getLogger("errorstream.decode")


def decode_batch(
    records: list[tuple[str, int, int, bytes, Headers]],
    grouping: GroupingConfig,
    partitions: int,
    metrics: Metrics | None = None,
    now: float | None = None,
    formats: IngestFormats | None = None,
) -> tuple[dict[int, tuple[bytes, list[bytes]]], list[bytes]]:
    """(topic, partition, offset, value, headers) records → (by-fingerprint partition →
    (key, lines), dead letters). Pure apart from the counters. A record is schema v1, a
    Sentry event or a Sentry envelope (``pipeline.stages.formats``)."""
    received_at = time.time() if now is None else now
    formats = formats or IngestFormats()
    keyed: list[tuple[bytes, bytes]] = []
    dead: list[bytes] = []
    received: dict[str, int] = {}
    skipped: collections.Counter = collections.Counter()
    for topic, partition, offset, raw, headers in records:
        message = decode_message(
            raw,
            headers,
            formats,
            received_at=received_at,
            source=(topic, partition, offset),
        )
        received[message.format] = received.get(message.format, 0) + 1
        if message.invalid is not None:
            if metrics is not None:
                metrics.events_invalid.labels(message.invalid.reason, message.format).inc()
            source = {"topic": topic, "partition": partition, "offset": offset}
            dead.append(dead_letter(raw, message.invalid, source, message.format))
            continue
        if message.skipped:
            skipped.update(message.skipped)
        for decoded in message.events:
            record = enrich(decoded, grouping, received_at=received_at)
            meta = record["_meta"]
            # during a grouping transition, key by the old fingerprint: old and new events
            # of one issue meet in one partition (docs/stream-agents.md, "Grouping
            # transitions")
            key = (meta["secondary_fingerprints"] or [meta["fingerprint"]])[0]
            keyed.append((key.encode(), by_fingerprint_line(record, meta)))
    if metrics is not None:  # once per batch: a counter update takes a lock
        for fmt, n in received.items():
            metrics.events_received.labels(fmt).inc(n)
        for item_type, n in skipped.items():
            metrics.envelope_items_skipped.labels(item_type).inc(n)
        metrics.events_accepted.inc(len(keyed))
    return group_by_partition(keyed, partitions), dead


class Decoder:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        grouping: GroupingConfig,
        rules_watcher: RulesWatcher | None = None,
        wait_until_ready: Any = None,
    ) -> None:
        self.settings = settings
        # awaited before the first poll: the agent's tables are recovered and its partitions
        # sought to their committed offsets (fewer seeks back by the agent's offset guard)
        self.wait_until_ready = wait_until_ready
        self.metrics = metrics
        self.grouping = grouping
        self.formats = ingest_formats(settings)
        self.rules_watcher = rules_watcher  # server-side rules, reloaded when the file changes
        self._next_rules_check = 0.0
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.partitions = settings.partitions
        self.running = False
        self.decoded = 0
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        s = self.settings
        if self.wait_until_ready is not None:
            stopping = asyncio.ensure_future(self._stopping.wait())
            ready = asyncio.ensure_future(self.wait_until_ready())
            await asyncio.wait({stopping, ready}, return_when=asyncio.FIRST_COMPLETED)
            for task in (stopping, ready):
                task.cancel()
            if self._stopping.is_set():
                return
        self.producer = AIOKafkaProducer(
            **client_config(s, "decoder"),
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=1024 * 1024,
        )
        self.consumer = AIOKafkaConsumer(
            s.topic_events,
            **client_config(s, "decoder"),
            **group_options(s),
            group_id=f"{s.app_id}-decode",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=2 * 1024 * 1024,
        )
        await self.producer.start()
        try:
            known = await self.producer.partitions_for(s.topic_by_fingerprint)
            self.partitions = len(known) if known else s.partitions
            await self.consumer.start()
            self.running = True
            try:
                while not self._stopping.is_set():
                    await self._step()
            finally:
                self.running = False
                await self.consumer.stop()
        finally:
            await self.producer.stop()

    def reload_rules(self, now: float) -> None:
        """At most once a second: new rules when the rules file changed and is valid; an
        invalid file keeps the rules in effect and says why in the log."""
        if self.rules_watcher is None or now < self._next_rules_check:
            return
        self._next_rules_check = now + 1.0
        outcome = self.rules_watcher.poll()
        if outcome.reloaded:
            self.grouping = replace(self.grouping, rules=self.rules_watcher.rules)
            log.info("grouping rules reloaded from %s", self.rules_watcher.path)
        elif outcome.error is not None:
            log.warning("grouping rules not reloaded, the previous ones stay: %s", outcome.error)

    async def _step(self) -> None:
        assert self.consumer is not None and self.producer is not None
        s = self.settings
        self.reload_rules(time.monotonic())
        polled = await self.consumer.getmany(timeout_ms=200, max_records=s.decode_batch_size)
        if not polled:
            return
        # linger: a few ms more of events make fewer, larger envelopes, and the issues
        # agent's cost is mostly per envelope (docs/stream-agents.md, "Throughput")
        n = sum(map(len, polled.values()))
        deadline = time.monotonic() + s.decode_linger
        while n < s.decode_batch_size and (left := deadline - time.monotonic()) > 0:
            more = await self.consumer.getmany(
                timeout_ms=max(1, int(left * 1000)), max_records=s.decode_batch_size - n
            )
            for tp, messages in more.items():
                polled.setdefault(tp, []).extend(messages)
                n += len(messages)
        started = time.perf_counter()
        records = [
            (tp.topic, tp.partition, m.offset, m.value or b"", m.headers)
            for tp, messages in polled.items()
            for m in messages
        ]
        envelopes, dead = decode_batch(
            records, self.grouping, self.partitions, self.metrics, formats=self.formats
        )
        futures = [await self.producer.send(s.topic_dlq, value=value) for value in dead]
        for p, (key, lines) in envelopes.items():
            for value in packed(lines):
                futures.append(
                    await self.producer.send(
                        s.topic_by_fingerprint, key=key, value=value, partition=p
                    )
                )
        # the broker has every envelope and dead letter before the offsets move
        await asyncio.gather(*futures)
        offsets = {tp: OffsetAndMetadata(o, "") for tp, o in next_offsets(polled).items()}
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # a rebalance took the partitions: the new owner replays
            log.warning("decode commit failed, the batch will be replayed: %s", exc)
        self.decoded += len(records)
        valid = sum(len(lines) for _, lines in envelopes.values())
        if valid:  # one observation per valid event: the batch's time shared out
            per_event = (time.perf_counter() - started) / len(records)
            batch = ObservationBatch(self.metrics.stage_latency.labels("decode"))
            for _ in range(valid):
                batch.observe(per_event)
            batch.flush()  # one lock and one write per bucket, not per event

    def stop(self) -> None:
        self._stopping.set()

    def checks(self) -> dict[str, bool]:
        return {"decoder": self.running}


def next_offsets(polled: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
    """The next offset to commit per partition of a poll."""
    return {tp: messages[-1].offset + 1 for tp, messages in polled.items() if messages}
