"""``errorstream demo``: the local pipeline end to end on one machine.

Starts (or reuses) a local Kafka broker, runs the worker with embedded ClickHouse in a child
process, and plays a demo producer: three services raising real exceptions through the
producer SDK. Alerts are printed as they arrive; a timeline every 15 s and at the end.
Ctrl-C (or ``--events N`` done) stops everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

from pipeline.query_client import QueryFailed, fetch_api, print_timeline
from pipeline.settings import Settings

# --- the demo services: real code paths that raise ------------------------------------


class PaymentDeclined(Exception):
    pass


def connect_db(host: str) -> None:
    raise ConnectionError(f"Connection to {host}:5432 timed out after 30s")


def load_order(order_id: int) -> None:
    connect_db(f"10.0.{order_id % 8}.{order_id % 250}")


def charge(amount: float, card: str) -> None:
    raise PaymentDeclined(f"card {card} declined for amount {amount:.2f}")


def parse_invoice(raw: str) -> dict:
    return orjson.loads(raw)


def cart_total(items: list[dict]) -> float:
    return sum(item["price"] for item in items) / len(items)


SCENARIOS = [
    ("checkout", "error", lambda i: load_order(i)),
    ("checkout", "error", lambda i: charge(10 + i % 90, f"**** {1000 + i % 9000}")),
    ("billing", "error", lambda i: parse_invoice('{"invoice": ' + str(i) + ",")),
    ("web", "error", lambda i: cart_total([])),
    ("web", "fatal", lambda i: {}["session"]),
]


def _produce(clients: dict, i: int, rng: random.Random) -> None:
    weights = [40, 10, 20, 25, 5]
    service, level, fn = rng.choices(SCENARIOS, weights=weights)[0]
    try:
        fn(i)
    except Exception as exc:  # the demo's whole point: capture real exceptions
        clients[service].capture_exception(exc, level=level, tags={"demo": "yes"})


# --- orchestration -----------------------------------------------------------------------


def _ready(settings: Settings, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    url = f"{settings.effective_api_url}/readyz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


async def _print_alerts(settings: Settings, stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer

    from pipeline.kafka_clients import client_config

    consumer = AIOKafkaConsumer(
        settings.topic_alerts,
        **client_config(settings, "demo"),
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                for m in messages:
                    a = orjson.loads(m.value)
                    print(f"ALERT {a['kind']:<10} {a['service']:<9} {a['title'][:90]}", flush=True)
    finally:
        await consumer.stop()


def _start_kafka(args: argparse.Namespace):
    from pipeline.kafka_local import DEFAULT_VERSION, KafkaBroker, default_cache_dir, ensure_kafka

    home = Path(
        os.environ.get("ERRORSTREAM_KAFKA_HOME", Path.home() / ".local/share/errorstream/kafka")
    )
    version = os.environ.get("ERRORSTREAM_KAFKA_VERSION", DEFAULT_VERSION)
    port = int(os.environ.get("ERRORSTREAM_KAFKA_PORT", "9092"))
    cport = int(os.environ.get("ERRORSTREAM_KAFKA_CONTROLLER_PORT", "9093"))
    broker = KafkaBroker(home=home, port=port, controller_port=cport, version=version)
    if broker.status().running:
        print(f"using the running Kafka on 127.0.0.1:{port}", flush=True)
        return None, f"127.0.0.1:{port}"
    ensure_kafka(version, default_cache_dir())
    broker.start()
    broker.wait_ready()
    print(f"Kafka {version} ready on 127.0.0.1:{port}", flush=True)
    return broker, f"127.0.0.1:{port}"


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from errorstream_sdk.client import Client
    from errorstream_sdk.config import settings_from

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM/SIGHUP stop the demo like Ctrl-C: worker and broker too

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupted)
    broker = None
    if not args.no_kafka:
        broker, bootstrap = _start_kafka(args)
        settings = settings.replace(kafka_bootstrap=bootstrap)
    env = dict(os.environ, ERRORSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap)
    env.setdefault("ERRORSTREAM_LOG_FORMAT", "plain")
    env.setdefault("ERRORSTREAM_LOG_LEVEL", "WARNING")
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "worker"], env=env, start_new_session=True
    )
    stop = asyncio.Event()
    clients = {}
    try:
        print(f"starting the worker (embedded ClickHouse at {settings.chdb_path})...", flush=True)
        if not _ready(settings, 90, worker):
            print("errorstream demo: the worker did not become ready", file=sys.stderr)
            return 1
        print(f"worker ready: API on {settings.effective_api_url}", flush=True)
        for service in ("checkout", "billing", "web"):
            clients[service] = Client(
                settings_from(
                    service=service,
                    brokers=settings.kafka_bootstrap,
                    topic=settings.topic_events,
                    environment="demo",
                    release="demo@1.0.0",
                    rate_limit_burst=1000,
                    rate_limit_per_second=1000.0,
                    dedupe=False,
                    install_hooks=False,
                )
            ).start()
        asyncio.run(_demo_loop(args, settings, clients, stop))
        return 0
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        for client in clients.values():
            client.close(2.0)
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if broker is not None:
            broker.stop()
            print("Kafka stopped", flush=True)


async def _demo_loop(args, settings: Settings, clients: dict, stop: asyncio.Event) -> None:
    alerts = asyncio.create_task(_print_alerts(settings, stop))
    rng = random.Random(7)
    started = time.time()
    sent = 0
    next_timeline = time.monotonic() + 15
    try:
        while not args.events or sent < args.events:
            _produce(clients, sent, rng)
            sent += 1
            await asyncio.sleep(1.0 / args.rate)
            if time.monotonic() >= next_timeline:
                await _show_timeline(settings, started)
                next_timeline = time.monotonic() + 15
        for client in clients.values():
            client.flush(5.0)
        await _wait_stored(settings, sent, started)
        await _show_timeline(settings, started)
        print(f"demo done: {sent} events captured", flush=True)
    finally:
        stop.set()
        await alerts


async def _wait_stored(settings: Settings, expected: int, since: float, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = await asyncio.to_thread(
                fetch_api,
                settings,
                "/api/timeline",
                # only this run's events (earlier runs may share the first minute)
                {"since": since - 1, "until": time.time() + 60},
            )
            if data["total"] >= expected:
                return
        except QueryFailed:
            pass
        await asyncio.sleep(0.5)


async def _show_timeline(settings: Settings, since: float) -> None:
    try:
        data = await asyncio.to_thread(
            fetch_api, settings, "/api/timeline", {"since": since - 60, "until": time.time() + 60}
        )
        print_timeline(data)
    except QueryFailed as exc:
        print(f"timeline unavailable: {exc}", file=sys.stderr)
