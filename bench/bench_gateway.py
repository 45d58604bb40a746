"""Accepted events/s of one gateway process on loopback, beside a minimal aiohttp handler
that only reads the body, same client, same payloads, same run.

Payloads: Sentry envelopes with one Python exception event each (frames with source context
and vars, breadcrumbs, request, contexts, tags), gzip-compressed to 2-5 KB on the wire, as
sentry-sdk sends them. Accepted = answered 200, i.e. acknowledged by Kafka (acks=all); the
topic's end offsets are checked against that count afterwards.

    python bench/bench_gateway.py [--bootstrap HOST:PORT] [--requests 20000] [--concurrency 64]
                                  [--no-scrub]
    python bench/bench_gateway.py --stages     # CPU us per event of each step, in-process

Without --bootstrap a throwaway broker is started with ``pipeline.kafka_local``. The gateway
and the baseline each run in a child process; the load comes from this one (aiohttp client).

Besides events/s (wall clock), the CPU seconds each server process used during the measured
run are read from /proc: events per CPU second is what one process does with a core of its
own, a figure that other work on a shared machine does not move much.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
KEY = "0123456789abcdef0123456789abcdef"
BASELINE = """
import sys
from aiohttp import web

async def handler(request):
    await request.read()
    return web.json_response({"id": "0" * 32})

app = web.Application(client_max_size=8 * 1024 * 1024)
app.router.add_post("/api/{project_id}/envelope/", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
            auto_decompress=False)
"""


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from pipeline.kafka_local import default_cache_dir, start_on_free_ports

    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as home:
        b = start_on_free_ports(Path(home), cache_dir=default_cache_dir())
        try:
            yield b.bootstrap
        finally:
            b.stop()


WORDS = (
    "order user cart item price total tax discount session request response client retry "
    "timeout queue payment invoice account token cache lookup fetch update commit rollback "
    "record batch offset stream handler result value error status config region tenant "
    "shipment address customer product stock warehouse coupon refund ledger balance"
).split()


def code_line(rng: random.Random) -> str:
    names = [
        rng.choice(WORDS) + ("_" + rng.choice(WORDS) if rng.random() < 0.5 else "")
        for _ in range(4)
    ]
    return f"    {names[0]} = {names[1]}.{names[2]}({names[3]}, {rng.randint(0, 9999)})"


_LINES: list[str] = []


def pooled_line(rng: random.Random) -> str:
    """A source line of the application: a code base has a finite set of them (2,000 here),
    which events of the same bugs repeat."""
    if len(_LINES) < 2000:
        _LINES.append(code_line(rng))
        return _LINES[-1]
    return rng.choice(_LINES)


def sentry_event(rng: random.Random, i: int) -> dict:
    """A Python exception event shaped like sentry-sdk's: 5-15 KB of JSON, 2-5 KB gzipped."""
    depth = rng.randint(4, 14)
    frames = []
    for d in range(depth):
        mod = rng.choice(
            ["shop.cart", "shop.orders", "shop.db", "django.core.handlers", "shop.api"]
        )
        frames.append(
            {
                "filename": mod.replace(".", "/") + ".py",
                "abs_path": "/srv/app/" + mod.replace(".", "/") + ".py",
                "module": mod,
                "function": f"handler_{d % 7}",
                "lineno": 10 + d * 7,
                "in_app": not mod.startswith("django"),
                "pre_context": [pooled_line(rng) for _ in range(5)],
                "context_line": pooled_line(rng),
                "post_context": [pooled_line(rng) for _ in range(5)],
                "vars": {
                    rng.choice(
                        WORDS
                    ): f"<{rng.choice(WORDS)} {uuid.UUID(int=rng.getrandbits(128))}>"
                    for _ in range(rng.randint(1, 5))
                },
            }
        )
    return {
        "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "logger": "shop.orders",
        "server_name": f"web-{i % 8}",
        "release": "shop@1.4.0",
        "environment": "production",
        "exception": {
            "values": [
                {
                    "type": rng.choice(["KeyError", "ValueError", "TimeoutError"]),
                    "value": f"order {i} failed after {depth} steps",
                    "mechanism": {"type": "generic", "handled": True},
                    "stacktrace": {"frames": frames},
                }
            ]
        },
        "breadcrumbs": {
            "values": [
                {
                    "timestamp": time.time() - rng.random() * 60,
                    "category": rng.choice(["http", "query", "navigation", "log"]),
                    "message": f"{rng.choice(['GET', 'POST'])} /api/{rng.choice(WORDS)}/"
                    f"{rng.getrandbits(40):x}?{rng.choice(WORDS)}={rng.randint(0, 10**6)}",
                }
                for _ in range(rng.randint(5, 30))
            ]
        },
        "request": {
            "method": "POST",
            "url": f"https://shop.example/api/orders/{i}",
            "headers": {"User-Agent": "Mozilla/5.0", "Accept": "application/json"},
        },
        "contexts": {
            "runtime": {"name": "CPython", "version": "3.11.7"},
            "os": {"name": "Linux"},
            "trace": {"trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16]},
        },
        "tags": {"region": "eu-west-1", "tenant": f"t{i % 50}"},
        "sdk": {"name": "sentry.python", "version": "2.75.0"},
    }


def bodies(n: int) -> list[bytes]:
    rng = random.Random(7)
    out = []
    for _ in range(n * 50):  # bounded: the size window below keeps most of them
        if len(out) == n:
            break
        event = sentry_event(rng, len(out))
        payload = orjson.dumps(event)
        header = orjson.dumps({"event_id": event["event_id"], "sent_at": "2026-12-03T10:00:00Z"})
        item = orjson.dumps({"type": "event", "length": len(payload)})
        body = gzip.compress(header + b"\n" + item + b"\n" + payload + b"\n", compresslevel=6)
        if 2048 <= len(body) <= 5120:
            out.append(body)
    if len(out) < n:
        raise SystemExit(f"only {len(out)} of {n} payloads fall in 2-5 KB gzipped")
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(cmd: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd} not ready: {log.read_text()[-2000:]}")


async def load(port: int, payloads: list[bytes], requests: int, concurrency: int) -> dict:
    headers = {
        "Content-Encoding": "gzip",
        "Content-Type": "application/x-sentry-envelope",
        "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=bench/1, sentry_key={KEY}",
    }
    url = f"http://127.0.0.1:{port}/api/1/envelope/"
    counter = iter(range(requests))
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                async with session.post(
                    url, data=payloads[i % len(payloads)], headers=headers
                ) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                latencies.append(time.perf_counter() - t0)

        start_t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start_t
    latencies.sort()
    return {
        "elapsed": elapsed,
        "statuses": statuses,
        "ok_per_s": statuses.get(200, 0) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


async def topic_size(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum((await consumer.end_offsets(tps)).values()) if tps else 0
    finally:
        await consumer.stop()


def stages(payloads: list[bytes], rounds: int = 3) -> None:
    """CPU microseconds per event of each step of an envelope request, in this process (no
    HTTP, no Kafka), best of ``rounds`` passes over 2,000 requests; then the whole of
    ``ingest.from_envelope`` with and without scrubbing."""
    from pipeline.gateway import ingest
    from pipeline.gateway.compression import decompress
    from pipeline.gateway.ingest import IngestLimits
    from pipeline.gateway.scrub import GatewayScrubber, scrub_event
    from pipeline.sentry import to_event_v1

    limits = IngestLimits()
    bodies_ = [payloads[i % len(payloads)] for i in range(2000)]

    def timed(name: str, fn, items: list) -> list:
        best, out = float("inf"), []
        for _ in range(rounds):
            copies = [copy.deepcopy(x) for x in items] if name.startswith("scrub") else items
            t0 = time.process_time()
            out = [fn(x) for x in copies]
            best = min(best, time.process_time() - t0)
        print(f"  {name:38s} {best / len(items) * 1e6:7.1f} us")
        return out

    def whole(scrubber):
        return lambda b: ingest.from_envelope(
            ingest.parse(decompress(b, "gzip", 20 << 20)),
            service="shop",
            received_at=time.time(),
            limits=limits,
            scrubber=scrubber,
        )

    print("CPU per event, in-process:")
    raw = timed("decompress (gzip)", lambda b: decompress(b, "gzip", 20 << 20), bodies_)
    envs = timed("envelope parse", ingest.parse, raw)
    loaded = timed("JSON parse (orjson)", lambda e: orjson.loads(e.items[0].payload), envs)
    events = timed(
        "conversion (pipeline.sentry)",
        lambda p: to_event_v1(p, service="shop", received_at=time.time()),
        loaded,
    )
    scrubber = GatewayScrubber()
    timed("scrub + limits, one walk", lambda e: scrub_event(e, scrubber, 64, 262144), events)
    timed(
        "limits only (gateway_scrub = 0)", lambda e: ingest._limit_free_form(e, limits, ""), events
    )
    timed("serialization (orjson)", orjson.dumps, events)
    timed("whole from_envelope, scrubbing on", whole(GatewayScrubber()), bodies_)
    timed("whole from_envelope, scrubbing off", whole(None), bodies_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-scrub", action="store_true", help="gateway_scrub=0 (for comparison)")
    parser.add_argument("--stages", action="store_true", help="in-process CPU per step only")
    args = parser.parse_args()
    from pipeline.kafka_local import free_ports

    payloads = bodies(256)
    raw = [len(gzip.decompress(b)) for b in payloads]
    print(
        f"payloads: {len(payloads)} envelopes, gzip {min(map(len, payloads))}-"
        f"{max(map(len, payloads))} B (mean {statistics.mean(map(len, payloads)):.0f}), "
        f"raw mean {statistics.mean(raw):.0f} B"
    )
    if args.stages:
        stages(payloads)
        print(f"load average (1/5/15 min): {os.getloadavg()}")
        return
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ERRORSTREAM_")}
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        gw_port, base_port = free_ports(2)
        topic = f"bench-gateway-{uuid.uuid4().hex[:8]}"
        env = clean | {
            "ERRORSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "ERRORSTREAM_TOPIC_EVENTS": topic,
            "ERRORSTREAM_PARTITIONS": "4",
            "ERRORSTREAM_WEB_PORT": str(gw_port),
            "ERRORSTREAM_GATEWAY_KEYS": f"1={KEY}",
            "ERRORSTREAM_GATEWAY_PROJECTS": "1=shop",
            "ERRORSTREAM_GATEWAY_RATE_LIMIT": "0",
            "ERRORSTREAM_LOG_FORMAT": "plain",
            "ERRORSTREAM_LOG_LEVEL": "WARNING",
            "ERRORSTREAM_GATEWAY_SCRUB": "0" if args.no_scrub else "1",
        }
        gw = start(
            [sys.executable, "-m", "pipeline.cli", "gateway"],
            env,
            f"http://127.0.0.1:{gw_port}/readyz",
            Path(tmp) / "gateway.log",
        )
        try:
            asyncio.run(load(gw_port, payloads, 500, args.concurrency))  # warm-up
            load_before = os.getloadavg()
            cpu0 = cpu_seconds(gw.pid)
            g = asyncio.run(load(gw_port, payloads, args.requests, args.concurrency))
            g["cpu"] = cpu_seconds(gw.pid) - cpu0
            load_gw = os.getloadavg()
        finally:
            gw.terminate()
            gw.wait(30)
        on_topic = asyncio.run(topic_size(bootstrap, topic))
        base = subprocess.Popen(
            [sys.executable, "-c", BASELINE, str(base_port)],
            env=clean,
            stdout=open(Path(tmp) / "baseline.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{base_port}/", timeout=1)
                except urllib.error.HTTPError:
                    break  # 404/405: it answers
                except OSError:
                    time.sleep(0.2)
            asyncio.run(load(base_port, payloads, 500, args.concurrency))
            cpu0 = cpu_seconds(base.pid)
            b = asyncio.run(load(base_port, payloads, args.requests, args.concurrency))
            b["cpu"] = cpu_seconds(base.pid) - cpu0
            load_base = os.getloadavg()
        finally:
            base.terminate()
            base.wait(30)

    accepted = g["statuses"].get(200, 0)
    g_per_cpu = accepted / g["cpu"] if g["cpu"] else float("nan")
    b_per_cpu = b["statuses"].get(200, 0) / b["cpu"] if b["cpu"] else float("nan")
    print(
        f"gateway:  {g['ok_per_s']:,.0f} accepted events/s, {accepted}/{args.requests} 200 "
        f"in {g['elapsed']:.2f} s, p50 {g['p50_ms']:.1f} ms, p99 {g['p99_ms']:.1f} ms, "
        f"statuses {g['statuses']}; on the topic: {on_topic} (incl. 500 warm-up)"
    )
    print(
        f"baseline: {b['ok_per_s']:,.0f} requests/s (read body, reply), p50 {b['p50_ms']:.1f} ms, "
        f"p99 {b['p99_ms']:.1f} ms"
    )
    print(
        f"CPU: gateway {g['cpu']:.2f} s = {g_per_cpu:,.0f} accepted events per CPU second "
        f"({1e6 / g_per_cpu if g_per_cpu else 0:,.0f} us each); baseline {b['cpu']:.2f} s = "
        f"{b_per_cpu:,.0f} requests per CPU second"
    )
    print(
        f"load average (1/5/15 min): before {load_before}, after gateway {load_gw}, after baseline {load_base}"
    )
    lines = [
        {
            "bench": "gateway",
            "figure": "accepted_events_per_s",
            "value": round(g["ok_per_s"], 1),
            "unit": "events/s",
            "baseline": round(b["ok_per_s"], 1),
            "ratio": round(g["ok_per_s"] / b["ok_per_s"], 3),
        },
        {
            "bench": "gateway",
            "figure": "accepted_events_per_cpu_second",
            "value": round(g_per_cpu, 1),
            "unit": "events/CPU s",
            "baseline": round(b_per_cpu, 1),
            "ratio": round(g_per_cpu / b_per_cpu, 3) if b_per_cpu else None,
        },
        {
            "bench": "gateway",
            "figure": "p99_latency_ms",
            "value": round(g["p99_ms"], 2),
            "unit": "ms",
            "baseline": round(b["p99_ms"], 2),
            "ratio": round(g["p99_ms"] / b["p99_ms"], 3),
        },
        {
            "bench": "gateway",
            "figure": "load_average_1m",
            "value": round(load_gw[0], 2),
            "unit": "load",
            "baseline": round(load_before[0], 2),
            "ratio": round(load_gw[0] / load_before[0], 3) if load_before[0] else None,
        },
    ]
    for line in lines:
        print(json.dumps(line))
    if accepted + 500 != on_topic:
        raise SystemExit(f"accepted {accepted} + 500 warm-up but {on_topic} on the topic")


if __name__ == "__main__":
    main()
