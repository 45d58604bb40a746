"""Benchmark: the whole worker end to end — `errorstream worker`, i.e. its decoder, agent
and sink processes (decode, fingerprint, re-key, the issues agent with all tables, dedup and
alert rules on, the ClickHouse sink) — on a local broker on the same machine.

On a local broker (``ERRORSTREAM_BENCH_KAFKA_BOOTSTRAP`` or a fresh one), one real worker:

1. throughput: N raw events (default 100,000) pre-produced onto the ingest topic (one per
   message, as the SDK sends them), then the worker started; events/s until every event is
   counted in the issue state, and until every event is stored in ClickHouse, next to two
   baselines from the same run: a bare aiokafka consume loop over the same topic, and bare
   chDB inserts of the same rows (the processed topic read back, rows built in advance);
2. CPU seconds per event of each process (decoder, agent, sink, broker) over that run;
3. changelog messages written per event (end offsets of the changelog topics / N);
4. alert latency: new fingerprints produced to the ingest topic under a steady background
   load, time from produce to the new_issue alert read from the alerts topic (p50, p99).

Prints human-readable lines, then one JSON line per figure. Never fails on a timing.

    python bench/bench_stream_agents.py [--events 100000] [--background-rate 2000]
                                        [--payload small|realistic]

The options default to the environment variables BENCH_EVENTS, BENCH_BACKGROUND_RATE and
BENCH_PAYLOAD (then 100000, 2000, small). A run at these sizes takes ~2.5 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.kafka_local import default_cache_dir, start_on_free_ports  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from pipeline.topics import ensure_topics  # noqa: E402
from tests.integration.harness import WorkerProcess, pipeline_env  # noqa: E402

N = int(os.environ.get("BENCH_EVENTS", "100000"))
BACKGROUND_RATE = int(os.environ.get("BENCH_BACKGROUND_RATE", "2000"))
ALERT_SAMPLES = 40


PAYLOAD = os.environ.get("BENCH_PAYLOAD", "small")  # small (~270 B) | realistic (~2.5 KB)


def realistic_body(i: int, kind: str) -> dict:
    """What an SDK sends with a caught exception: a stack trace, tags, breadcrumbs, request
    and contexts (~2.5 KB as JSON)."""
    frames = [
        {
            "filename": f"app/{m}.py",
            "abs_path": f"/srv/app/{m}.py",
            "module": f"app.{m}",
            "function": f"handle_{m}",
            "lineno": 40 + k * 7,
            "context_line": f"    result = {m}.process(order, retries={k})",
            "in_app": k > 3,
        }
        for k, m in enumerate(
            ["wsgi", "router", "auth", "views", "orders", "cart", "pricing", "tax", "db", "models"]
        )
    ]
    return {
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": f"boom {i}",
                    "module": "app",
                    "mechanism": {"type": "generic", "handled": False},
                    "stacktrace": {"frames": frames},
                }
            ]
        },
        "tags": {"host": f"web-{i % 16}", "region": "eu-west-1", "browser": "Firefox 128"},
        "breadcrumbs": {
            "values": [
                {"timestamp": 1.7e9 + b, "category": "http", "message": f"GET /api/items/{b}"}
                for b in range(8)
            ]
        },
        "request": {
            "url": f"https://shop.example.com/cart/{i}",
            "method": "POST",
            "headers": {"User-Agent": "Mozilla/5.0", "Accept": "application/json"},
        },
        "contexts": {
            "os": {"name": "Linux", "version": "6.1"},
            "runtime": {"name": "CPython", "version": "3.11.7"},
        },
    }


def raw_event(i: int, kind: str, ts: float) -> dict:
    if PAYLOAD == "realistic":
        return {
            "event_id": f"{i:032x}",
            "timestamp": ts,
            "service": f"svc{i % 5}",
            "level": "error",
            "platform": "python",
            "release": "app@1.0.0",
            "environment": "bench",
            "user": {"id": f"u{i % 500}"},
            **realistic_body(i, kind),
        }
    return {
        "event_id": f"{i:032x}",
        "timestamp": ts,
        "service": f"svc{i % 5}",
        "level": "error",
        "platform": "python",
        "release": "app@1.0.0",
        "environment": "bench",
        "user": {"id": f"u{i % 500}"},
        "exception": {"values": [{"type": kind, "value": f"boom {i}", "module": "app"}]},
    }


async def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        for key, value in items:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def bare_consume(bootstrap: str, topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    n, started = 0, None
    try:
        while n < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for messages in batch.values():
                if started is None:
                    started = time.perf_counter()
                for m in messages:
                    orjson.loads(m.value)
                    n += 1
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topics: list[str]) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(topics)
        finally:
            await admin.close()
        tps = []
        for t in described:
            if t.get("error_code") or not t["partitions"]:
                raise RuntimeError(f"changelog topic {t['topic']} not found")
            tps += [TopicPartition(t["topic"], p["partition"]) for p in t["partitions"]]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        idle = time.monotonic()
        while time.monotonic() - idle < 2.0:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for messages in batch.values():
                values.extend(m.value for m in messages)
                idle = time.monotonic()
    finally:
        await consumer.stop()
    return values


def hop_bytes(env: dict) -> dict[str, float]:
    """Bytes per event on each topic between the processes (message values, as stored),
    over every event on the ingest topic so far (one message each)."""
    bootstrap = env["ERRORSTREAM_KAFKA_BOOTSTRAP"]
    out = {}
    n = len(asyncio.run(read_topic(bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"])))
    for hop, key in (
        ("ingest", "ERRORSTREAM_TOPIC_EVENTS"),
        ("by_fingerprint", "ERRORSTREAM_TOPIC_BY_FINGERPRINT"),
        ("processed", "ERRORSTREAM_TOPIC_PROCESSED"),
    ):
        out[hop] = sum(map(len, asyncio.run(read_topic(bootstrap, env[key])))) / n
    return out


def bare_insert(env: dict, workdir: Path) -> tuple[float, int]:
    """Rows/s of bare chDB inserts of the rows the sink stored (processed topic read back,
    rows built in advance, batches of sink_max_batch_size), into a fresh store."""
    from pipeline.sinks.batching import Message
    from pipeline.sinks.clickhouse import insert_tables
    from pipeline.sinks.rows import build_rows
    from pipeline.storage.backend import ChdbBackend
    from pipeline.storage.migrate import migrate

    bootstrap = env["ERRORSTREAM_KAFKA_BOOTSTRAP"]
    values = asyncio.run(read_topic(bootstrap, env["ERRORSTREAM_TOPIC_PROCESSED"]))
    messages = [Message("processed", 0, i, v) for i, v in enumerate(values)]
    built, _ = build_rows(messages, env["ERRORSTREAM_TOPIC_ALERTS"])
    backend = ChdbBackend(str(workdir / "bare-clickhouse"), "bare")
    try:
        migrate(backend, 90)
        tables = built.tables()
        rows = max(len(r) for _, r in tables)
        batch = load_settings(env=env).sink_max_batch_size
        started = time.perf_counter()
        for lo in range(0, rows, batch):
            insert_tables(backend, [(t, r[lo : lo + batch]) for t, r in tables])
        return rows / (time.perf_counter() - started), rows
    finally:
        backend.close()


def worker_throughput(worker: WorkerProcess, total: int) -> float:
    def counted() -> int:
        return sum(i["count"] for i in worker.get("/api/state/issues")["issues"])

    t0, c0 = None, 0
    deadline = time.monotonic() + float(os.environ.get("BENCH_MAX_SECONDS", "120"))
    while time.monotonic() < deadline:
        c = counted()
        if t0 is None and c > 0:
            t0, c0 = time.perf_counter(), c
        if c >= total:
            return (c - c0) / (time.perf_counter() - t0)
        time.sleep(0.2)  # each poll costs the agent and the sink: keep it rare
    # not done by the deadline: the rate over what was counted (never a silent zero)
    return (c - c0) / (time.perf_counter() - t0) if t0 is not None else 0.0


async def alert_latency(env: dict) -> list[float]:
    bootstrap = env["ERRORSTREAM_KAFKA_BOOTSTRAP"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    consumer = AIOKafkaConsumer(env["ERRORSTREAM_TOPIC_ALERTS"], bootstrap_servers=bootstrap)
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    sent: dict[str, float] = {}
    latencies: list[float] = []
    series: list[tuple[str, float]] = []
    stop = asyncio.Event()

    async def background() -> None:
        i = 10_000_000
        now = time.time()
        while not stop.is_set():
            tick = time.perf_counter()
            for _ in range(BACKGROUND_RATE // 20):
                i += 1
                await producer.send(
                    env["ERRORSTREAM_TOPIC_EVENTS"],
                    orjson.dumps(raw_event(i, f"Err{i % 200}", now)),
                )
            await asyncio.sleep(max(0.0, 0.05 - (time.perf_counter() - tick)))

    async def probes() -> None:
        for k in range(ALERT_SAMPLES):
            await asyncio.sleep(0.5)
            event = raw_event(20_000_000 + k, f"Probe{k}Error", time.time())
            sent[f"{20_000_000 + k:032x}"] = time.perf_counter()
            await producer.send(env["ERRORSTREAM_TOPIC_EVENTS"], orjson.dumps(event))

    async def read() -> None:
        deadline = time.monotonic() + ALERT_SAMPLES * 0.5 + 30
        while len(latencies) < ALERT_SAMPLES and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for m in messages:
                    alert = orjson.loads(m.value)
                    t = sent.get(alert.get("event_id", ""))
                    if alert["kind"] == "new_issue" and t is not None:
                        latencies.append(time.perf_counter() - t)
                        series.append((alert["event_id"], latencies[-1]))

    bg = asyncio.create_task(background())
    await asyncio.gather(probes(), read())
    stop.set()
    await bg
    await producer.stop()
    await consumer.stop()
    # in the order the probes were sent: a trend means a backlog, a lone peak a pause
    series.sort()
    print("alert latencies in probe order (ms):", " ".join(f"{v * 1000:.0f}" for _, v in series))
    return latencies


def main() -> None:
    global N, BACKGROUND_RATE, PAYLOAD
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=N, help="backlog size (BENCH_EVENTS)")
    parser.add_argument(
        "--background-rate",
        type=int,
        default=BACKGROUND_RATE,
        help="events/s during the alert latency probes (BENCH_BACKGROUND_RATE)",
    )
    parser.add_argument(
        "--payload", choices=("small", "realistic"), default=PAYLOAD, help="BENCH_PAYLOAD"
    )
    args = parser.parse_args()
    N, BACKGROUND_RATE, PAYLOAD = args.events, args.background_rate, args.payload
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    broker = None
    bootstrap = os.environ.get("ERRORSTREAM_BENCH_KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = start_on_free_ports(tmp / "kafka", cache_dir=default_cache_dir())
        bootstrap = broker.bootstrap
    figures = []
    try:
        env = pipeline_env(bootstrap, tmp / "data", partitions=2)
        now = time.time()
        asyncio.run(ensure_topics(load_settings(env=env)))  # the worker's partition count
        # one raw event per message on the ingest topic, as the SDK sends them: the worker
        # decodes, fingerprints, re-keys (envelopes) and runs the stateful stage on each
        items = [
            (None, orjson.dumps(raw_event(i, f"Err{i % 200}", now - 3600 + i * 3600 / N)))
            for i in range(N)
        ]
        asyncio.run(produce(bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"], items))
        bare = asyncio.run(bare_consume(bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"], N))
        worker = WorkerProcess(env, tmp / "worker.log").start()
        try:
            started = time.perf_counter()
            pids = {r: worker.child_pid(r) for r in ("decoder", "agent", "sink")}
            pids["broker"] = broker.running_pid() if broker is not None else None
            cpu0 = {r: cpu_seconds(p) for r, p in pids.items()}
            rate = worker_throughput(worker, N)
            worker.wait_for(
                lambda: worker.get("/api/counts")["events"] >= N,
                timeout=float(os.environ.get("BENCH_MAX_SECONDS", "120")),
                interval=0.2,
            )
            stored = worker.get("/api/counts")["events"]
            stored_rate = stored / (time.perf_counter() - started)
            cpu = {r: (cpu_seconds(p) - cpu0[r]) / N for r, p in pids.items()}
            load_throughput = os.getloadavg()[0]
            changelogs = [
                f"{env['ERRORSTREAM_APP_ID']}-{t}-changelog"
                for t in ("issues", "services", "minutes", "dedup", "aliases")
            ]
            # changelog writes are buffered: read the end offsets once they stop moving
            written, stable_since = -1, time.monotonic()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and time.monotonic() - stable_since < 2.0:
                now_written = asyncio.run(end_offsets(bootstrap, changelogs))
                if now_written != written:
                    written, stable_since = now_written, time.monotonic()
                time.sleep(0.5)
            per_event = written / N
            # probes start on an idle worker: the sink has stored the throughput run's events
            worker.wait_for(lambda: worker.get("/api/counts")["events"] >= N * 0.99, timeout=120)
            hops = hop_bytes(env)  # the throughput run's events only, before the latency run
            latencies = sorted(asyncio.run(alert_latency(env)))
            load_latency = os.getloadavg()[0]
        finally:
            worker.stop()
        bare_rows, rows_built = bare_insert(env, tmp)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # the broker's log and the chDB folder
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = (
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else float("nan")
    )
    print(f"events:                     {N} raw events ({PAYLOAD}), 200 fingerprints, 5 services")
    print(f"bare aiokafka consume loop: {bare:,.0f} events/s")
    print(f"worker (decode → issues):   {rate:,.0f} events/s ({rate / bare:.1%} of bare)")
    print(
        f"worker (until stored):      {stored_rate:,.0f} events/s, {stored} of {N} stored "
        f"(bare chDB inserts of the same {rows_built} rows: {bare_rows:,.0f} rows/s); "
        f"load {load_throughput:.2f}"
    )
    for role, seconds in cpu.items():
        print(f"CPU per event, {role:8s}    {seconds * 1e6:,.1f} µs")
    for hop, size in hops.items():
        print(f"bytes per event, {hop:15s} {size:,.0f} B")
    print(f"changelog messages / event: {per_event:.2f}")
    print(
        f"alert latency (new_issue, {BACKGROUND_RATE}/s background): p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms over {len(latencies)} probes; load {load_latency:.2f}"
    )
    figures = [
        ("throughput", rate, "events/s", bare),
        ("throughput_stored", stored_rate, "events/s", bare),
        ("throughput_stored_vs_bare_insert", stored_rate, "events/s", bare_rows),
        *((f"cpu_per_event_{role}", seconds * 1e6, "us", None) for role, seconds in cpu.items()),
        *((f"bytes_per_event_{hop}", size, "B", None) for hop, size in hops.items()),
        ("load_average_throughput", load_throughput, "load", None),
        ("load_average_latency", load_latency, "load", None),
        ("changelog_messages_per_event", per_event, "messages", None),
        ("alert_latency_p50", p50, "s", None),
        ("alert_latency_p99", p99, "s", 1.0),
    ]
    for figure, value, unit, baseline in figures:
        ratio = (value / baseline) if baseline else None
        line = {
            "bench": "stream_agents" if PAYLOAD == "small" else f"stream_agents_{PAYLOAD}",
            "figure": figure,
            "value": round(value, 4),
            "unit": unit,
            "baseline": round(baseline, 4) if baseline else None,
            "ratio": round(ratio, 4) if ratio else None,
        }
        print(orjson.dumps(line).decode())


if __name__ == "__main__":
    main()
