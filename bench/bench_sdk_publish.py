"""Sustained publish rate of ~1 KB events through the SDK, against a bare aiokafka producer
loop with the same settings (acks, idempotence, linger, batch size, compression), both into
fresh topics on the same broker in the same run.

SDK rate = events / (first capture -> flush() returned), so it includes building, scrubbing,
encoding and delivery acknowledgements, with capture and delivery sharing one process (GIL).

    python bench/bench_sdk_publish.py [--bootstrap HOST:PORT] [--n 100000]

Without --bootstrap a throwaway broker is started with ``pipeline.kafka_local``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import errorstream_sdk
from errorstream_sdk.transport import pick_compression

MESSAGE_CHARS = 560  # + envelope (ids, timestamp, tags, contexts, sdk) = ~1 KB encoded


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


async def create_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def bare_aiokafka(bootstrap: str, topic: str, values: list[bytes], settings) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_size,
        compression_type=pick_compression(settings.compression),
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up", key=b"k")
        t0 = time.perf_counter()
        futures = [
            await producer.send(topic, v, key=b"bench:ValueError:app.handler") for v in values
        ]
        await asyncio.gather(*futures)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


def sdk_run(bootstrap: str, topic: str, n: int) -> tuple[float, dict, int]:
    client = errorstream_sdk.init(
        service="bench",
        brokers=bootstrap,
        topic=topic,
        queue_size=n + 10,
        rate_limit_burst=10**9,
        install_hooks=False,
        dedupe=False,
    )
    errorstream_sdk.capture_message("warm-up", level="error")
    assert errorstream_sdk.flush(30), errorstream_sdk.stats()
    filler = "x" * (MESSAGE_CHARS - 40)
    sample = client.process(client_capture_sample(client, filler))
    t0 = time.perf_counter()
    capture = errorstream_sdk.capture_message
    for i in range(n):
        capture(f"order {i:>10} failed to sync: {filler}", "error")
    ok = errorstream_sdk.flush(300)
    elapsed = time.perf_counter() - t0
    stats = errorstream_sdk.stats()
    errorstream_sdk.close(timeout=5)
    assert ok, stats
    # a fast SDK that drops events is not fast: every capture must have been delivered
    assert stats["sent"] == n + 1 and not any(stats["dropped"].values()), stats
    return elapsed, stats, len(sample[1]) if sample else 0


def client_capture_sample(client, filler: str):
    from errorstream_sdk.event import Capture

    return Capture(
        uuid.uuid4().hex,
        time.time(),
        "error",
        None,
        None,
        f"order {0:>10} failed to sync: {filler}",
        None,
        None,
        {},
        None,
        None,
        None,
        (),
        None,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    with broker(args.bootstrap) as bootstrap:
        run_id = uuid.uuid4().hex[:8]
        sdk_topic, bare_topic = f"bench-sdk-{run_id}", f"bench-bare-{run_id}"
        asyncio.run(create_topic(bootstrap, sdk_topic))
        asyncio.run(create_topic(bootstrap, bare_topic))

        cpu0 = time.process_time()
        sdk_elapsed, stats, size = sdk_run(bootstrap, sdk_topic, args.n)
        sdk_cpu = time.process_time() - cpu0
        settings = errorstream_sdk.config.settings_from({}, service="bench")
        values = [b"x" * size for _ in range(args.n)]
        cpu0 = time.process_time()
        bare_elapsed = asyncio.run(bare_aiokafka(bootstrap, bare_topic, values, settings))
        bare_cpu = time.process_time() - cpu0

    sdk_rate, bare_rate = args.n / sdk_elapsed, args.n / bare_elapsed
    compression = pick_compression(settings.compression)
    print(
        f"broker {bootstrap}, {args.n} events of {size} bytes, acks=all, idempotence="
        f"{settings.enable_idempotence}, linger_ms={settings.linger_ms}, "
        f"max_batch_size={settings.max_batch_size}, compression={compression}"
    )
    print(f"SDK (capture_message -> flush):  {sdk_rate:,.0f} events/s ({sdk_elapsed:.2f} s)")
    print(f"bare aiokafka send loop:         {bare_rate:,.0f} events/s ({bare_elapsed:.2f} s)")
    print(
        f"process CPU per event (this process only; the broker is separate): SDK "
        f"{sdk_cpu / args.n * 1e6:.1f} us, bare {bare_cpu / args.n * 1e6:.1f} us"
    )
    print(f"SDK stats: sent {stats['sent']}, dropped {stats['dropped']}")
    print(
        json.dumps(
            {
                "bench": "sdk_publish",
                "figure": "events_per_second",
                "value": round(sdk_rate),
                "unit": "events/s",
                "baseline": round(bare_rate),
                "ratio": round(sdk_rate / bare_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
