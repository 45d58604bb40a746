"""The issues agent: by-fingerprint envelopes → issue state, alerts, processed envelopes.

One envelope at a time: every record through the pure stages (``stages/aggregate.py``,
``stages/commands.py``) against a write-back view of the tables, then the alerts (delivered
first), then the state (one changelog write per changed key), then the processed envelope.
Acked by hand, in order, once its processed envelope is delivered (``AckWhenDelivered``),
without waiting for that delivery before starting the next envelope.

Cross-partition merges: an event, a command or a merged issue's state whose issue lives in
another partition (each issue state records its partition, ``p``) is sent on to that
partition's by-fingerprint topic with the envelope's other output, and acked with it
(docs/issues.md, "Merges across partitions").

State, all co-partitioned with the by-fingerprint topic and changelog-backed:
    dedup (event_id window) · aliases (secondary/merged → canonical fingerprint)
    issues (issue state) · services (per-partition share) · minutes (exact counts)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

import orjson

from pipeline.faust_internals import AckWhenDelivered, Overlay, PartitionGuard, write_state
from pipeline.metrics import Metrics, ObservationBatch
from pipeline.stages.aggregate import dedup_key, minute_key, process_event, service_key
from pipeline.stages.commands import (
    ALIAS_HOPS,
    canonical,
    command_outcome,
    merge_in_outcome,
    owned,
)
from pipeline.stages.dedup import DedupWindow, EvictionQueue
from pipeline.stages.envelope import packed, partition_for, position, unpack
from pipeline.stages.records import (
    COMMAND_MARKER,
    MERGE_IN_MARKER,
    command_line,
    forwarded_line,
    issue_state_line,
    merge_in_line,
    processed_line,
    read_by_fingerprint_line,
)
from pipeline.stages.rules import StreamRules
from pipeline.stages.windows import minute_of

MINUTE_COUNTS_RETENTION = 24 * 60  # minutes an exact per-minute counter is kept
TABLES = ("issues", "services", "minutes", "dedup", "aliases")


class State(NamedTuple):
    issues: Overlay
    services: Overlay
    minutes: Overlay
    dedup: Overlay
    aliases: Overlay


def serialize_processed(items: list) -> list[bytes]:
    """Processed lines of an envelope: serialized records, or (fingerprint, record, the
    event's REST bytes or None) of events. Only the last record of each issue in an envelope
    keeps the issue snapshot (``_meta.issue``, the state after the envelope); the others carry
    null: the sink stores the latest snapshot per issue anyway, and the snapshot is a third of
    a record's bytes."""
    last = {item[0]: i for i, item in enumerate(items) if isinstance(item, tuple)}
    out = []
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            fp, record, rest = item
            if last[fp] != i:
                record["_meta"]["issue"] = None
            item = processed_line(record, rest)
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


class IssuesAgent:
    def __init__(
        self,
        app: Any,
        tables: dict[str, Any],
        topics: dict[str, Any],
        rules: StreamRules,
        metrics: Metrics,
        guard: PartitionGuard,
        partitions: int = 1,
    ) -> None:
        self.app, self.tables, self.topics = app, tables, topics
        self.partitions = partitions
        self.rules, self.metrics, self.guard = rules, metrics, guard
        self.eviction = PartitionEviction(tables["dedup"], tables["minutes"], rules)
        # per-event observations, added to the metrics once per envelope (exact values)
        self.lag_batch = ObservationBatch(metrics.end_to_end_lag)
        self.latency_batch = ObservationBatch(metrics.stage_latency.labels("issues"))
        self.processed_count = 0
        self.counts: dict[tuple[str, str | None], int] = {}  # (metric, label) → events

    def issue_snapshots(self) -> list[dict]:
        return [
            v["issue"]
            for v in self.tables["issues"].values()
            if v and not v["issue"].get("merged_into")  # merged away: its target counts
        ]

    async def run(self, stream: Any) -> None:
        stream = stream.noack()
        acks = AckWhenDelivered(stream)
        async for event in stream.events():
            acks.check()
            if not await self.guard.admit(event):
                continue
            msg = event.message
            sent = await self.process_envelope(msg)
            self.guard.processed(msg)
            acks.add(event, sent)

    async def process_envelope(self, msg: Any) -> list[asyncio.Future]:
        """One by-fingerprint envelope; returns the futures of its state and processed
        messages (the alerts are delivered before it returns)."""
        st = State(*(Overlay(self.tables[name]) for name in TABLES))
        alerts: list[dict] = []
        processed: list = []  # serialized records, or (fingerprint, record) of events
        # (target fingerprint, by-fingerprint line, its partition or None: the key's)
        forwards: list[tuple[str, bytes, int | None]] = []
        for index, line in enumerate(unpack(msg.value)):
            record, rest = read_by_fingerprint_line(line)
            pos = position(msg.offset, index)
            if COMMAND_MARKER in record:
                command = record[COMMAND_MARKER]
                out = command_outcome(command, pos, st.issues, st.aliases, msg.partition)
                self.apply_outcome(command["command"], out, msg.partition, st, processed, forwards)
            elif MERGE_IN_MARKER in record:
                merge = record[MERGE_IN_MARKER]
                out = merge_in_outcome(merge, pos, st.issues, st.aliases, msg.partition)
                self.apply_outcome("merge_in", out, msg.partition, st, processed, forwards)
            else:
                self.process_record(
                    record, rest, pos, msg.partition, st, alerts, processed, forwards
                )
        # the envelope's first-seen event ids: one dedup table key for all of them
        batch_key = f"{msg.partition}|b|{msg.offset}"
        batch = self.eviction.for_partition(msg.partition)[0].take_batch(batch_key)
        if batch is not None:
            st.dedup[batch_key] = batch
        if alerts:  # delivered before the state that remembers them
            alert_topic = self.topics["alerts"]
            sent = [
                await alert_topic.send(
                    key=(a["fingerprint"] or a["service"]).encode(), value=orjson.dumps(a)
                )
                for a in alerts
            ]
            await asyncio.gather(*sent)
            for a in alerts:
                self.metrics.alerts_emitted.labels(a["kind"]).inc()
            # the state that remembers them right after: a crash between the two repeats
            # an alert (same alert_id, which the alerts table keeps once); never loses one
            await asyncio.gather(*await write_state(self.app, st, msg.partition))
        sent = await write_state(self.app, st, msg.partition)
        by_fp = self.topics["by_fingerprint"]
        for target, line, where in forwards:  # acked with this envelope, like its output
            key = target.encode()
            partition = partition_for(key, self.partitions) if where is None else where
            sent.append(await by_fp.send(key=key, value=line, partition=partition))
        if forwards:
            self.metrics.merge_forwards.inc(len(forwards))
        self.flush_metrics()
        processed_topic = self.topics["processed"]
        sent += [
            await processed_topic.send(key=msg.key, value=value, partition=msg.partition)
            for value in packed(serialize_processed(processed))
        ]
        return sent

    def flush_metrics(self) -> None:
        if self.processed_count:
            self.metrics.events_processed.inc(self.processed_count)
            self.processed_count = 0
        self.lag_batch.flush()
        self.latency_batch.flush()
        for (name, label), n in self.counts.items():
            metric = getattr(self.metrics, name)
            (metric if label is None else metric.labels(label)).inc(n)
        self.counts.clear()

    def apply_outcome(
        self, action: str, out: Any, partition: int, st: State, processed: list, forwards: list
    ) -> None:
        if out is None:
            return  # another partition owns it, or a replay of an applied command
        for key, state in out.issues.items():
            st.issues[key] = {**state, "p": partition}  # written to this partition's changelog
        for key, target in out.aliases.items():
            st.aliases[key] = target
        for key in out.deleted:  # unmerge: the alias goes
            if key in st.aliases:
                del st.aliases[key]
        processed.extend(issue_state_line(snapshot, out.audit) for snapshot in out.snapshots)
        for target, record, where in out.forward:
            line = merge_in_line(record) if "state" in record else command_line(record)
            forwards.append((target, line, where))
        if out.snapshots:
            self.metrics.commands_applied.labels(action).inc()

    def process_record(
        self,
        record: dict,
        rest: bytes | None,
        pos: int,
        partition: int,
        st: State,
        alerts: list,
        processed: list,
        forwards: list,
    ) -> None:
        """One event (its facts, and the REST of its body unparsed): the outcome's record is
        appended to ``processed`` as (fp, record, REST when the body is stored)."""
        started = time.perf_counter()
        metrics = self.metrics
        meta = record["_meta"]
        fp, state, alias = canonical(
            meta["fingerprint"], meta.get("secondary_fingerprints"), st.issues, st.aliases
        )
        if alias is not None:
            st.aliases[meta["fingerprint"]] = alias
        if not owned(state, partition) and meta.get("forwarded", 0) < ALIAS_HOPS:
            if fp != meta["fingerprint"] or state is not None:
                # merged into an issue of another partition: counted there
                where = None if state is None else state.get("p")
                forwards.append((fp, forwarded_line(record, rest, fp), where))
                return
        dkey = dedup_key(record, partition)
        mkey = minute_key(record, fp, partition)
        skey = service_key(record["service"], partition)
        eviction = self.eviction
        q_dedup, q_minutes = eviction.for_partition(partition)
        wm = eviction.watermark[partition] = max(
            eviction.watermark[partition],
            min(minute_of(meta["ts"]), minute_of(time.time()) + 5),
        )
        out = process_event(
            record,
            fp,
            pos,
            seen=q_dedup.get(dkey),
            issue_state=state,
            service_state=st.services.get(skey),
            minute_value=st.minutes.get(mkey),
            rules=self.rules,
            now=time.time(),
            watermark_minute=wm,
        )
        alerts.extend(out.alerts)
        if out.issue is not None:
            if state is None:
                metrics.issues_tracked.inc()
            out.issue["p"] = partition  # the partition whose changelog holds it
            st.issues[fp] = out.issue
        if out.service is not None:
            st.services[skey] = out.service
        if out.minute is not None:
            if out.minute[0] == 1:
                q_minutes.push(int(mkey.split("|")[3]) // 60, mkey)
            st.minutes[mkey] = out.minute
        if out.dedup is not None:
            q_dedup.add(dkey, out.dedup)  # written with the envelope's other entries
        counts = self.counts
        if out.late:
            counts[("events_late", None)] = counts.get(("events_late", None), 0) + 1
        if out.duplicate:
            key = ("events_deduplicated", None)
            counts[key] = counts.get(key, 0) + 1
        elif not out.admission.body_stored:
            if out.admission.shed_reason == "sampled":
                key = ("events_sampled", record.get("level", "error"))
            else:
                key = ("events_shed", out.admission.shed_reason)
            counts[key] = counts.get(key, 0) + 1
        for key in q_dedup.expired(wm):
            if key in st.dedup:
                del st.dedup[key]
        for key in q_minutes.expired(wm):
            if key in st.minutes:
                del st.minutes[key]
        processed.append((fp, out.record, rest if out.admission.body_stored else None))
        self.processed_count += 1
        self.lag_batch.observe(max(0.0, time.time() - meta["ts"]))
        self.latency_batch.observe(time.perf_counter() - started)
