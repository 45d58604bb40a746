"""Receivers for the notifier's integration tests, all on 127.0.0.1: an HTTP server that
records every request (webhook and Slack endpoints, optionally failing first), an SMTP sink
(aiosmtpd), and helpers that read a topic and a consumer group's committed offsets."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiosmtpd.controller import Controller

from pipeline.kafka_local import free_ports
from pipeline.stages.alerts import make_alert


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers ``status`` to the first ``fail_first`` requests of a path, then 200
    (``fail_first=-1``: always fails)."""

    fail_first: dict[str, int] = field(default_factory=dict)
    status: int = 500
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Request(request.path, dict(request.headers), body, time.monotonic()))
        left = self.fail_first.get(request.path, 0)
        if left:
            self.fail_first[request.path] = left - 1 if left > 0 else left
            return web.Response(status=self.status, text="receiver says no")
        return web.Response(text="ok")

    async def start(self) -> HttpReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class _SmtpHandler:
    def __init__(self) -> None:
        self.mails: list[dict[str, Any]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.mails.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "message": message_from_bytes(envelope.content, policy=policy.default),
                "login": getattr(session, "es_login", None),
                "tls": bool(session.ssl),
            }
        )
        return "250 OK"


class SmtpSink:
    """aiosmtpd on 127.0.0.1 in its own thread; AUTH PLAIN/LOGIN accepted for one user;
    with ``tls_context``, STARTTLS is required."""

    def __init__(self, username: str = "", password: str = "", tls_context: Any = None) -> None:
        self.handler = _SmtpHandler()
        (self.port,) = free_ports(1)
        self.username, self.password = username, password
        kwargs: dict[str, Any] = {}
        if username:  # without TLS, AUTH in the clear (a loopback test sink only)
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        if tls_context is not None:  # STARTTLS offered and required, before AUTH too
            kwargs.update(tls_context=tls_context, require_starttls=True, auth_require_tls=True)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        ok = auth_data.login.decode() == self.username and (
            auth_data.password.decode() == self.password
        )
        if ok:
            session.es_login = auth_data.login.decode()
        return AuthResult(success=ok)

    @property
    def mails(self) -> list[dict[str, Any]]:
        return self.handler.mails

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def alert(n: int, **fields: Any) -> dict[str, Any]:
    """A valid alert (schema v1) from the pipeline's own builder."""
    record = {
        "event_id": f"{n:032x}",
        "level": fields.pop("level", "error"),
        "environment": fields.pop("environment", "production"),
        "_meta": {"ts": 1764756000.0 + n, "culprit": "app.views in pay", "category": "code"},
    }
    return (
        make_alert(
            fields.pop("kind", "new_issue"),
            service=fields.pop("service", "checkout"),
            fingerprint=f"{n:032x}",
            title=fields.pop("title", f"ZeroDivisionError: case {n}"),
            numbers={"count": 1},
            trigger=f"t{n}",
            now=1764756000.0 + n,
            record=record,
        )
        | fields
    )


async def produce(bootstrap: str, topic: str, values: list[Any], partition: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send_and_wait(topic, raw, partition=partition)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[Any]:
    """Every record of ``topic`` from the start, once ``expect`` arrived (or the timeout)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            polled = await consumer.getmany(timeout_ms=200)
            for messages in polled.values():
                out.extend(orjson.loads(m.value) for m in messages)
        polled = await consumer.getmany(timeout_ms=500)  # anything beyond what was expected
        for messages in polled.values():
            out.extend(orjson.loads(m.value) for m in messages)
    finally:
        await consumer.stop()
    return out


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Partition → committed offset of ``group`` on ``topic`` (absent: nothing committed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: o for tp, o in ends.items()}


async def eventually(predicate, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = predicate()
    return value


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
