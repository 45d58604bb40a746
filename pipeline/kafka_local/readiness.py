"""Is a Kafka broker really serving? A metadata round-trip with aiokafka, under a deadline.

Used by the local broker launcher, the test fixtures, and the worker (to print one clear line
when the broker is down instead of a page of aiokafka retries).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import KafkaUnavailable

POLL_INTERVAL_S = 0.25


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port or 9092)


def tcp_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    """True if any bootstrap server accepts a TCP connection (cheap pre-check, not readiness)."""
    for server in bootstrap.split(","):
        try:
            with socket.create_connection(_host_port(server), timeout=timeout):
                return True
        except OSError:
            continue
    return False


@contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every refused connection at ERROR; while probing, those are expected."""
    log = logging.getLogger("aiokafka")
    previous = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(previous)


async def describe_cluster(
    bootstrap: str, timeout: float, client: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One admin-client metadata round-trip; raises on any failure or after ``timeout``.
    ``client``: more admin-client options (security, client id)."""
    from aiokafka.admin import AIOKafkaAdminClient

    request_ms = max(1000, int(timeout * 1000))
    options = {"client_id": "errorstream-readiness", **(client or {})}
    options["bootstrap_servers"] = bootstrap
    admin = AIOKafkaAdminClient(request_timeout_ms=request_ms, **options)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        info = await asyncio.wait_for(admin.describe_cluster(), timeout)
    finally:
        await admin.close()
    if not info.get("brokers"):
        raise KafkaUnavailable(f"Kafka at {bootstrap} answered metadata with no brokers")
    return info


async def wait_for_kafka_async(
    bootstrap: str,
    timeout: float,
    *,
    alive: Callable[[], str | None] | None = None,
    client: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Retry a metadata round-trip until it succeeds or ``timeout`` seconds pass.

    ``alive`` (optional) is called between attempts; if it returns a message the wait stops at
    once with that message (used to fail early when the broker's JVM has exited).
    Returns the cluster description. Raises KafkaUnavailable.
    """
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    with _quiet_aiokafka():
        while True:
            if alive is not None and (dead := alive()) is not None:
                raise KafkaUnavailable(f"Kafka at {bootstrap} is not reachable: {dead}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not tcp_reachable(bootstrap, timeout=min(1.0, remaining)):
                last_error = "connection refused"
            else:
                try:
                    return await describe_cluster(
                        bootstrap, timeout=min(5.0, max(remaining, 0.5)), client=client
                    )
                except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                    last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            await asyncio.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
    raise KafkaUnavailable(
        f"Kafka at {bootstrap} is not reachable after {timeout:g}s: {last_error}"
    )


def wait_for_kafka(
    bootstrap: str,
    timeout: float,
    *,
    alive: Callable[[], str | None] | None = None,
    client: dict[str, Any] | None = None,
) -> None:
    """Blocking form of ``wait_for_kafka_async``; safe to call with or without a running loop."""
    coro_factory = lambda: wait_for_kafka_async(bootstrap, timeout, alive=alive, client=client)  # noqa: E731
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro_factory())
        return
    # Called from inside an event loop (e.g. an async entry point): run in a helper thread.
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="wait-for-kafka", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
