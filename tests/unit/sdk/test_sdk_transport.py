"""KafkaTransport with no broker listening (a closed port): buffering, bounds, deadlines."""

from __future__ import annotations

import socket
import time

import errorstream_sdk
from errorstream_sdk.transport import pick_compression


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_broker_down_buffers_then_counts_queue_full_and_never_blocks():
    client = errorstream_sdk.init(
        service="unit-svc",
        brokers=f"127.0.0.1:{closed_port()}",
        queue_size=20,
        install_hooks=False,
        rng=lambda: 0.0,
        rate_limit_burst=1000,
    )
    try:
        start = time.perf_counter()
        for i in range(25):
            errorstream_sdk.capture_message(f"m{i}", level="error")
        assert time.perf_counter() - start < 0.5
        s = errorstream_sdk.stats()
        assert (s["captured"], s["queue_depth"], s["dropped"]["queue_full"]) == (25, 20, 5)
        t0 = time.perf_counter()
        assert errorstream_sdk.flush(0.3) is False
        assert 0.25 < time.perf_counter() - t0 < 1.0
    finally:
        t0 = time.perf_counter()
        errorstream_sdk.close(timeout=0.2)
        assert time.perf_counter() - t0 < 3.0
    s = client.snapshot()
    assert s["queue_depth"] == 0
    assert s["dropped"]["send_failed"] == 20  # what was still buffered at close
    assert s["captured"] == s["sent"] + sum(s["dropped"].values())


def test_compression_choice():
    from aiokafka import codec

    assert pick_compression("auto") == ("lz4" if codec.has_lz4() else "gzip")
    assert pick_compression("none") is None
    assert pick_compression("gzip") == "gzip"
