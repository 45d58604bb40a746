"""Sink throughput and freshness into the embedded engine, from a real Kafka topic.

1. Insert path: the same event rows into chDB as JSONEachRow text, as one JSONColumns
   document, and as Arrow columns read by the ``Python()`` table function (the path the chDB
   backend uses). RowBinary is not measured: encoding it in Python is slower than any of these.
   Then where a record's time goes without Kafka: row building (parse + rows), Arrow
   encoding and the engine's insert, per record, on batches of --batch records.
2. Throughput: N processed-topic records (per the stream-agents contract, ~1 KB, a quarter
   with shed bodies) produced first, then the sink started from offset 0; rows/s until every
   offset is committed. Baseline: the same rows built in advance and inserted with bare
   backend inserts (no Kafka, no parsing), in the same run.
3. Freshness: while a background producer keeps the sink busy, probe records with their own
   fingerprint are produced and the timeline query polled until each is counted; p95 of
   produce → visible. Baseline: a bare chDB insert followed by the same query.

Needs a broker: ERRORSTREAM_KAFKA_BOOTSTRAP=host:port, else a local one is started (JDK).

    python bench/bench_sink.py [--rows 200000] [--probes 40]

Human-readable numbers first; the last lines are JSON, one per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from pipeline import queries  # noqa: E402
from pipeline.metrics import Metrics  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sinks.batching import Message  # noqa: E402
from pipeline.sinks.clickhouse import ClickHouseSink, insert_tables  # noqa: E402
from pipeline.sinks.rows import COLUMNS, EVENT_COLUMNS, EVENTS, build_rows  # noqa: E402
from pipeline.storage import ChdbBackend  # noqa: E402
from pipeline.storage.backend import _bytes_as_text  # noqa: E402
from pipeline.storage.encoding import ColumnEncoder  # noqa: E402
from pipeline.storage.migrate import migrate  # noqa: E402

FIGURES: list[dict] = []
COUNT_TABLES = (
    "event_minutes",
    "event_minutes_legacy",
    "event_hours",
    "event_days",
    "event_day_users",
    "issue_minutes",
)


def figure(name, value, unit, baseline=None):
    ratio = round(value / baseline, 3) if baseline else None
    FIGURES.append(
        {
            "bench": "sink",
            "figure": name,
            "value": round(value, 2),
            "unit": unit,
            "baseline": None if baseline is None else round(baseline, 2),
            "ratio": ratio,
        }
    )


def record(i: int, now: float, fp: str | None = None, count: int = 1) -> bytes:
    ts = now - 600 + (i % 600)
    fp = fp or f"fp{i % 500:04d}"
    stored = i % 4 != 0
    rec = {
        "event_id": uuid.UUID(int=(i + 1) * 0x9E3779B97F4A7C15 % 2**128).hex,
        "timestamp": ts,
        "service": f"svc{i % 8}",
        "level": "error",
        "release": "app@1.2.3",
        "environment": "prod",
        "_meta": {
            "ts": ts,
            "received_at": ts,
            "fingerprint": fp,
            "grouping_variant": "app",
            "title": "KeyError: 'order'",
            "culprit": "app.cart in total",
            "category": "bug",
            "secondary_fingerprints": [],
            "body_stored": stored,
            "shed_reason": None if stored else "sampled",
            "sample_rate": 1.0,
            "minute": int(ts // 60 * 60),
            "minute_count": count,
            "user_hash": i % 5000,
            "issue": {
                "fingerprint": fp,
                "service": f"svc{i % 8}",
                "title": "KeyError",
                "culprit": "c",
                "category": "bug",
                "status": "ongoing",
                "first_seen": ts,
                "last_seen": ts,
                "count": i,
                "users": 1,
                "levels": ["error"],
                "resolved_at": None,
                "resolved_in_release": None,
                "version": i,
            },
        },
    }
    if stored:
        rec["platform"] = "python"
        rec["tags"] = {"host": f"web-{i % 16}", "region": "eu"}
        rec["user"] = {"id": f"u{i % 5000}"}
        rec["exception"] = {
            "values": [
                {
                    "type": "KeyError",
                    "value": f"'order-{i}'",
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": f"app/m{k}.py",
                                "function": f"f{k}",
                                "lineno": 10 + k,
                                "in_app": True,
                            }
                            for k in range(6)
                        ]
                    },
                }
            ]
        }
    return orjson.dumps(rec)


def bench_insert_paths(backend, payloads):
    rows, _ = build_rows([Message("p", 0, i, v) for i, v in enumerate(payloads)], "alerts")
    events = rows.rows[EVENTS]
    db = backend.database
    print(
        f"insert paths, {len(events):,} events rows (~{sum(len(r[18]) for r in events) // len(events)} B payload):"
    )
    results = {}
    for name, insert in (
        ("jsoneachrow", backend.insert_json),
        ("jsoncolumns", lambda t, c, r: _json_columns(backend, t, c, r)),
        ("arrow", backend.insert),
    ):
        samples = []
        for _ in range(3):
            backend.command(f"TRUNCATE TABLE {db}.events")
            started = time.perf_counter()
            insert(EVENTS, EVENT_COLUMNS, events)
            samples.append(time.perf_counter() - started)
        results[name] = len(events) / statistics.median(samples)
        print(f"  {name:<12} {results[name]:>12,.0f} rows/s (encode + insert, median of 3)")
    backend.command(f"TRUNCATE TABLE {db}.events")
    for name in ("jsoneachrow", "jsoncolumns"):
        figure(f"insert_path_{name}", results[name], "rows/s", results["arrow"])
    figure("insert_path_arrow", results["arrow"], "rows/s", results["jsoneachrow"])


def bench_breakdown(backend, payloads, batch, envelope):
    """Microseconds per record for each step of the sink's work on one batch: build_rows,
    Arrow encoding, and the engine's insert (median over the batches)."""
    messages = [
        Message("p", 0, i, b"\n".join(payloads[i : i + envelope]))
        for i in range(0, len(payloads), envelope)
    ]
    per_batch = max(1, batch // envelope)
    steps: dict[str, list[float]] = {"build_rows": [], "arrow_encoding": [], "engine_insert": []}
    for lo in range(0, len(messages), per_batch):
        chunk = messages[lo : lo + per_batch]
        records = sum(m.value.count(b"\n") + 1 for m in chunk)
        started = time.perf_counter()
        rows, _ = build_rows(chunk, "alerts")
        built = time.perf_counter()
        encode = insert = 0.0
        for table, table_rows in rows.tables():
            columns = COLUMNS[table]
            types = backend.column_types(table)
            t0 = time.perf_counter()
            ColumnEncoder.for_types([types[c] for c in columns]).arrow(columns, table_rows)
            t1 = time.perf_counter()
            backend.insert(table, columns, table_rows)  # encodes again, then inserts
            encode += t1 - t0
            insert += time.perf_counter() - t1 - (t1 - t0)
        steps["build_rows"].append((built - started) / records * 1e6)
        steps["arrow_encoding"].append(encode / records * 1e6)
        steps["engine_insert"].append(insert / records * 1e6)
    print(f"per record, batches of {batch:,} (no Kafka):")
    for name, samples in steps.items():
        value = statistics.median(samples)
        print(f"  {name:<16} {value:6.2f} us")
        figure(f"{name}_per_record", value, "us")
    for table in ("events", "issues", *COUNT_TABLES):
        backend.command(f"TRUNCATE TABLE IF EXISTS {backend.database}.{table}")


def _json_columns(backend, table, columns, rows):
    body = orjson.dumps(
        dict(zip(columns, zip(*rows, strict=True), strict=True)), default=_bytes_as_text
    )
    sql = f"INSERT INTO {backend.database}.{table} ({', '.join(columns)}) FORMAT JSONColumns\n"
    with backend._lock:
        backend._session.query(sql + body.decode(), "CSV")
    return len(rows)


async def produce(bootstrap, topic, payloads, keyed=True):
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, v, key=str(i % 64).encode() if keyed else None)
            for i, v in enumerate(payloads)
        ]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def run(args, bootstrap, workdir):
    tag = uuid.uuid4().hex[:8]
    s = Settings(
        kafka_bootstrap=bootstrap,
        app_id=f"bench-{tag}",
        topic_processed=f"bench-{tag}-processed",
        topic_alerts=f"bench-{tag}-alerts",
        topic_dlq=f"bench-{tag}-dlq",
        sink_max_batch_size=args.batch,
        sink_max_batch_time=0.5,
        sink_max_inflight_inserts=args.inflight,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics(
        [NewTopic(t, 4, 1) for t in (s.topic_processed, s.topic_alerts, s.topic_dlq)]
    )
    await admin.close()
    backend = ChdbBackend(str(workdir / "clickhouse"), "bench")
    migrate(backend, 90)
    now = time.time()
    payloads = [record(i, now) for i in range(args.rows)]
    print(f"{args.rows:,} records, {sum(map(len, payloads)) / len(payloads):.0f} B each on average")
    bench_insert_paths(backend, payloads[: min(100_000, args.rows)])
    bench_breakdown(backend, payloads, args.batch, max(1, args.envelope))

    # baseline: prebuilt rows, bare inserts
    built, _ = build_rows([Message("p", 0, i, v) for i, v in enumerate(payloads)], "alerts")
    tables = built.tables()
    started = time.perf_counter()
    for lo in range(0, args.rows, args.batch):
        chunk = [(t, rows[lo : lo + args.batch]) for t, rows in tables if t != "issues"]
        insert_tables(backend, chunk)
    bare = args.rows / (time.perf_counter() - started)
    for table in ("events", "event_minutes", "issues"):
        backend.command(f"TRUNCATE TABLE bench.{table}")

    # as the issues agent writes them: envelopes (JSON Lines) of --envelope records
    size = max(1, args.envelope)
    await produce(
        bootstrap,
        s.topic_processed,
        [b"\n".join(payloads[i : i + size]) for i in range(0, len(payloads), size)],
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    sink = ClickHouseSink(s, backend, Metrics(), lambda v: producer.send_and_wait(s.topic_dlq, v))
    task = asyncio.ensure_future(sink.run())
    while sink.consumer is None or not sink.consumer.assignment():  # group join not timed
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    while sink.committed_messages < args.rows:
        await asyncio.sleep(0.05)
        if task.done():
            task.result()
    elapsed = time.perf_counter() - started
    rate = args.rows / elapsed
    print(
        f"sink throughput: {args.rows:,} records ({size} per message) in {elapsed:.2f}s = "
        f"{rate:,.0f} rows/s "
        f"(bare chDB inserts of the prebuilt rows: {bare:,.0f} rows/s); target >= 100,000"
    )
    figure("sink_throughput", rate, "rows/s", bare)

    # freshness under background load
    stop = asyncio.Event()

    async def background():
        i = args.rows
        while not stop.is_set():
            await produce(
                bootstrap, s.topic_processed, [record(j, time.time()) for j in range(i, i + 2000)]
            )
            i += 2000
            await asyncio.sleep(0.2)

    load = asyncio.ensure_future(background())
    latencies = []
    for p in range(args.probes):
        fp = f"probe-{tag}-{p}"
        t0 = time.time()
        await produce(bootstrap, s.topic_processed, [record(10**9 + p, t0, fp=fp)])
        sent = time.perf_counter()
        while True:
            tl = await asyncio.to_thread(
                queries.timeline, backend, t0 - 700, t0 + 60, None, fingerprint=fp
            )
            if tl["total"]:
                break
            await asyncio.sleep(0.02)
        latencies.append(
            time.perf_counter() - sent + (time.time() - t0 - (time.perf_counter() - sent)) * 0
        )
    stop.set()
    await load
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    # baseline: one bare insert then the same query
    base = []
    for p in range(10):
        fp = f"bare-{tag}-{p}"
        rows, _ = build_rows([Message("p", 0, 0, record(2 * 10**9 + p, time.time(), fp=fp))], "x")
        t = time.perf_counter()
        insert_tables(backend, rows.tables())
        queries.timeline(backend, time.time() - 700, time.time() + 60, None, fingerprint=fp)
        base.append(time.perf_counter() - t)
    bare_fresh = statistics.quantiles(base, n=20)[-1]
    print(
        f"freshness produce -> visible in the timeline: p50 {statistics.median(latencies):.2f}s, "
        f"p95 {p95:.2f}s over {len(latencies)} probes (bare insert + query p95 {bare_fresh * 1000:.0f} ms); target <= 5 s"
    )
    figure("freshness_p95", p95, "s", bare_fresh)
    sink.stop()
    await task
    await producer.stop()
    backend.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--probes", type=int, default=40)
    ap.add_argument(
        "--envelope",
        type=int,
        default=50,
        help="records per processed-topic message (1 = one each)",
    )
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--inflight", type=int, default=1)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="es-bench-sink-"))
    broker = None
    bootstrap = os.environ.get("ERRORSTREAM_KAFKA_BOOTSTRAP")
    try:
        if not bootstrap:
            from pipeline.kafka_local import DEFAULT_VERSION, default_cache_dir, start_on_free_ports

            broker = start_on_free_ports(
                workdir / "kafka",
                version=DEFAULT_VERSION,
                cache_dir=default_cache_dir(),
                ready_timeout=90,
            )
            bootstrap = broker.bootstrap
        asyncio.run(run(args, bootstrap, workdir))
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for f in FIGURES:
        print(json.dumps(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
