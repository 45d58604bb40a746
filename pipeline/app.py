"""The faust app: wiring only. The whole topology, top to bottom:

    errorstream-events (any key)                          ingest topic, raw JSON bytes
        │  Decoder (pipeline/decoder.py, its own consumer group): decode + validate
        │           fingerprint (grouping engine) ──invalid──▶ errorstream-dlq (reason, offset)
        ▼
    errorstream-events-by-fingerprint                     repartition: envelopes (JSON Lines)
                                                          per partition of the fingerprint
        ▲                                                 (the old one during a grouping
        │  control_agent: validate, broadcast             transition): one issue, one partition
    errorstream-control (resolve/ignore/unresolve/merge)
        │
        │  issues_agent (stages/aggregate.py), tables co-partitioned, changelog-backed:
        │    dedup (event_id window) · aliases (secondary/merged → canonical fingerprint)
        │    issues (issue state, HLL users, minute ring, cooldowns) · services (per-partition
        │    share: minute ring, incidents) · minutes (exact counts per service/fp/minute/level/release/env)
        │                new_issue, regression, critical, threshold, spike, incident,
        │                error_rate ────────────────────▶  errorstream-alerts (key = fingerprint
        ▼                                                                    or service)
    errorstream-processed (envelopes, same partition)     one record per event (+ issue_state)
        │  ClickHouseSink (own consumer group): batch → insert → commit
        ▼
    ClickHouse (chDB in-process, or a server) ◀── queries ── HTTP API ◀── `errorstream query`

Stages are pure functions in ``pipeline/stages``; agents decode, call them, and hand on.
Why envelopes and a plain-consumer decoder: docs/stream-agents.md ("Throughput").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import faust
import orjson
from faust.types import TP

from pipeline.control import COMMAND_MARKER, CommandError, validate_command
from pipeline.metrics import Metrics
from pipeline.offsets import OffsetGuard, Verdict
from pipeline.settings import Settings
from pipeline.stages.aggregate import (
    dedup_key,
    minute_key,
    process_event,
    resolve_alias,
    service_key,
)
from pipeline.stages.decode import Invalid, dead_letter
from pipeline.stages.dedup import DedupWindow, EvictionQueue, should_apply
from pipeline.stages.envelope import packed, position, unpack
from pipeline.stages.issues import apply_command, merge_states
from pipeline.stages.rules import StreamRules
from pipeline.stages.windows import minute_of

log = logging.getLogger("errorstream.app")

MINUTE_COUNTS_RETENTION = 24 * 60  # minutes an exact per-minute counter is kept


@dataclass
class Pipeline:
    app: faust.App
    settings: Settings
    metrics: Metrics
    topics: dict[str, faust.TopicT]
    issues: Any  # faust.Table of fingerprint → issue state
    tables: dict[str, Any] = field(default_factory=dict)

    async def send_dead_letter(self, value: bytes) -> None:
        await self.topics["dlq"].send(value=value)

    def issue_snapshots(self) -> list[dict]:
        return [v["issue"] for v in self.issues.values() if v]


def _json(value: Any) -> bytes:
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
                    out.append((_json(key), None))
            else:
                data[key] = value
                out.append((_json(key), _json(value)))
        self.changes.clear()
        return out


class State(NamedTuple):
    issues: Overlay
    services: Overlay
    minutes: Overlay
    dedup: Overlay
    aliases: Overlay


def issue_state_record(issue: dict) -> bytes:
    return orjson.dumps({"_kind": "issue_state", "issue": issue})


class AckWhenDelivered:
    """Acks a stream's events in processing order, each once every message it produced is
    delivered. A failed delivery stops all later acks (their offsets never commit, so a
    restart replays them) and is raised by the next ``check``."""

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


def serialize_processed(items: list) -> list[bytes]:
    """Processed records as JSON lines. Only the last record of each issue in an envelope
    keeps the issue snapshot (``_meta.issue``, the state after the envelope); the others carry
    null: the sink stores the latest snapshot per issue anyway, and the snapshot is a third of
    a record's bytes."""
    last = {item[0]: i for i, item in enumerate(items) if isinstance(item, tuple)}
    out = []
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            fp, record = item
            if last[fp] != i:
                record["_meta"]["issue"] = None
            item = orjson.dumps(record)
        out.append(item)
    return out


class PartitionEviction:
    """Per partition: the dedup window (``DedupWindow``) and the eviction queue of the minute
    table, rebuilt from the table contents the first time a partition is seen (after start,
    recovery or a rebalance)."""

    def __init__(self, dedup: Any, minutes: Any, rules: StreamRules) -> None:
        self.dedup, self.minutes, self.rules = dedup, minutes, rules
        self.queues: dict[int, tuple[DedupWindow, EvictionQueue]] = {}
        self.watermark: dict[int, int] = {}

    def for_partition(self, p: int) -> tuple[DedupWindow, EvictionQueue]:
        queues = self.queues.get(p)
        if queues is None:
            prefix = f"{p}|"
            window = DedupWindow(
                self.rules.dedup_minutes,
                ((k, v) for k, v in self.dedup.items() if v and k.startswith(prefix)),
            )
            minutes = [
                (int(k.split("|")[3]) // 60, k) for k in self.minutes.keys() if k.startswith(prefix)
            ]
            queues = self.queues[p] = (
                window,
                EvictionQueue(MINUTE_COUNTS_RETENTION, minutes),
            )
            self.watermark[p] = window.newest_minute()
        return queues

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.queues.pop(p, None)


def create_app(settings: Settings, metrics: Metrics) -> Pipeline:
    s = settings
    rules = StreamRules.from_settings(s)
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
        "by_fingerprint": topic(s.topic_by_fingerprint),
        "processed": topic(s.topic_processed),
        "alerts": topic(s.topic_alerts),
        "dlq": topic(s.topic_dlq),
        "control": topic(s.topic_control),
    }

    def table(name: str) -> Any:
        return app.Table(
            name,
            default=None,
            partitions=s.partitions,
            schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        )

    issues, services, minutes, dedup, aliases = (
        table(n) for n in ("issues", "services", "minutes", "dedup", "aliases")
    )
    pipeline = Pipeline(app, s, metrics, topics, issues)
    pipeline.tables = dict(
        issues=issues, services=services, minutes=minutes, dedup=dedup, aliases=aliases
    )
    eviction = PartitionEviction(dedup, minutes, rules)

    guarded_topics = {s.topic_by_fingerprint, s.topic_control}
    guard = OffsetGuard()

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        eviction.forget({tp.partition for tp in revoked if tp.topic == s.topic_by_fingerprint})
        guard.forget(set(revoked))

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        guard.forget(set(assigned))

    def ignore_faust_gaps() -> None:
        """faust counts offsets it saw jump over as acked (meant for compacted and
        transactional topics); on the guarded topics a jump means dropped records, which
        the guard re-reads, so they must never be committed as if processed."""
        consumer = app.consumer
        if getattr(consumer, "_errorstream_gaps_ignored", False):
            return
        add_gap = consumer._add_gap

        async def _add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
            if tp.topic not in guarded_topics:
                await add_gap(tp, offset_from, offset_to)

        consumer._add_gap = _add_gap
        consumer._errorstream_gaps_ignored = True

    # guarded topic -> since when its agent has been waiting for a record (absent: busy or
    # never started); ``ready_since``: since when faust has been out of rebalancing/recovery
    waiting_since: dict[str, float | None] = {}
    ready_since: float | None = None

    def waiting(topic: str) -> None:
        waiting_since[topic] = time.monotonic()

    async def ensure_started(tp: Any) -> None:
        if not guard.knows(tp):
            consumer = app.consumer
            committed = consumer._committed_offset.get(tp)
            if committed is None:  # nothing committed yet: the group starts at the earliest
                committed = (await consumer.earliest_offsets(tp)).get(tp) or 0
            guard.start(tp, committed)

    async def rewind(tp: Any, why: str = "records dropped before the agent") -> None:
        consumer = app.consumer
        offset = guard.expected[tp]
        earliest = (await consumer.earliest_offsets(tp)).get(tp)
        if earliest is not None and offset < earliest:
            log.error(
                "%s[%d]: offsets %d..%d were deleted by retention before they were processed",
                tp.topic,
                tp.partition,
                offset,
                earliest - 1,
            )
            metrics.envelopes_expired.inc(earliest - offset)
            guard.start(tp, earliest)
            offset = earliest
        await consumer.seek(tp, offset)
        guard.sought(tp, time.monotonic())
        metrics.partition_rewinds.inc()
        log.warning("%s[%d]: %s; sought back to %d", tp.topic, tp.partition, why, offset)

    async def admit(event: Any) -> bool:
        """Whether the agent processes this event now (``OffsetGuard``). A skipped event is
        neither processed nor acked: it is read again after the seek."""
        msg = event.message
        tp = msg.tp
        waiting_since[tp.topic] = None  # busy until it asks for the next record
        await ensure_started(tp)
        verdict = guard.check(tp, msg.offset)
        if verdict is Verdict.PROCESS:
            return True
        if verdict is Verdict.GAP and guard.seek_due(tp, time.monotonic()):
            try:
                await rewind(tp)
            except Exception as exc:  # e.g. revoked meanwhile; the next gap or the timer retries
                log.warning("%s[%d]: seek back failed: %r", tp.topic, tp.partition, exc)
        msg.acked = True  # never acked: its offset must not count towards the commit
        app.consumer._unacked_messages.discard(msg)
        metrics.envelopes_skipped.labels(verdict.value).inc()
        waiting(tp.topic)
        return False

    @app.timer(interval=0.5)
    async def rewind_overdue() -> None:
        """Dropped records that no later record reveals: a seek whose expected record never
        arrived is repeated, and a partition whose log holds records its idle agent has not
        processed is sought back (faust drops records fetched while its flow is suspended
        around a rebalance, and after a restart they can be a partition's last ones)."""
        try:
            await check_partitions()
        except Exception:  # a rebalance under it (partition no longer assigned): next turn
            if not app.rebalancing:
                log.exception("offset guard check failed; retried in 0.5 s")

    async def check_partitions() -> None:
        nonlocal ready_since
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            ready_since = None
            return
        consumer = app.consumer
        assignment = {tp for tp in consumer.assignment() if tp.topic in guarded_topics}
        now = time.monotonic()
        if ready_since is None:
            ready_since = now
        for tp in guard.overdue(now):
            if tp in assignment:
                await rewind(tp)
            else:
                guard.forget({tp})
        for topic in guarded_topics:
            tps = [tp for tp in assignment if tp.topic == topic]
            for tp in tps:
                await ensure_started(tp)
            since = waiting_since.get(topic, ready_since)
            idle = 0.0 if since is None else now - max(since, ready_since)
            if app.rebalancing:
                return
            still_assigned = consumer.assignment()  # the awaits above may have crossed a rebalance
            highwaters = {tp: consumer.highwater(tp) for tp in tps if tp in still_assigned}
            for tp in guard.stalled(highwaters, idle):
                if guard.seek_due(tp, now):
                    await rewind(tp, "records in the log never reached the idle agent")

    @app.agent(topics["control"], name="control")
    async def control_agent(stream):
        """Commands go to every partition: the one that owns the issue applies it."""
        ignore_faust_gaps()
        stream = stream.noack()  # acked once forwarded (see ``admit``)
        async for event in stream.events():
            if not await admit(event):
                continue
            msg = event.message
            try:
                command = validate_command(orjson.loads(event.value))
            except (orjson.JSONDecodeError, CommandError) as exc:
                source = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
                invalid = Invalid("command", str(exc))
                sent = [await topics["dlq"].send(value=dead_letter(event.value, invalid, source))]
            else:
                value = orjson.dumps({COMMAND_MARKER: command})
                sent = [
                    await topics["by_fingerprint"].send(
                        key=command["fingerprint"].encode(), value=value, partition=p
                    )
                    for p in range(s.partitions)
                ]
            await asyncio.gather(*sent)
            guard.processed(msg.tp, msg.offset)
            await stream.ack(event)
            waiting(msg.topic)

    def handle_command(command: dict, pos: int, st: State, processed: list[bytes]) -> None:
        issues_, aliases_ = st.issues, st.aliases
        fp = resolve_alias(aliases_, command["fingerprint"]) or command["fingerprint"]
        state = issues_.get(fp)
        if state is None or not should_apply(state, pos):
            return  # another partition owns it, or a replay of an applied command
        if command["command"] == "merge":
            into = resolve_alias(aliases_, command["into"]) or command["into"]
            target = issues_.get(into)
            if target is None or into == fp:
                return
            merged = merge_states(target, state, pos)
            gone = {**state["issue"], "merged_into": into, "version": state["issue"]["version"] + 1}
            issues_[into] = merged
            aliases_[fp] = into
            del issues_[fp]
            processed.append(issue_state_record(merged["issue"]))
            processed.append(issue_state_record(gone))
        else:
            new = apply_command(state, command, pos)
            issues_[fp] = new
            processed.append(issue_state_record(new["issue"]))
        metrics.commands_applied.labels(command["command"]).inc()

    def canonical(meta: dict, st: State) -> tuple[str, Any]:
        """The state key of an event: an alias (merge, grouping transition) wins; an unknown
        primary fingerprint joins an issue known under one of its secondary fingerprints."""
        issues_, aliases_ = st.issues, st.aliases
        fp = meta["fingerprint"]
        target = resolve_alias(aliases_, fp)
        if target is not None:
            return target, issues_.get(target)
        state = issues_.get(fp)
        if state is None:
            for secondary in meta.get("secondary_fingerprints") or ():
                sec = resolve_alias(aliases_, secondary) or secondary
                known = issues_.get(sec)
                if known is not None:
                    aliases_[fp] = sec
                    return sec, known
        return fp, state

    def process_record(
        record: dict, pos: int, partition: int, st: State, alerts: list, processed: list
    ) -> None:
        """One event: its outcome's record is appended to ``processed`` as (fp, record)."""
        started = time.perf_counter()
        meta = record["_meta"]
        fp, state = canonical(meta, st)
        dkey = dedup_key(record, partition)
        mkey = minute_key(record, fp, partition)
        skey = service_key(record["service"], partition)
        q_dedup, q_minutes = eviction.for_partition(partition)
        wm = eviction.watermark[partition] = max(
            eviction.watermark[partition],
            min(minute_of(meta["ts"]), minute_of(time.time()) + 5),
        )
        seen = q_dedup.get(dkey)
        out = process_event(
            record,
            fp,
            pos,
            seen=seen,
            issue_state=state,
            service_state=st.services.get(skey),
            minute_value=st.minutes.get(mkey),
            rules=rules,
            now=time.time(),
            watermark_minute=wm,
        )
        alerts.extend(out.alerts)
        if out.issue is not None:
            if state is None:
                metrics.issues_tracked.inc()
            st.issues[fp] = out.issue
        if out.service is not None:
            st.services[skey] = out.service
        if out.minute is not None:
            if out.minute[0] == 1:
                q_minutes.push(int(mkey.split("|")[3]) // 60, mkey)
            st.minutes[mkey] = out.minute
        if out.dedup is not None:
            q_dedup.add(dkey, out.dedup)  # written with the envelope's other entries
        if out.duplicate:
            metrics.events_deduplicated.inc()
        elif not out.admission.body_stored:
            if out.admission.shed_reason == "sampled":
                metrics.events_sampled.labels(record.get("level", "error")).inc()
            else:
                metrics.events_shed.labels(out.admission.shed_reason).inc()
        for key in q_dedup.expired(wm):
            if key in st.dedup:
                del st.dedup[key]
        for key in q_minutes.expired(wm):
            if key in st.minutes:
                del st.minutes[key]
        processed.append((fp, out.record))
        metrics.events_processed.inc()
        metrics.end_to_end_lag.observe(max(0.0, time.time() - meta["ts"]))
        metrics.stage_latency.labels("issues").observe(time.perf_counter() - started)

    def persisted(store: Any, tp: TP) -> Any:
        def on_done(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is None:
                store.set_persisted_offset(tp, fut.result().offset)

        return on_done

    async def write_state(st: State, partition: int) -> list[asyncio.Future]:
        """Each changed key once: into the table's store, and to its changelog partition
        through the producer directly. (faust's own path, ``Table.__setitem__``, queues one
        message at a time through a buffer that a background task drains one per loop turn
        and that blocks stream delivery while it holds over 100: a third of the agent's time
        at 2,000 events/s.) The futures resolve when the broker has each message; the store
        records the persisted changelog offset as faust's own path does (RocksDB stores)."""
        sent = []
        for overlay in st:
            messages = overlay.take()
            if not messages:
                continue
            table = overlay.table
            topic = table.changelog_topic_name
            on_done = persisted(table.data, TP(topic, partition))
            for key, value in messages:
                fut = await app.producer.send(topic, key, value, partition, None, None)
                fut.add_done_callback(on_done)
                sent.append(fut)
        return sent

    @app.agent(topics["by_fingerprint"], name="issues")
    async def issues_agent(stream):
        """One envelope at a time: every record through the pure stages against a
        write-back view of the tables, then alerts (delivered first), then the state (one
        changelog write per changed key), then the processed envelope. Acked by hand, in
        order, once its processed envelope is delivered (``AckWhenDelivered``): faust's
        automatic ack would also ack an envelope whose processing a stop cancelled (its
        ``finally``), and waiting for each delivery before the next envelope would cap the
        agent at one broker round trip per envelope."""
        ignore_faust_gaps()
        stream = stream.noack()
        acks = AckWhenDelivered(stream)
        async for event in stream.events():
            acks.check()
            if not await admit(event):
                continue
            msg = event.message
            st = State(*(Overlay(t) for t in (issues, services, minutes, dedup, aliases)))
            alerts: list[dict] = []
            processed: list = []  # serialized records, or (fingerprint, record) of events
            for index, line in enumerate(unpack(event.value)):
                record = orjson.loads(line)
                pos = position(msg.offset, index)
                if COMMAND_MARKER in record:
                    handle_command(record[COMMAND_MARKER], pos, st, processed)
                else:
                    process_record(record, pos, msg.partition, st, alerts, processed)
            # the envelope's first-seen event ids: one dedup table key for all of them
            batch_key = f"{msg.partition}|b|{msg.offset}"
            batch = eviction.for_partition(msg.partition)[0].take_batch(batch_key)
            if batch is not None:
                st.dedup[batch_key] = batch
            if alerts:  # delivered before the state that remembers them
                sent = [
                    await topics["alerts"].send(
                        key=(a["fingerprint"] or a["service"]).encode(), value=orjson.dumps(a)
                    )
                    for a in alerts
                ]
                await asyncio.gather(*sent)
                for a in alerts:
                    metrics.alerts_emitted.labels(a["kind"]).inc()
                # the state that remembers them right after: a crash between the two repeats
                # an alert (same alert_id, which the alerts table keeps once); never loses one
                await asyncio.gather(*await write_state(st, msg.partition))
            sent = await write_state(st, msg.partition)
            sent += [
                await topics["processed"].send(key=msg.key, value=value, partition=msg.partition)
                for value in packed(serialize_processed(processed))
            ]
            guard.processed(msg.tp, msg.offset)
            acks.add(event, sent)
            waiting(msg.topic)

    return pipeline
