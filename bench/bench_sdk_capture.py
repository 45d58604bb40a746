"""Calling-thread cost of ``capture_exception`` for an exception with a 10-frame traceback.

Broker down (a closed port) and a queue big enough for every capture, so this measures only
what host code pays: dedupe, sampling, token bucket, walking the traceback, queueing.
Baseline: ``traceback.extract_tb`` on the same exception (what a naive SDK would do inline).

    python bench/bench_sdk_capture.py [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import statistics
import sys
import time
import traceback

import errorstream_sdk


def recurse(depth: int) -> None:
    if depth <= 1:
        raise ValueError("bench failure with some detail")
    recurse(depth - 1)


def make_exception(frames: int) -> BaseException:
    try:
        recurse(frames - 1)  # + this frame = ``frames`` frames in the traceback
    except ValueError as e:
        return e
    raise AssertionError


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--frames", type=int, default=10)
    args = ap.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # broker down on purpose

    errorstream_sdk.init(
        service="bench",
        brokers=f"127.0.0.1:{closed_port()}",
        queue_size=args.n + 2000,
        rate_limit_burst=10**9,
        install_hooks=False,
    )
    exc = make_exception(args.frames)
    depth = len(traceback.extract_tb(exc.__traceback__))
    assert depth == args.frames, depth

    perf = time.perf_counter_ns
    capture = errorstream_sdk.capture_exception
    for _ in range(1000):  # warm-up (not counted in the figures)
        capture(make_exception(args.frames))
    samples, base = [], []
    for _ in range(args.n):
        e = make_exception(args.frames)  # a fresh object each time, or dedupe would drop it
        t0 = perf()
        capture(e)
        t1 = perf()
        traceback.extract_tb(e.__traceback__)
        t2 = perf()
        samples.append((t1 - t0) / 1000)
        base.append((t2 - t1) / 1000)
    stats = errorstream_sdk.stats()
    errorstream_sdk.close(timeout=0.1)

    med, p99 = statistics.median(samples), percentile(samples, 0.99)
    bmed, bp99 = statistics.median(base), percentile(base, 0.99)
    print(
        f"python {sys.version.split()[0]}, {args.n} captures, {depth}-frame traceback, broker down"
    )
    print(f"capture_exception (calling thread): median {med:.2f} us, p99 {p99:.2f} us")
    print(f"traceback.extract_tb baseline:      median {bmed:.2f} us, p99 {bp99:.2f} us")
    print(f"queued {stats['queue_depth']}, dropped {stats['dropped']}")
    for figure, value, b in (("median", med, bmed), ("p99", p99, bp99)):
        print(
            json.dumps(
                {
                    "bench": "sdk_capture",
                    "figure": f"capture_exception_{figure}_us",
                    "value": round(value, 2),
                    "unit": "us",
                    "baseline": round(b, 2),
                    "ratio": round(value / b, 3) if b else None,
                }
            )
        )


if __name__ == "__main__":
    main()
