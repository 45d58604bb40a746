"""Delivery: a bounded queue drained by a daemon thread that owns an asyncio loop and the
aiokafka producer.

    calling thread                     errorstream-sdk thread (asyncio loop)
    --------------                     -------------------------------------
    submit(capture) -> deque  ──wake──▶ drain: process (build, scrub, encode) -> batch per
                                         partition (murmur2 of the key) -> producer.send_batch
        (drop-newest when full)          delivery callback: sent | retry with backoff | send_failed
                                         producer down: keep buffering, reconnect with backoff

The calling thread only appends to a ``collections.deque`` and, when the loop is idle,
schedules one wake-up (``call_soon_threadsafe``) for the whole burst that follows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from errorstream_sdk.config import Settings
from errorstream_sdk.stats import Stats

log = logging.getLogger("errorstream_sdk.transport")
_BATCH_EVERY = 512

# capture -> (key, value), or None when the capture was dropped (already counted)
Process = Callable[[Any], "tuple[bytes, bytes] | None"]


def pick_compression(setting: str) -> str | None:
    """``auto``: lz4 when aiokafka can do it (it needs ``cramjam``; the ``lz4`` package alone
    is not used by aiokafka), else gzip."""
    if setting == "none":
        return None
    if setting == "auto":
        from aiokafka import codec

        return "lz4" if codec.has_lz4() else "gzip"
    return setting


class MemoryTransport:
    """Same contract as ``KafkaTransport`` without a broker: ``drain()`` processes the queue
    synchronously into ``self.messages`` (for unit tests and dry runs)."""

    def __init__(self, settings: Settings, process: Process, stats: Stats) -> None:
        self._max = settings.queue_size
        self._process = process
        self._stats = stats
        self.queue: deque[Any] = deque()
        self.messages: list[tuple[bytes, bytes]] = []

    def start(self) -> None:
        pass

    def submit(self, item: Any) -> bool:
        if len(self.queue) >= self._max:
            return False
        self.queue.append(item)
        return True

    def full(self) -> bool:
        return len(self.queue) >= self._max

    def drain(self) -> None:
        while self.queue:
            item = self.queue.popleft()
            try:
                kv = self._process(item)
            except Exception:
                self._stats.drop("internal_error")
                continue
            if kv is not None:
                self.messages.append(kv)
                self._stats.count_sent()

    def depth(self) -> int:
        return len(self.queue)

    def in_flight(self) -> int:
        return 0

    def flush(self, timeout: float) -> bool:
        self.drain()
        return True

    def close(self, timeout: float) -> None:
        self.drain()


class KafkaTransport:
    def __init__(self, settings: Settings, process: Process, stats: Stats) -> None:
        self._s = settings
        self._process = process
        self._stats = stats
        self._queue: deque[Any] = deque()
        self._retry: deque[tuple[float, bytes, bytes, int]] = deque()
        self._busy = 0  # taken off the queue, fate not yet counted
        self._sleeping = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._producer: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="errorstream-sdk", daemon=True)
        self.connected = False
        self._partitions: list[int] | None = None
        self._partition_cache: dict[bytes, int] = {}
        self._partitioner: Any = None

    # -- calling threads ---------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5.0)

    @property
    def thread_ident(self) -> int | None:
        return self._thread.ident

    def submit(self, item: Any) -> bool:
        if len(self._queue) >= self._s.queue_size or self._stopping:
            return False
        self._queue.append(item)
        if self._sleeping:
            self._sleeping = False
            loop = self._loop
            if loop is not None and self._wake is not None:
                try:
                    loop.call_soon_threadsafe(self._wake.set)
                except RuntimeError:  # loop closed
                    pass
        return True

    def full(self) -> bool:
        return len(self._queue) >= self._s.queue_size

    def depth(self) -> int:
        return len(self._queue) + len(self._retry)

    def in_flight(self) -> int:
        return self._busy

    def idle(self) -> bool:
        return not self._queue and not self._retry and self._busy == 0

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stopping = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(max(0.1, deadline - time.monotonic()) + 1.0)

    # -- SDK thread --------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception:
            log.exception("errorstream SDK transport crashed")
        finally:
            lost = len(self._queue) + len(self._retry) + self._busy
            self._queue.clear()
            self._retry.clear()
            self._busy = 0
            if lost:
                self._stats.drop("send_failed", lost)
            try:
                loop.close()
            except Exception:
                pass

    def _new_producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        s = self._s
        return AIOKafkaProducer(
            bootstrap_servers=s.brokers,
            client_id="errorstream-sdk",
            acks="all" if s.acks in ("all", "-1") else int(s.acks),
            compression_type=pick_compression(s.compression),
            max_batch_size=s.max_batch_size,
            max_request_size=max(1_048_576, s.max_event_bytes + 4096),
            linger_ms=s.linger_ms,
            enable_idempotence=s.enable_idempotence,
            request_timeout_ms=s.request_timeout_ms,
            retry_backoff_ms=int(s.retry_backoff_s * 1000),
        )

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    async def _connect(self) -> bool:
        producer = self._new_producer()
        try:
            await producer.start()
        except Exception as e:
            log.debug("errorstream: broker not reachable (%s); buffering", e)
            try:
                await asyncio.wait_for(producer.stop(), 2.0)
            except Exception:
                pass
            return False
        from aiokafka.partitioner import DefaultPartitioner

        self._producer = producer
        self._partitioner = DefaultPartitioner()
        self.connected = True
        return True

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._ready.set()
        backoff = self._s.retry_backoff_s
        while not self._stopping:
            if self._producer is None:
                if not await self._connect():
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self._s.max_retry_backoff_s)
                    continue
                backoff = self._s.retry_backoff_s
            await self._drain()
            if self._stopping:
                break
            # idle: ask calling threads for one wake-up, then re-check to close the race
            self._sleeping = True
            self._wake.clear()
            if self._queue or self._ready_retries():
                self._sleeping = False
                continue
            await self._sleep(self._next_retry_in())
            self._sleeping = False
        await self._shutdown()

    def _ready_retries(self) -> bool:
        return bool(self._retry) and self._retry[0][0] <= time.monotonic()

    def _next_retry_in(self) -> float:
        if self._retry:
            return max(0.0, self._retry[0][0] - time.monotonic())
        return 1.0

    async def _drain(self) -> None:
        """Process queued captures into one record batch per partition (``create_batch`` /
        ``send_batch``: no per-message ``send()`` coroutine), submitting a batch when it is
        full, every ``_BATCH_EVERY`` events and when the queue is empty."""
        queue, process, retry = self._queue, self._process, self._retry
        popleft = queue.popleft
        cache = self._partition_cache
        batches: dict[int, tuple[Any, list[tuple[bytes, bytes]]]] = {}
        n = 0
        while not self._stopping:
            if retry and retry[0][0] <= time.monotonic():
                _, key, value, attempt = retry.popleft()
                await self._send(key, value, attempt)
                continue
            if not queue:
                break
            item = popleft()
            self._busy += 1
            try:
                kv = process(item)
                if kv is None:
                    self._busy -= 1
                    continue
                partition = cache.get(kv[0])
                if partition is None:
                    partition = await self._partition_for(kv[0])
            except Exception:
                self._busy -= 1
                self._stats.drop("internal_error")
                continue
            entry = batches.get(partition)
            if entry is None:
                entry = batches[partition] = (self._producer.create_batch(), [])
            if entry[0].append(key=kv[0], value=kv[1], timestamp=None) is None:
                await self._submit(partition, entry)
                entry = batches[partition] = (self._producer.create_batch(), [])
                if entry[0].append(key=kv[0], value=kv[1], timestamp=None) is None:
                    self._busy -= 1  # larger than a batch: let send() build its own
                    await self._send(kv[0], kv[1], 0)
                    continue
            entry[1].append(kv)
            n += 1
            if n == _BATCH_EVERY:
                n = 0
                for p, e in batches.items():
                    await self._submit(p, e)
                batches.clear()
                await asyncio.sleep(0)  # let delivery callbacks run
        for p, e in batches.items():
            await self._submit(p, e)

    async def _partition_for(self, key: bytes) -> int:
        """The default partitioner's choice (murmur2 of the key), cached per key."""
        p = self._partition_cache.get(key)
        if p is None:
            if self._partitions is None:
                parts = await self._producer.partitions_for(self._s.topic)
                self._partitions = sorted(parts)
            p = self._partitioner(key, self._partitions, self._partitions)
            if len(self._partition_cache) > 10_000:
                self._partition_cache.clear()
            self._partition_cache[key] = p
        return p

    async def _submit(self, partition: int, entry: tuple[Any, list[tuple[bytes, bytes]]]) -> None:
        batch, items = entry
        if not items:
            return
        batch.close()
        try:
            fut = await self._producer.send_batch(batch, self._s.topic, partition=partition)
        except Exception:
            for key, value in items:
                self._failed(key, value, 0)
            return
        fut.add_done_callback(lambda f: self._batch_delivered(f, items))

    def _batch_delivered(self, fut: asyncio.Future[Any], items: list[tuple[bytes, bytes]]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self._busy -= len(items)
            self._stats.count_sent(len(items))
        else:
            for key, value in items:
                self._failed(key, value, 0)

    async def _send(self, key: bytes, value: bytes, attempt: int) -> None:
        if attempt:
            self._busy += 1
        try:
            fut = await self._producer.send(self._s.topic, value, key=key)
        except Exception:
            self._failed(key, value, attempt)
            return
        fut.add_done_callback(lambda f: self._delivered(f, key, value, attempt))

    def _delivered(self, fut: asyncio.Future[Any], key: bytes, value: bytes, attempt: int) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self._busy -= 1
            self._stats.count_sent()
        else:
            self._failed(key, value, attempt)

    def _failed(self, key: bytes, value: bytes, attempt: int) -> None:
        self._busy -= 1
        if attempt < self._s.send_retries and not self._stopping:
            delay = min(self._s.retry_backoff_s * 2**attempt, self._s.max_retry_backoff_s)
            self._retry.append((time.monotonic() + delay, key, value, attempt + 1))
        else:
            self._stats.drop("send_failed")

    async def _shutdown(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5.0)
            except Exception:
                pass
