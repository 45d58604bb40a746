"""Benchmark: the cost of faust's exactly-once mode against a dedup table keyed by event_id.

On a local broker (``ERRORSTREAM_BENCH_KAFKA_BOOTSTRAP`` or a fresh one), N messages are
pre-produced onto one input topic (2 partitions, keyed by an issue key, 200 keys). A small
faust app then processes all of them, each in a fresh worker subprocess with its own consumer
group, in these modes (``BENCH_EOS_ROUNDS`` rounds, 2 by default, the order rotated per round,
after one discarded warm-up pass on the fresh broker; the median is reported):

1. ``alo``: ``processing_guarantee="at_least_once"``, no dedup (the floor);
2. ``alo_dedup_event``: at_least_once plus a dedup table keyed by event_id (one extra table
   key, i.e. one extra changelog message, per message);
3. ``alo_dedup_batch``: at_least_once plus one dedup table key per 100 messages of a
   partition (the event ids of the batch in one value, checked in memory);
4. ``eos``: ``processing_guarantee="exactly_once"`` (Kafka transactions), no dedup table.

Every message does one table update (``counts[issue] += 1``) and sends one output message.
The app uses the pipeline's producer and commit settings (acks=all, linger 5 ms, commit
interval 1 s, memory table store). Figures per mode:

* processing rate: messages/s inside the agent, first to last message;
* end to end: messages/s from the first message to the moment all N output messages are
  visible to a ``read_committed`` consumer (EOS output shows only once its transaction commits);
* changelog records per input message (counted by reading the changelog topics with
  ``read_committed``) and changelog offsets per input (transaction markers take offsets too).

All next to a bare aiokafka consume loop over the same topic in the same run.

Then a duplicate check: 1,000 events plus 100 of them produced again (same event_id and key,
new offsets, as a producer retry does). EOS counts the 100 again; the dedup table does not.

Prints human-readable lines, then one JSON line per figure. Never fails on a timing.

    python bench/bench_exactly_once.py [--messages 20000] [--rounds 2]

The options default to BENCH_EOS_MESSAGES and BENCH_EOS_ROUNDS (then 20000 and 2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_stream_agents import bare_consume, produce  # noqa: E402  (same folder)

from pipeline.kafka_local import default_cache_dir, start_on_free_ports  # noqa: E402

N = int(os.environ.get("BENCH_EOS_MESSAGES", "20000"))
PARTITIONS = 2
ISSUES = 200
DEDUP_BATCH = 100
MODES = ("alo", "alo_dedup_event", "alo_dedup_batch", "eos")
DUP_DISTINCT, DUP_REPEATED = 1000, 100
ROUNDS = int(os.environ.get("BENCH_EOS_ROUNDS", "2"))
MAX_SECONDS = float(os.environ.get("BENCH_MAX_SECONDS", "180"))


# --- the worker (runs in a subprocess: python bench_exactly_once.py --worker ...) ----------


def run_worker(
    mode: str,
    bootstrap: str,
    app_id: str,
    source_name: str,
    out_name: str,
    expected: int,
    result_path: str,
    datadir: str,
) -> None:
    import faust

    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=5,
        producer_compression_type=None,
        broker_commit_interval=1.0,
        processing_guarantee="exactly_once" if mode == "eos" else "at_least_once",
    )
    source = app.topic(
        source_name, key_serializer="raw", value_serializer="raw", partitions=PARTITIONS
    )
    out = app.topic(out_name, key_serializer="raw", value_serializer="raw", partitions=PARTITIONS)
    schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    counts = app.Table("counts", default=int, partitions=PARTITIONS, schema=schema)
    dedup = (
        app.Table("dedup", default=None, partitions=PARTITIONS, schema=schema)
        if mode.startswith("alo_dedup")
        else None
    )
    seen: dict[int, set[str]] = {}  # alo_dedup_batch: the window in memory, per partition
    pending: dict[int, list[str]] = {}  # alo_dedup_batch: event ids not yet persisted
    progress = {"n": 0, "first": 0.0}

    @app.agent(source)
    async def process(stream):  # noqa: ANN001, ANN202
        async for event in stream.events():
            if progress["n"] == 0:
                progress["first"] = time.time()
            message = event.message
            value = orjson.loads(event.value)
            event_id, issue = value["e"], value["i"]
            count = True
            if mode == "alo_dedup_event":
                if dedup.get(event_id) is not None:
                    count = False
                else:
                    dedup[event_id] = message.offset
            elif mode == "alo_dedup_batch":
                window = seen.setdefault(message.partition, set())
                if event_id in window:
                    count = False
                else:
                    window.add(event_id)
                    batch = pending.setdefault(message.partition, [])
                    batch.append(event_id)
                    if len(batch) >= DEDUP_BATCH:
                        dedup[f"{message.partition}|{message.offset}"] = batch
                        pending[message.partition] = []
            if count:
                counts[issue] += 1
            await out.send(key=event.key, value=event.value)
            progress["n"] += 1
            if progress["n"] == expected:
                result = {
                    "first": progress["first"],
                    "last": time.time(),
                    "processed": progress["n"],
                    "counted": sum(counts.values()),
                }
                Path(result_path + ".tmp").write_bytes(orjson.dumps(result))
                os.replace(result_path + ".tmp", result_path)

    worker = faust.Worker(app, loglevel="warning")
    worker.execute_from_commandline()


# --- the driver -----------------------------------------------------------------------------


def raw_event(i: int) -> tuple[bytes, bytes]:
    issue = f"issue{i % ISSUES}"
    return issue.encode(), orjson.dumps({"e": f"{i:032x}", "i": issue})


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def count_records(bootstrap: str, topics: list[str]) -> tuple[int, int, int]:
    """Over all partitions of ``topics`` (read_committed): records, sum of end offsets, and
    the sum of the newest value per key of the first topic (the state a restart recovers)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records, newest = 0, {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for tp, messages in batch.items():
                records += len(messages)
                if tp.topic == topics[0]:
                    newest.update((m.key, int(m.value)) for m in messages if m.value)
        return records, sum(ends.values()), sum(newest.values())
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
        return sum(o or 0 for o in offsets)
    finally:
        await consumer.stop()


async def wait_visible(bootstrap: str, topic: str, expected: int, proc: subprocess.Popen) -> float:
    """time.time() at which ``expected`` messages of ``topic`` are visible (read_committed)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    n = 0
    deadline = time.monotonic() + MAX_SECONDS
    try:
        while n < expected:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{n} of {expected} output messages visible on {topic}")
            batch = await consumer.getmany(timeout_ms=200, max_records=10000)
            n += sum(len(m) for m in batch.values())
        return time.time()
    finally:
        await consumer.stop()


def run_mode(mode: str, bootstrap: str, tmp: Path, source: str, expected: int, tag: str) -> dict:
    app_id = f"bench-eos-{tag}-{mode}"
    out = f"{app_id}-out"
    asyncio.run(create_topics(bootstrap, [out]))
    result_path = tmp / f"{app_id}.json"
    log_path = tmp / f"{app_id}.log"
    argv = [
        sys.executable,
        __file__,
        "--worker",
        mode,
        bootstrap,
        app_id,
        source,
        out,
        str(expected),
        str(result_path),
        str(tmp / f"{app_id}-data"),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        visible = asyncio.run(wait_visible(bootstrap, out, expected, proc))
        deadline = time.monotonic() + 30
        while not result_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        result = orjson.loads(result_path.read_bytes())
    except BaseException:
        print(f"--- {mode} worker log (tail) ---\n" + log_path.read_text()[-4000:], file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # faust flushes and commits on a clean stop
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    changelogs = [f"{app_id}-counts-changelog"]
    if mode.startswith("alo_dedup"):
        changelogs.append(f"{app_id}-dedup-changelog")
    records, offsets, recovered = asyncio.run(count_records(bootstrap, changelogs))
    return {
        "recovered_count": recovered,
        "committed": asyncio.run(committed_offsets(bootstrap, app_id, source)),
        "rate": result["processed"] / (result["last"] - result["first"]),
        "e2e": expected / (visible - result["first"]),
        "changelog_records": records / expected,
        "changelog_offsets": offsets / expected,
        "counted": result["counted"],
        "log_errors": log_path.read_text(errors="replace").count("[ERROR]"),
    }


def merge(runs: list[dict]) -> dict:
    """Median rates over the rounds; the worst state check; every round's rates kept."""
    merged = dict(runs[-1])
    for key in ("rate", "e2e"):
        merged[key] = statistics.median(r[key] for r in runs)
        merged[f"{key}_rounds"] = [r[key] for r in runs]
    for key in ("recovered_count", "committed"):
        merged[key] = min(r[key] for r in runs)
    merged["log_errors"] = sum(r["log_errors"] for r in runs)
    return merged


def json_line(figure: str, value: float, unit: str, baseline: float | None) -> str:
    ratio = (value / baseline) if baseline else None
    return orjson.dumps(
        {
            "bench": "exactly_once",
            "figure": figure,
            "value": round(value, 4),
            "unit": unit,
            "baseline": round(baseline, 4) if baseline else None,
            "ratio": round(ratio, 4) if ratio else None,
        }
    ).decode()


def main() -> None:
    global N, ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=N, help="BENCH_EOS_MESSAGES")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="BENCH_EOS_ROUNDS")
    args = parser.parse_args()
    N, ROUNDS = args.messages, args.rounds
    tmp = Path(tempfile.mkdtemp(prefix="bench-eos-"))
    tag = str(int(time.time()))
    broker = None
    bootstrap = os.environ.get("ERRORSTREAM_BENCH_KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = start_on_free_ports(tmp / "kafka", cache_dir=default_cache_dir())
        bootstrap = broker.bootstrap
    try:
        source, dup_source = f"bench-eos-{tag}-in", f"bench-eos-{tag}-dup-in"
        asyncio.run(create_topics(bootstrap, [source, dup_source]))
        asyncio.run(produce(bootstrap, source, [raw_event(i) for i in range(N)]))
        bare = asyncio.run(bare_consume(bootstrap, source, N))
        # the first worker on a fresh broker runs against a cold JVM: one discarded pass
        run_mode("alo", bootstrap, tmp, source, N, f"{tag}-warmup")
        rounds: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for r in range(ROUNDS):  # the order rotates between rounds (shared, noisy machine)
            for mode in MODES[r % len(MODES) :] + MODES[: r % len(MODES)]:
                rounds[mode].append(run_mode(mode, bootstrap, tmp, source, N, f"{tag}-r{r}"))
        results = {mode: merge(runs) for mode, runs in rounds.items()}
        # upstream duplicates: the same event_id and key produced again at a new offset
        dups = [raw_event(i) for i in range(DUP_DISTINCT)]
        dups += [raw_event(i) for i in range(DUP_REPEATED)]
        asyncio.run(produce(bootstrap, dup_source, dups))
        dup_counted = {
            mode: run_mode(mode, bootstrap, tmp, dup_source, len(dups), f"{tag}-dup")["counted"]
            for mode in ("eos", "alo_dedup_event", "alo_dedup_batch")
        }
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    floor = results["alo"]
    print(f"rounds: {ROUNDS} (median; order rotated), after one discarded warm-up pass")
    print(f"messages: {N}, {PARTITIONS} partitions, {ISSUES} keys; 1 table update + 1 output each")
    print(f"bare aiokafka consume loop: {bare:,.0f} messages/s")
    for mode, r in results.items():
        print(
            f"{mode:16s} processing {r['rate']:7,.0f} msg/s ({r['rate'] / floor['rate']:.2f}x "
            f"floor, {r['rate'] / bare:.1%} of bare); end to end {r['e2e']:7,.0f} msg/s "
            f"({r['e2e'] / floor['e2e']:.2f}x floor); changelog records/input "
            f"{r['changelog_records']:.3f}, offsets/input {r['changelog_offsets']:.3f}; "
            "rounds " + "/".join(f"{x:,.0f}" for x in r["rate_rounds"]) + " msg/s"
        )
        print(
            f"{'':16s} after a clean stop: counts in the changelog {r['recovered_count']} of "
            f"{N}, input offsets committed {r['committed']} of {N}, "
            f"[ERROR] lines in the worker log {r['log_errors']}"
        )
    print(
        f"duplicates: {DUP_DISTINCT} events + {DUP_REPEATED} produced again (same event_id, "
        "new offsets): counted " + ", ".join(f"{m} {c}" for m, c in dup_counted.items())
    )
    print(json_line("bare_consume", bare, "messages/s", None))
    for mode, r in results.items():
        print(json_line(f"processing_rate_{mode}", r["rate"], "messages/s", floor["rate"]))
        print(json_line(f"end_to_end_rate_{mode}", r["e2e"], "messages/s", floor["e2e"]))
        print(json_line(f"processing_rate_{mode}_vs_bare", r["rate"], "messages/s", bare))
        print(
            json_line(
                f"changelog_records_per_input_{mode}",
                r["changelog_records"],
                "messages",
                floor["changelog_records"],
            )
        )
        print(
            json_line(
                f"changelog_offsets_per_input_{mode}",
                r["changelog_offsets"],
                "offsets",
                floor["changelog_offsets"],
            )
        )
        print(json_line(f"changelog_counts_after_stop_{mode}", r["recovered_count"], "events", N))
    for mode, counted in dup_counted.items():
        print(json_line(f"duplicates_counted_{mode}", counted, "events", DUP_DISTINCT))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        run_worker(sys.argv[2], *sys.argv[3:7], int(sys.argv[7]), *sys.argv[8:10])
    else:
        main()
