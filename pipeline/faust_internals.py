"""Every place errorstream reaches past faust's public API, in one module.

Checked against faust-streaming ``FAUST_CHECKED`` (below); ``check_faust()`` logs a warning
at start on any other version, and ``tests/unit/test_faust_internals.py`` fails when one of
these attributes is missing or has changed shape in the installed faust. Each workaround is
also exercised end to end by the integration tests named beside it.

Private faust attributes touched, and why:

    Consumer._add_gap(tp, from, to)      ``ignore_gaps``: faust counts offsets it saw jump
                                         over as acked (meant for compacted and transactional
                                         topics); on the guarded topics a jump means dropped
                                         records, which must never be committed as processed
                                         (test_shutdown, test_stream_agents SIGKILL)
    Consumer._committed_offset[tp]       ``PartitionGuard.ensure_started``: the offset the
                                         guard starts from after an assignment
    Consumer._unacked_messages           ``PartitionGuard.admit``: a skipped record is marked
    Message.acked                        acked and forgotten without counting towards the
                                         commit (faust's ``ack`` would advance it)
    Table.data, Store.set_persisted_offset, Table.changelog_topic_name
                                         ``write_state``: each changed key written to the
                                         store and sent to its changelog partition through
                                         the producer directly, bypassing ``Table.__setitem__``
                                         whose send buffer is drained one message per loop
                                         turn and blocks stream delivery above 100 messages
                                         (test_stream_agents, test_child_crash)

Public but relied on in a particular way: ``Stream.noack()`` + ``Stream.ack(event)`` (manual,
in-order acks after delivery: ``AckWhenDelivered``), ``Consumer.seek`` / ``highwater`` /
``earliest_offsets`` / ``assignment`` and ``App.rebalancing`` /
``App.tables.recovery.completed`` (the offset guard), ``App.producer.send``.
Why the guard exists: ``pipeline/offsets.py`` and docs/stream-agents.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from faust.types import TP

from pipeline.offsets import OffsetGuard, Verdict

log = logging.getLogger("errorstream.faust")

FAUST_CHECKED = "0.15.3"


def check_faust() -> str:
    """The installed faust-streaming version; a warning when it is not the checked one."""
    try:
        installed = version("faust-streaming")
    except PackageNotFoundError:  # pragma: no cover - the pipeline extra installs it
        installed = "unknown"
    if installed != FAUST_CHECKED:
        log.warning(
            "faust-streaming %s: pipeline/faust_internals.py was checked against %s; "
            "run tests/unit/test_faust_internals.py",
            installed,
            FAUST_CHECKED,
        )
    return installed


# -- table writes past Table.__setitem__ -------------------------------------------------------
def table_bytes(value: Any) -> bytes:
    """A table key or value as faust's json codec writes it to the changelog (orjson with
    non-string keys allowed), so faust's recovery reads it back and compaction sees the same
    key bytes as faust's own writes."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


_MISSING = object()
_DELETED = object()


class Overlay:
    """A write-back view of a table for one envelope: reads see this envelope's writes;
    ``write_state`` writes each changed key to the table's store and its changelog once."""

    __slots__ = ("table", "changes")

    def __init__(self, table: Any) -> None:
        self.table = table
        self.changes: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        value = self.changes.get(key, _MISSING)
        if value is _MISSING:
            return self.table.get(key, default)
        return default if value is _DELETED else value

    def __contains__(self, key: str) -> bool:
        value = self.changes.get(key, _MISSING)
        return key in self.table if value is _MISSING else value is not _DELETED

    def __setitem__(self, key: str, value: Any) -> None:
        self.changes[key] = value

    def __delitem__(self, key: str) -> None:
        self.changes[key] = _DELETED

    def take(self) -> list[tuple[bytes, bytes | None]]:
        """Apply the changes to the table's store and return them as changelog messages
        (key, JSON value or None for a deletion), in the order they were made."""
        data = self.table.data
        out: list[tuple[bytes, bytes | None]] = []
        for key, value in self.changes.items():
            if value is _DELETED:
                if key in data:
                    del data[key]
                    out.append((table_bytes(key), None))
            else:
                data[key] = value
                out.append((table_bytes(key), table_bytes(value)))
        self.changes.clear()
        return out


def _persisted(store: Any, tp: TP) -> Any:
    def on_done(fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is None:
            store.set_persisted_offset(tp, fut.result().offset)

    return on_done


async def write_state(
    app: Any, overlays: Iterable[Overlay], partition: int
) -> list[asyncio.Future]:
    """Each changed key once: into the table's store, and to its changelog partition
    through the producer directly. The futures resolve when the broker has each message;
    the store records the persisted changelog offset as faust's own path does (RocksDB)."""
    sent = []
    for overlay in overlays:
        messages = overlay.take()
        if not messages:
            continue
        table = overlay.table
        topic = table.changelog_topic_name
        on_done = _persisted(table.data, TP(topic, partition))
        for key, value in messages:
            fut = await app.producer.send(topic, key, value, partition, None, None)
            fut.add_done_callback(on_done)
            sent.append(fut)
    return sent


# -- acks ---------------------------------------------------------------------------------------
class AckWhenDelivered:
    """Acks a stream's events in processing order, each once every message it produced is
    delivered. A failed delivery stops all later acks (their offsets never commit, so a
    restart replays them) and is raised by the next ``check``. (faust's automatic ack sits
    in a ``finally`` and would also ack an envelope whose processing a stop cancelled.)"""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        # [event, messages not yet delivered, first failure] per event, in processing order
        self.pending: deque[list] = deque()
        self.failed: BaseException | None = None

    def add(self, event: Any, sent: list[asyncio.Future]) -> None:
        entry = [event, len(sent), None]
        self.pending.append(entry)
        for future in sent:
            future.add_done_callback(lambda f, entry=entry: self._on_done(entry, f))
        if not sent:
            self._release()

    def check(self) -> None:
        if self.failed is not None:
            raise RuntimeError(f"a processed envelope was not delivered: {self.failed}")

    def _on_done(self, entry: list, future: asyncio.Future) -> None:
        entry[1] -= 1
        if entry[2] is None and (future.cancelled() or future.exception() is not None):
            entry[2] = RuntimeError("cancelled") if future.cancelled() else future.exception()
        if entry[1] == 0:
            self._release()

    def _release(self) -> None:
        while self.failed is None and self.pending and self.pending[0][1] == 0:
            event, _, error = self.pending.popleft()
            if error is not None:
                self.failed = error
                return
            asyncio.ensure_future(self.stream.ack(event))


# -- the offset guard, wired into faust's consumer ------------------------------------------------
def ignore_gaps(app: Any, topics: set[str]) -> None:
    """Offsets faust saw jump over on ``topics`` are not counted as acked (see the header)."""
    consumer = app.consumer
    if getattr(consumer, "_errorstream_gaps_ignored", False):
        return
    add_gap = consumer._add_gap

    async def _add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
        if tp.topic not in topics:
            await add_gap(tp, offset_from, offset_to)

    consumer._add_gap = _add_gap
    consumer._errorstream_gaps_ignored = True


class PartitionGuard:
    """``OffsetGuard`` applied to faust's consumer for the guarded topics: ``admit`` decides
    per record (and seeks back on a gap), ``check_partitions`` (every 0.5 s) repeats overdue
    seeks and seeks back an idle agent's partition whose log holds unprocessed records."""

    def __init__(self, app: Any, topics: set[str], metrics: Any) -> None:
        self.app, self.topics, self.metrics = app, topics, metrics
        self.guard = OffsetGuard()
        # guarded topic -> since when its agent has been waiting for a record (absent: busy
        # or never started); ``ready_since``: since when faust is out of rebalance/recovery
        self.waiting_since: dict[str, float | None] = {}
        self.ready_since: float | None = None

    def forget(self, partitions: Iterable[Any]) -> None:
        self.guard.forget(set(partitions))

    def waiting(self, topic: str) -> None:
        self.waiting_since[topic] = time.monotonic()

    def processed(self, msg: Any) -> None:
        self.guard.processed(msg.tp, msg.offset)
        self.waiting(msg.topic)

    async def ensure_started(self, tp: Any) -> None:
        if not self.guard.knows(tp):
            consumer = self.app.consumer
            committed = consumer._committed_offset.get(tp)
            if committed is None:  # nothing committed yet: the group starts at the earliest
                committed = (await consumer.earliest_offsets(tp)).get(tp) or 0
            self.guard.start(tp, committed)

    async def rewind(self, tp: Any, why: str = "records dropped before the agent") -> None:
        consumer = self.app.consumer
        offset = self.guard.expected[tp]
        earliest = (await consumer.earliest_offsets(tp)).get(tp)
        if earliest is not None and offset < earliest:
            log.error(
                "%s[%d]: offsets %d..%d were deleted by retention before they were processed",
                tp.topic,
                tp.partition,
                offset,
                earliest - 1,
            )
            self.metrics.envelopes_expired.inc(earliest - offset)
            self.guard.start(tp, earliest)
            offset = earliest
        await consumer.seek(tp, offset)
        self.guard.sought(tp, time.monotonic())
        self.metrics.partition_rewinds.inc()
        log.warning("%s[%d]: %s; sought back to %d", tp.topic, tp.partition, why, offset)

    async def admit(self, event: Any) -> bool:
        """Whether the agent processes this event now. A skipped event is neither processed
        nor acked: it is read again after the seek."""
        msg = event.message
        tp = msg.tp
        self.waiting_since[tp.topic] = None  # busy until it asks for the next record
        await self.ensure_started(tp)
        verdict = self.guard.check(tp, msg.offset)
        if verdict is Verdict.PROCESS:
            return True
        if verdict is Verdict.GAP and self.guard.seek_due(tp, time.monotonic()):
            try:
                await self.rewind(tp)
            except Exception as exc:  # e.g. revoked meanwhile; the next gap or timer retries
                log.warning("%s[%d]: seek back failed: %r", tp.topic, tp.partition, exc)
        msg.acked = True  # never acked: its offset must not count towards the commit
        self.app.consumer._unacked_messages.discard(msg)
        self.metrics.envelopes_skipped.labels(verdict.value).inc()
        self.waiting(tp.topic)
        return False

    async def check_partitions(self) -> None:
        app = self.app
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            self.ready_since = None
            return
        consumer = app.consumer
        assignment = {tp for tp in consumer.assignment() if tp.topic in self.topics}
        now = time.monotonic()
        if self.ready_since is None:
            self.ready_since = now
        for tp in self.guard.overdue(now):
            if tp in assignment:
                await self.rewind(tp)
            else:
                self.guard.forget({tp})
        for topic in self.topics:
            tps = [tp for tp in assignment if tp.topic == topic]
            for tp in tps:
                await self.ensure_started(tp)
            since = self.waiting_since.get(topic, self.ready_since)
            idle = 0.0 if since is None else now - max(since, self.ready_since)
            if app.rebalancing:
                return
            still_assigned = consumer.assignment()  # the awaits may have crossed a rebalance
            highwaters = {tp: consumer.highwater(tp) for tp in tps if tp in still_assigned}
            for tp in self.guard.stalled(highwaters, idle):
                if self.guard.seek_due(tp, now):
                    await self.rewind(tp, "records in the log never reached the idle agent")
