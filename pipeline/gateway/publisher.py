"""The gateway's Kafka producer: publish a request's events and wait for the acks.

``acks=all``: a record is acknowledged once every in-sync replica has it, so the gateway's
200 means durable. While the producer is not connected, or when an acknowledgement does not
come within ``timeout`` seconds, ``publish`` raises ``KafkaUnavailable`` (the request is
answered 503 with Retry-After; the client keeps the event and retries). A timed-out record
may still arrive later: the pipeline collapses replays by ``event_id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger("errorstream.gateway")


_M = 0x5BD1E995
_WORDS = struct.Struct("<I").iter_unpack


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``, aiokafka's ``murmur2``), four
    bytes per step instead of one: the same partition for a key as every Kafka client."""
    length = len(data)
    h = 0x9747B28C ^ length
    body = length & ~3
    for (k,) in _WORDS(data[:body]):
        k = (k * _M) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    extra = length & 3
    if extra >= 3:
        h ^= data[body + 2] << 16
    if extra >= 2:
        h ^= data[body + 1] << 8
    if extra >= 1:
        h = ((h ^ data[body]) * _M) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


def key_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's ``DefaultPartitioner`` with the faster ``murmur2``."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


class KafkaUnavailable(Exception):
    """Kafka did not take the records (not connected, timeout, broker error)."""


class Publisher:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        timeout: float = 10.0,
        partitions: int = 4,
        replication_factor: int = 1,
        max_request_size: int = 2 * 1024 * 1024,
        linger_ms: int = 1,
    ) -> None:
        self.bootstrap, self.topic, self.timeout = bootstrap, topic, timeout
        self.linger_ms = linger_ms
        self.partitions, self.replication_factor = partitions, replication_factor
        self.max_request_size = max_request_size
        self._producer: AIOKafkaProducer | None = None
        self._healthy = False
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def ready(self) -> bool:
        return self._producer is not None and self._healthy

    def start(self) -> None:
        """Connect in the background (and reconnect after failures); never blocks."""
        self._task = asyncio.create_task(self._keep_connected())

    async def _connect(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="errorstream-gateway",
            acks="all",
            partitioner=key_partition,
            linger_ms=self.linger_ms,
            # many ~10 KB events per batch (the 16 KB default holds one or two)
            max_batch_size=1024 * 1024,
            max_request_size=self.max_request_size,
            request_timeout_ms=int(max(self.timeout, 1.0) * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), self.timeout)
        except BaseException:
            await producer.stop()
            raise
        await self._ensure_topic()
        self._producer, self._healthy = producer, True
        log.info("gateway: connected to Kafka at %s, publishing to %s", self.bootstrap, self.topic)

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            await asyncio.wait_for(admin.start(), self.timeout)
            if self.topic not in set(await admin.list_topics()):
                try:
                    await admin.create_topics(
                        [NewTopic(self.topic, self.partitions, self.replication_factor)]
                    )
                except TopicAlreadyExistsError:
                    pass
        except (KafkaError, TimeoutError, OSError) as exc:  # the worker may create it
            log.warning("gateway: could not check topic %s: %s", self.topic, exc)
        finally:
            await admin.close()

    async def _keep_connected(self) -> None:
        delay = 0.5
        while not self._closing:
            if self._producer is None:
                try:
                    await self._connect()
                    delay = 0.5
                except (KafkaError, TimeoutError, OSError) as exc:
                    log.warning("gateway: Kafka at %s unavailable: %s", self.bootstrap, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
            elif not self._healthy:  # after a failed publish: ready again once metadata loads
                try:
                    ok = await asyncio.wait_for(
                        self._producer.client.force_metadata_update(), self.timeout
                    )
                    self._healthy = bool(ok)
                except (KafkaError, TimeoutError, OSError):
                    pass
            await asyncio.sleep(1.0)

    async def publish(self, records: list[tuple[bytes, bytes]]) -> float:
        """Send ``records`` (key, value) and wait for every ack; the seconds it took."""
        producer = self._producer
        if producer is None or self._closing:
            raise KafkaUnavailable("not connected to Kafka")
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                futures = [await producer.send(self.topic, v, key=k) for k, v in records]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            self._healthy = False
            raise KafkaUnavailable(f"{type(exc).__name__}: {exc}") from None
        self._healthy = True
        return time.perf_counter() - start

    async def stop(self) -> None:
        """Flush what was sent (bounded by ``timeout``) and close."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), self.timeout)
            except (KafkaError, TimeoutError):
                pass
            self._producer = None
