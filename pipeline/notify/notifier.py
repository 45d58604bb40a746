"""``errorstream notify``: the alerts topic → routes (webhook, Slack, e-mail), with digests,
retries and a dead-letter topic. The I/O of the notifier; every decision is in the pure
modules beside it.

    getmany (consumer group <app_id>-notify, manual commit)
      │ each alert: parse ── invalid ──▶ notify DLQ (reason invalid_alert)
      │             routes whose filter accepts it (routes.py)
      │             per route: Throttle.offer → send now, or hold for the digest (digest.py)
      ▼
    one delivery task per route, in order:  Message → format (formatting.py)
      │   → POST / SMTP, signed (signing.py); failure → retry after Backoff.delay (backoff.py)
      │   → still failing after notify_max_attempts, or refused → notify DLQ
      ▼
    OffsetLedger.finished (ledger.py) → commit each partition's lowest unfinished offset

An alert held in a digest buffer is unfinished, so its offset (and every later one of its
partition) is committed only after the digest was delivered or dead-lettered. SIGTERM or
SIGINT: stop polling, send every digest buffer now, wait for the deliveries (within
``shutdown_timeout``), commit, exit. Revoked partitions are drained the same way first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import aiosmtplib
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.health import build_ops_app
from pipeline.kafka_clients import client_config, group_options
from pipeline.metrics import Metrics
from pipeline.notify.backoff import Backoff, parse_retry_after
from pipeline.notify.digest import Message, Throttle
from pipeline.notify.formatting import email_message, slack_payload, webhook_body
from pipeline.notify.ledger import OffsetLedger, Token
from pipeline.notify.routes import Route
from pipeline.notify.signing import signed_headers
from pipeline.runner import EXIT_SHUTDOWN_TIMEOUT
from pipeline.settings import Settings
from pipeline.stages.alerts import rfc3339

log = logging.getLogger("errorstream.notify")

REQUIRED = ("alert_id", "kind", "service", "title")
USER_AGENT = "errorstream-notify/1"


class DeliveryFailed(Exception):
    """An attempt failed. ``retry`` False: the receiver refused it and retrying cannot help."""

    def __init__(self, detail: str, retry: bool = True, retry_after: float | None = None):
        super().__init__(detail)
        self.retry = retry
        self.retry_after = retry_after


def parse_alert(raw: bytes | None) -> dict[str, Any] | str:
    """The alert, or why it is not one. Lenient on purpose: only the fields every message
    needs are required, so alerts with fields added later still go out."""
    try:
        alert = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(alert, dict):
        return "not a JSON object"
    missing = [k for k in REQUIRED if not isinstance(alert.get(k), str)]
    return f"missing or not a string: {', '.join(missing)}" if missing else alert


def dead_letter_record(
    reason: str,
    *,
    route: Route | None,
    attempts: int,
    error: str,
    alerts: list[dict[str, Any]],
    sources: list[dict[str, Any]],
    now: float,
    payload: str | None = None,
) -> bytes:
    record: dict[str, Any] = {
        "reason": reason,
        "route": route.name if route else None,
        "channel": route.channel if route else None,
        "attempts": attempts,
        "error": error,
        "failed_at": rfc3339(now),
        "alerts": alerts,
        "sources": sources,
    }
    if payload is not None:
        record["payload"] = payload
    return orjson.dumps(record)


# -- senders: one attempt each ------------------------------------------------------------


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict) -> None:
    try:
        async with session.post(url, data=body, headers=headers) as response:
            text = (await response.text(errors="replace"))[:200]
            if 200 <= response.status < 300:
                return
            retry = response.status in (408, 425, 429) or response.status >= 500
            raise DeliveryFailed(
                f"HTTP {response.status}: {text}",
                retry=retry,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None


async def send_webhook(session: aiohttp.ClientSession, route: Route, message: Message) -> None:
    body = webhook_body(message)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if route.secret:
        headers.update(signed_headers(route.secret, int(time.time()), body))
    await post(session, route.url, body, headers)


async def send_slack(session: aiohttp.ClientSession, route: Route, message: Message) -> None:
    body = orjson.dumps(slack_payload(message))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    await post(session, route.url, body, headers)


async def send_email(route: Route, message: Message, timeout: float) -> None:
    mail = email_message(message, route.mail_from, route.mail_to)
    try:
        await aiosmtplib.send(
            mail,
            hostname=route.smtp_host,
            port=route.smtp_port,
            username=route.username or None,
            password=route.password or None,
            start_tls=route.starttls,
            use_tls=route.smtp_ssl,
            cert_bundle=route.smtp_ca_file or None,
            timeout=timeout,
        )
    except aiosmtplib.SMTPResponseException as exc:  # 5xx: refused for good; 4xx: try again
        raise DeliveryFailed(f"SMTP {exc.code}: {exc.message}", retry=exc.code < 500) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None


# -- the service --------------------------------------------------------------------------


class Notifier:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        routes: tuple[Route, ...] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.routes = settings.notify_routes if routes is None else routes
        self.rng = rng or random.Random()
        self.clock = clock
        self.backoff = Backoff(
            max_attempts=settings.notify_max_attempts,
            initial=settings.notify_backoff_initial,
            maximum=settings.notify_backoff_max,
        )
        self.throttles = {r.name: Throttle(r.name, r.digest_window) for r in self.routes}
        self.queues: dict[str, asyncio.Queue] = {}
        self.ledger = OffsetLedger()
        self.received_at: dict[Token, float] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.running = False
        self.stopping = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def group_id(self) -> str:
        return self.settings.notify_group or f"{self.settings.app_id}-notify"

    def readiness(self) -> dict[str, bool]:
        assigned = bool(self.consumer and self.consumer.assignment())
        return {"kafka": self.running and assigned, "not_stopping": not self.stopping}

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()

    async def run(self) -> None:
        s = self.settings
        timeout = aiohttp.ClientTimeout(total=s.notify_timeout)
        self.session = aiohttp.ClientSession(timeout=timeout)
        self.producer = AIOKafkaProducer(**client_config(s, "notify"), acks="all")
        self.consumer = AIOKafkaConsumer(
            **client_config(s, "notify"),
            **group_options(s),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.consumer.subscribe([s.topic_alerts], listener=_DrainOnRevoke(self))
        await self.producer.start()
        try:
            await self.consumer.start()
            for route in self.routes:
                self.queues[route.name] = asyncio.Queue()
                self._tasks.append(asyncio.ensure_future(self._deliver_loop(route)))
            self.running = True
            log.info(
                "notifier consuming %s as %s, %d route(s)",
                s.topic_alerts,
                self.group_id,
                len(self.routes),
            )
            while not self._stop.is_set():
                await self._step()
            await self.drain(s.shutdown_timeout)
        finally:
            self.running = False
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.consumer.stop()
            await self.producer.stop()
            await self.session.close()

    async def _step(self) -> None:
        assert self.consumer is not None
        room = self.settings.notify_max_pending - self.ledger.pending()
        if room <= 0:
            await asyncio.sleep(0.1)  # backpressure: deliveries are behind; poll no more
            polled: dict = {}
        else:
            polled = await self.consumer.getmany(timeout_ms=100, max_records=min(500, room))
        now = self.clock()
        for tp, messages in polled.items():
            for m in messages:
                await self._accept(tp, m.offset, m.value, now)
        for route in self.routes:
            if (message := self.throttles[route.name].due(now)) is not None:
                self.queues[route.name].put_nowait(message)
        await self.commit()

    async def _accept(self, tp: TopicPartition, offset: int, raw: bytes | None, now: float):
        self.metrics.notify_alerts_received.inc()
        alert = parse_alert(raw)
        if isinstance(alert, str):
            source = {"topic": tp.topic, "partition": tp.partition, "offset": offset}
            record = dead_letter_record(
                "invalid_alert",
                route=None,
                attempts=0,
                error=alert,
                alerts=[],
                sources=[source],
                now=time.time(),
                payload=(raw or b"").decode("utf-8", "replace"),
            )
            await self._dead_letter(record, key=b"", route_name="", reason="invalid_alert")
            log.warning("invalid alert sent to %s: %s", self.settings.topic_notify_dlq, alert)
            self.ledger.consumed(tp, offset, 0)
            return
        matching = [r for r in self.routes if r.match.matches(alert)]
        token = self.ledger.consumed(tp, offset, len(matching))
        if matching:
            self.received_at[token] = now
        for route in matching:
            self.metrics.notify_alerts_routed.labels(route.name).inc()
            message = self.throttles[route.name].offer(alert, token, now)
            if message is not None:
                self.queues[route.name].put_nowait(message)
        self.metrics.notify_pending.set(self.ledger.pending())

    async def commit(self) -> None:
        assert self.consumer is not None
        offsets = self.ledger.to_commit()
        if not offsets:
            return
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        except Exception as exc:  # a rebalance took the partitions: the new owner replays
            log.warning("notifier commit failed, alerts after the last commit replay: %s", exc)
            return
        self.ledger.committed(offsets)

    async def drain(self, timeout: float) -> bool:
        """Every digest buffer out now, deliveries finished (or ``timeout`` passed), commit.
        True when nothing was left unfinished."""
        for route in self.routes:
            if (message := self.throttles[route.name].flush()) is not None:
                self.queues[route.name].put_nowait(message)
        deadline = time.monotonic() + timeout
        while self.ledger.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self.commit()
        left = self.ledger.pending()
        if left:
            log.error(
                "%d alert(s) not delivered within %.0fs; they are delivered again by the "
                "next owner of their partitions",
                left,
                timeout,
            )
        return not left

    # -- deliveries -----------------------------------------------------------------------

    async def _deliver_loop(self, route: Route) -> None:
        queue = self.queues[route.name]
        latency = self.metrics.notify_delivery_latency.labels(route.channel)
        while True:
            message: Message = await queue.get()
            await self.deliver(route, message)  # delivered or dead-lettered: finished
            now = self.clock()
            for token in message.tokens:
                self.ledger.finished(token)
                started = self.received_at.get(token)
                if started is not None:
                    latency.observe(now - started)
                    if not self.ledger.is_waiting(token):
                        del self.received_at[token]
            self.metrics.notify_pending.set(self.ledger.pending())

    async def _attempt(self, route: Route, message: Message) -> None:
        assert self.session is not None
        if route.channel == "webhook":
            await send_webhook(self.session, route, message)
        elif route.channel == "slack":
            await send_slack(self.session, route, message)
        else:
            await send_email(route, message, self.settings.notify_timeout)

    async def deliver(self, route: Route, message: Message) -> None:
        """Attempts with backoff; the message ends delivered or dead-lettered."""
        labels = (route.name, route.channel)
        attempt = 0
        while True:
            attempt += 1
            try:
                try:
                    await self._attempt(route, message)
                except DeliveryFailed:
                    raise
                except Exception as exc:  # anything unforeseen counts as a failed attempt
                    raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
            except DeliveryFailed as exc:
                if exc.retry and attempt < self.backoff.max_attempts:
                    wait = self.backoff.delay(attempt, self.rng, exc.retry_after)
                    log.warning(
                        "route %s: attempt %d failed (%s); retrying in %.2fs",
                        route.name,
                        attempt,
                        exc,
                        wait,
                    )
                    self.metrics.notify_retries.labels(*labels).inc()
                    await asyncio.sleep(wait)
                    continue
                reason = "retries_exhausted" if exc.retry else "rejected"
                await self._dead_letter_message(route, message, reason, attempt, str(exc))
                self.metrics.notify_deliveries.labels(*labels, "dead_lettered").inc()
                self.metrics.notify_digest_size.labels(route.name).observe(len(message.alerts))
                return
            self.metrics.notify_deliveries.labels(*labels, "delivered").inc()
            self.metrics.notify_digest_size.labels(route.name).observe(len(message.alerts))
            return

    async def _dead_letter_message(
        self, route: Route, message: Message, reason: str, attempts: int, error: str
    ) -> None:
        sources = [
            {"topic": tp.topic, "partition": tp.partition, "offset": offset}
            for tp, offset in message.tokens
        ]
        record = dead_letter_record(
            reason,
            route=route,
            attempts=attempts,
            error=error,
            alerts=list(message.alerts),
            sources=sources,
            now=time.time(),
        )
        log.error(
            "route %s: %d alert(s) sent to %s after %d attempt(s): %s",
            route.name,
            len(message.alerts),
            self.settings.topic_notify_dlq,
            attempts,
            error,
        )
        await self._dead_letter(record, route.name.encode(), route.name, reason)

    async def _dead_letter(self, value: bytes, key: bytes, route_name: str, reason: str) -> None:
        """Until the broker has it: a dead letter that is not written is not finished."""
        assert self.producer is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.producer.send_and_wait(
                    self.settings.topic_notify_dlq, value=value, key=key or None
                )
                break
            except Exception as exc:  # broker unreachable: retry, loudly
                wait = self.backoff.delay(min(attempt, 10), self.rng)
                log.error("dead letter not written (%s); retrying in %.1fs", exc, wait)
                await asyncio.sleep(wait)
        self.metrics.notify_dead_letters.labels(route_name, reason).inc()


class _DrainOnRevoke(ConsumerRebalanceListener):
    """Before partitions move: digests out, deliveries finished, offsets committed, so the
    next owner starts after what this process delivered."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked and self.notifier.running:
            await self.notifier.drain(self.notifier.settings.shutdown_timeout)
            self.notifier.ledger.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


# -- entry point --------------------------------------------------------------------------


async def serve(settings: Settings, metrics: Metrics | None = None) -> int:
    from pipeline.kafka_local import KafkaUnavailable, wait_for_kafka_async
    from pipeline.topics import ensure_topics

    metrics = metrics or Metrics()
    try:
        await wait_for_kafka_async(settings.kafka_bootstrap, settings.kafka_ready_timeout)
    except KafkaUnavailable as exc:
        log.error("%s (kafka_bootstrap=%s)", exc, settings.kafka_bootstrap)
        return 2
    await ensure_topics(settings, [settings.topic_alerts, settings.topic_notify_dlq])
    if not settings.notify_routes:
        log.warning("no routes (notify_routes_file is empty): alerts are read and committed only")
    notifier = Notifier(settings, metrics)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, notifier.stop)
    runner = None
    if settings.notify_web_port:
        runner = web.AppRunner(build_ops_app(metrics.registry, notifier.readiness))
        await runner.setup()
        await web.TCPSite(runner, settings.web_host, settings.notify_web_port).start()
    task = asyncio.ensure_future(notifier.run())
    stopped = asyncio.ensure_future(notifier._stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():  # stopping: run() drains within shutdown_timeout
            log.info("stopping: digests out, deliveries finished, offsets committed")
            await asyncio.wait_for(asyncio.shield(task), timeout=settings.shutdown_timeout + 5)
        task.result()
    except TimeoutError:
        log.error("shutdown took longer than shutdown_timeout=%.1fs", settings.shutdown_timeout)
        return EXIT_SHUTDOWN_TIMEOUT
    finally:
        stopped.cancel()
        if runner is not None:
            await runner.cleanup()
    return 0


def run_notify(settings: Settings) -> int:
    from pipeline.logs import configure_logging

    configure_logging(settings)
    return asyncio.run(serve(settings))
