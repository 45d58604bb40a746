"""Memory stays bounded under a capture storm with the broker down.

1,000,000 ``capture_exception`` calls against a closed port with the rate limiter effectively
off (``--rate-limit-burst``), the worst case: every capture reaches the bounded queue. Peak RSS (``resource``) and traced Python memory
(``tracemalloc``) are compared with their values after the first 10,000 captures, by which
point the queue is full; everything after that must be dropped and counted, not stored.

    python bench/bench_sdk_memory.py [--n 1000000] [--queue-size 10000]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import socket
import time
import tracemalloc

import errorstream_sdk


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def fail(i: int) -> None:
    raise ValueError(f"storm {i}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queue-size", type=int, default=10_000)
    ap.add_argument("--warm", type=int, default=10_000)
    ap.add_argument("--rate-limit-burst", type=int, default=10**9)
    args = ap.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    errorstream_sdk.init(
        service="bench",
        brokers=f"127.0.0.1:{closed_port()}",
        queue_size=args.queue_size,
        install_hooks=False,
        rate_limit_burst=args.rate_limit_burst,
    )
    tracemalloc.start()
    t0 = time.perf_counter()
    warm_rss = warm_traced = 0.0
    for i in range(args.n):
        try:
            fail(i)
        except ValueError:
            errorstream_sdk.capture_exception()
        if i + 1 == args.warm:
            warm_rss = rss_mib()
            warm_traced = tracemalloc.get_traced_memory()[0] / 2**20
    elapsed = time.perf_counter() - t0
    traced_now, traced_peak = (x / 2**20 for x in tracemalloc.get_traced_memory())
    tracemalloc.stop()
    peak_rss = rss_mib()
    stats = errorstream_sdk.stats()
    errorstream_sdk.close(timeout=0.5)

    growth = peak_rss - warm_rss
    print(
        f"{args.n:,} captures in {elapsed:.1f} s with the broker down, queue_size {args.queue_size:,}"
    )
    print(
        f"peak RSS after {args.warm:,}: {warm_rss:.1f} MiB; at the end: {peak_rss:.1f} MiB "
        f"(growth {growth:+.1f} MiB)"
    )
    print(
        f"tracemalloc after {args.warm:,}: {warm_traced:.1f} MiB; at the end: {traced_now:.1f} MiB "
        f"(peak {traced_peak:.1f} MiB)"
    )
    print(
        f"stats: captured {stats['captured']:,}, queue_depth {stats['queue_depth']:,}, "
        f"dropped {stats['dropped']}"
    )
    for figure, value, base, unit in (
        ("peak_rss_mib", peak_rss, warm_rss, "MiB"),
        ("traced_mib", traced_now, warm_traced, "MiB"),
        ("dropped_rate_limited", stats["dropped"]["rate_limited"], None, "events"),
        ("dropped_queue_full", stats["dropped"]["queue_full"], None, "events"),
    ):
        print(
            json.dumps(
                {
                    "bench": "sdk_memory",
                    "figure": figure,
                    "value": round(value, 2),
                    "unit": unit,
                    "baseline": round(base, 2) if base is not None else None,
                    "ratio": round(value / base, 3) if base else None,
                }
            )
        )


if __name__ == "__main__":
    main()
