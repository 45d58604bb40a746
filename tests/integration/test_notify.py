"""The notifier on the real broker: alerts produced to the alerts topic reach local HTTP and
SMTP receivers with exact bodies and signatures; bursts become digests; failing receivers are
retried, then dead-lettered; offsets move only after delivery or dead-lettering."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import time
import uuid
from pathlib import Path

import jsonschema
import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.metrics import Metrics
from pipeline.notify.digest import Message
from pipeline.notify.formatting import slack_payload, webhook_body
from pipeline.notify.notifier import Notifier
from pipeline.notify.routes import Route, RouteFilter
from pipeline.notify.signing import verify
from pipeline.settings import Settings
from pipeline.topics import ensure_topics
from tests.integration.notify_harness import (
    HttpReceiver,
    SmtpSink,
    alert,
    committed,
    end_offsets,
    eventually,
    produce,
    read_topic,
    self_signed_cert,
)

pytestmark = pytest.mark.integration

ALERT_SCHEMA = orjson.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "alert.v1.json").read_bytes()
)


def notify_settings(bootstrap: str, **changes) -> Settings:
    tag = uuid.uuid4().hex[:8]
    base = Settings(
        kafka_bootstrap=bootstrap,
        app_id=f"es-notify-{tag}",
        topic_alerts=f"t-{tag}-alerts",
        topic_notify_dlq=f"t-{tag}-notify-dlq",
        partitions=2,
        notify_backoff_initial=0.05,
        notify_backoff_max=0.2,
        notify_web_port=0,
        shutdown_timeout=20,
    )
    return base.replace(**changes)


@contextlib.asynccontextmanager
async def running(settings: Settings, routes: tuple[Route, ...]):
    await ensure_topics(settings, [settings.topic_alerts, settings.topic_notify_dlq])
    metrics = Metrics(CollectorRegistry())
    notifier = Notifier(settings, metrics, routes=routes)
    task = asyncio.ensure_future(notifier.run())
    try:
        assert await eventually(lambda: notifier.readiness()["kafka"] or task.done(), 30)
        if task.done():
            task.result()
        yield notifier
    finally:
        notifier.stop()
        await asyncio.wait_for(task, 30)


def sample(metrics: Metrics, name: str, **labels) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_each_channel_gets_its_alerts_with_exact_bodies_and_signature(kafka_bootstrap):
    settings = notify_settings(kafka_bootstrap)
    http = await HttpReceiver().start()
    try:
        with SmtpSink(username="es", password="pw") as smtp:
            routes = (
                Route(
                    "hook",
                    "webhook",
                    RouteFilter(service=("checkout",)),
                    digest_window=0,
                    url=http.url("/hook"),
                    secret="s3cret",
                ),
                Route(
                    "chat",
                    "slack",
                    RouteFilter(kind=("regression",)),
                    digest_window=0,
                    url=http.url("/slack"),
                ),
                Route(
                    "mail",
                    "email",
                    RouteFilter(priority=("high",)),
                    digest_window=0,
                    smtp_host="127.0.0.1",
                    smtp_port=smtp.port,
                    username="es",
                    password="pw",
                    mail_from="errorstream@example.com",
                    mail_to=("oncall@example.com",),
                ),
            )
            a1 = alert(1)  # checkout new_issue error → hook only
            a2 = alert(2, service="billing", kind="regression")  # → chat
            a3 = alert(3, service="billing", level="fatal")  # priority high (derived) → mail
            a4 = alert(4, service="search", level="warning")  # no route takes it
            for a in (a1, a2, a3, a4):
                jsonschema.validate(a, ALERT_SCHEMA)
            async with running(settings, routes) as notifier:
                await produce(kafka_bootstrap, settings.topic_alerts, [a1, a2, a3, a4])
                assert await eventually(lambda: len(http.requests) == 2 and len(smtp.mails) == 1)
                (hook,) = http.to("/hook")
                assert hook.body == webhook_body(
                    Message("hook", (a1,), (None,), 0.0)
                )  # the exact bytes
                assert hook.json()["alerts"] == [a1] and hook.json()["digest"] is False
                assert hook.json()["text"] == (
                    "[new_issue] checkout/production: ZeroDivisionError: case 1"
                )
                ts = hook.headers["X-Errorstream-Timestamp"]
                sig = hook.headers["X-Errorstream-Signature"]
                assert sig.startswith("sha256=") and abs(int(ts) - time.time()) < 60
                assert verify("s3cret", ts, sig, hook.body, now=time.time())
                assert not verify("other", ts, sig, hook.body, now=time.time())
                (chat,) = http.to("/slack")
                assert chat.json() == slack_payload(Message("chat", (a2,), (None,), 0.0))
                assert "X-Errorstream-Signature" not in chat.headers
                (mail,) = smtp.mails
                assert mail["login"] == "es"
                assert (mail["from"], mail["to"]) == (
                    "errorstream@example.com",
                    ["oncall@example.com"],
                )
                # a long Subject is folded onto a continuation line; unfolded, it reads:
                assert mail["message"]["Subject"].strip() == (
                    "[errorstream] [new_issue] billing/production: ZeroDivisionError: case 3"
                )
                assert f"alert_id: {a3['alert_id']}" in mail["message"].get_content()
                # every alert finished (delivered, or taken by no route): all committed
                ends = await end_offsets(kafka_bootstrap, settings.topic_alerts, 2)
                assert ends == {0: 4, 1: 0}
                group = notifier.group_id
                assert await eventually_async(
                    lambda: committed(kafka_bootstrap, group, settings.topic_alerts), {0: 4}
                )
                m = notifier.metrics
                for route, channel in (("hook", "webhook"), ("chat", "slack"), ("mail", "email")):
                    labels = {"route": route, "channel": channel, "outcome": "delivered"}
                    assert sample(m, "errorstream_notify_deliveries_total", **labels) == 1
                assert sample(m, "errorstream_notify_alerts_received_total") == 4
                assert (
                    sample(m, "errorstream_notify_delivery_latency_seconds_count", channel="email")
                    == 1
                )
    finally:
        await http.stop()


async def eventually_async(read, expected, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    value = await read()
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = await read()
    assert value == expected
    return True


async def test_burst_becomes_one_digest_and_held_offsets_wait_for_it(kafka_bootstrap):
    settings = notify_settings(kafka_bootstrap)
    http = await HttpReceiver().start()
    window = 3.0
    route = Route("hook", "webhook", digest_window=window, url=http.url("/hook"), secret="k")
    try:
        async with running(settings, (route,)) as notifier:
            first = alert(1)
            await produce(kafka_bootstrap, settings.topic_alerts, [first])
            assert await eventually(lambda: len(http.requests) == 1)  # a quiet route: at once
            sent_first = http.requests[0].at
            burst = [alert(n, title="OperationalError: too many connections") for n in (2, 3, 4)]
            burst += [alert(5, kind="spike", title="TimeoutError")]
            await produce(kafka_bootstrap, settings.topic_alerts, burst)
            # while the digest is held, the committed offset stays at the first held alert
            await asyncio.sleep(1.0)
            assert len(http.requests) == 1
            assert notifier.ledger.pending() == 4
            group = notifier.group_id
            assert await committed(kafka_bootstrap, group, settings.topic_alerts) == {0: 1}
            assert await eventually(lambda: len(http.requests) == 2, timeout=10)
            digest = http.requests[1]
            assert digest.at - sent_first >= window - 0.05  # one message per window
            body = digest.json()
            assert body["digest"] is True and body["count"] == 4
            assert body["alerts"] == burst
            assert body["text"] == (
                "4 alerts in the last 3 seconds: "
                "3× [new_issue] checkout/production: OperationalError: too many connections; "
                "[spike] checkout/production: TimeoutError"
            )
            assert verify(
                "k",
                digest.headers["X-Errorstream-Timestamp"],
                digest.headers["X-Errorstream-Signature"],
                digest.body,
                now=time.time(),
            )
            await eventually_async(
                lambda: committed(kafka_bootstrap, group, settings.topic_alerts), {0: 5}
            )
            m = notifier.metrics
            assert sample(m, "errorstream_notify_digest_size_alerts_sum", route="hook") == 5
            assert sample(m, "errorstream_notify_digest_size_alerts_count", route="hook") == 2
    finally:
        await http.stop()


async def test_retry_after_receiver_failure_then_success(kafka_bootstrap):
    settings = notify_settings(kafka_bootstrap, notify_max_attempts=5)
    http = await HttpReceiver(fail_first={"/hook": 2}, status=503).start()
    route = Route("hook", "webhook", digest_window=0, url=http.url("/hook"))
    try:
        async with running(settings, (route,)) as notifier:
            a = alert(1)
            await produce(kafka_bootstrap, settings.topic_alerts, [a])
            assert await eventually(lambda: len(http.requests) == 3)
            await asyncio.sleep(0.5)
            assert len(http.requests) == 3  # delivered on the third attempt, then no more
            assert len({r.body for r in http.requests}) == 1  # the same message each time
            m = notifier.metrics
            assert (
                sample(m, "errorstream_notify_retries_total", route="hook", channel="webhook") == 2
            )
            labels = {"route": "hook", "channel": "webhook"}
            assert (
                sample(m, "errorstream_notify_deliveries_total", **labels, outcome="delivered") == 1
            )
            assert (
                sample(m, "errorstream_notify_deliveries_total", **labels, outcome="dead_lettered")
                == 0
            )
        assert await read_topic(kafka_bootstrap, settings.topic_notify_dlq, 0, timeout=1) == []
    finally:
        await http.stop()


async def test_failing_receivers_go_to_the_dead_letter_topic(kafka_bootstrap):
    settings = notify_settings(kafka_bootstrap, notify_max_attempts=3)
    http = await HttpReceiver(fail_first={"/down": -1, "/gone": -1}).start()
    routes = (
        Route("down", "webhook", RouteFilter(kind=("new_issue",)), 0, url=http.url("/down")),
        Route("gone", "slack", RouteFilter(kind=("spike",)), 0, url=http.url("/gone")),
    )
    http.status = 500
    try:
        async with running(settings, routes) as notifier:
            a1, a2 = alert(1), alert(2, kind="spike")
            await produce(kafka_bootstrap, settings.topic_alerts, [a1, a2, b"not json"])
            dead = await read_topic(kafka_bootstrap, settings.topic_notify_dlq, 3)
            assert len(http.to("/down")) == 3 and len(http.to("/gone")) == 3
            by_route = {d["route"]: d for d in dead}
            assert set(by_route) == {"down", "gone", None}
            down = by_route["down"]
            assert (down["reason"], down["channel"], down["attempts"]) == (
                "retries_exhausted",
                "webhook",
                3,
            )
            assert down["alerts"] == [a1]
            assert down["error"] == "HTTP 500: receiver says no"
            assert down["sources"] == [
                {"topic": settings.topic_alerts, "partition": 0, "offset": 0}
            ]
            assert by_route["gone"]["alerts"] == [a2]
            invalid = by_route[None]
            assert invalid["reason"] == "invalid_alert" and invalid["payload"] == "not json"
            assert invalid["sources"][0]["offset"] == 2
            group = notifier.group_id
            await eventually_async(
                lambda: committed(kafka_bootstrap, group, settings.topic_alerts), {0: 3}
            )
            m = notifier.metrics
            assert (
                sample(
                    m,
                    "errorstream_notify_dead_letters_total",
                    route="down",
                    reason="retries_exhausted",
                )
                == 1
            )
            assert (
                sample(m, "errorstream_notify_dead_letters_total", route="", reason="invalid_alert")
                == 1
            )
    finally:
        await http.stop()


async def test_a_refusing_receiver_is_dead_lettered_without_retries(kafka_bootstrap):
    settings = notify_settings(kafka_bootstrap, notify_max_attempts=5)
    http = await HttpReceiver(fail_first={"/hook": -1}, status=410).start()
    route = Route("hook", "webhook", digest_window=0, url=http.url("/hook"))
    try:
        async with running(settings, (route,)):
            await produce(kafka_bootstrap, settings.topic_alerts, [alert(1)])
            (dead,) = await read_topic(kafka_bootstrap, settings.topic_notify_dlq, 1)
            assert (dead["reason"], dead["attempts"]) == ("rejected", 1)
            assert len(http.requests) == 1
    finally:
        await http.stop()


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command for a cert")
async def test_email_over_starttls_with_auth_and_a_digest(kafka_bootstrap, tmp_path):
    cert, key = self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    settings = notify_settings(kafka_bootstrap)
    with SmtpSink(username="es", password="pw", tls_context=context) as smtp:
        route = Route(
            "mail",
            "email",
            digest_window=2.0,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            starttls=True,
            smtp_ca_file=str(cert),
            username="es",
            password="pw",
            mail_from="errorstream@example.com",
            mail_to=("oncall@example.com", "lead@example.com"),
        )
        async with running(settings, (route,)) as notifier:
            alerts = [alert(n, title="TimeoutError: upstream") for n in range(1, 5)]
            await produce(kafka_bootstrap, settings.topic_alerts, alerts)
            assert await eventually(lambda: len(smtp.mails) == 2, timeout=15)
            first, digest = smtp.mails
            assert first["tls"] and digest["tls"] and first["login"] == "es"
            assert digest["to"] == ["oncall@example.com", "lead@example.com"]
            assert digest["message"]["Subject"].strip() == (
                "[errorstream] 3 alerts in the last 2 seconds: "
                "3× [new_issue] checkout/production: TimeoutError: upstream"
            )
            body = digest["message"].get_content().replace("\r\n", "\n")  # as on the wire
            assert body.startswith("3 alerts in the last 2 seconds\n")
            for a in alerts[1:]:
                assert f"alert_id: {a['alert_id']}" in body
            assert alerts[0]["alert_id"] not in body
            labels = {"route": "mail", "channel": "email", "outcome": "delivered"}
            # the server has the mail at the end of DATA; the client counts it after the reply
            delivered = lambda: sample(  # noqa: E731
                notifier.metrics, "errorstream_notify_deliveries_total", **labels
            )
            await eventually(lambda: delivered() == 2, timeout=5)
            assert delivered() == 2


async def test_polling_pauses_while_max_pending_alerts_are_unfinished(kafka_bootstrap):
    settings = notify_settings(kafka_bootstrap, notify_max_pending=2)
    http = await HttpReceiver().start()
    route = Route("hook", "webhook", digest_window=3.0, url=http.url("/hook"))
    try:
        async with running(settings, (route,)) as notifier:
            alerts = [alert(n) for n in range(1, 5)]
            await produce(kafka_bootstrap, settings.topic_alerts, alerts)
            assert await eventually(lambda: len(http.requests) == 1)  # a1 at once
            await asyncio.sleep(1.0)
            # a2 and a3 held fill the two places: a4 is not read until the digest goes out
            m = notifier.metrics
            assert notifier.ledger.pending() == 2
            assert sample(m, "errorstream_notify_alerts_received_total") == 3
            assert sample(m, "errorstream_notify_pending_alerts") == 2
            assert await eventually(lambda: len(http.requests) == 3, timeout=15)
            ids = [[a["alert_id"] for a in r.json()["alerts"]] for r in http.requests]
            assert ids == [[a["alert_id"]] for a in alerts[:1]] + [
                [alerts[1]["alert_id"], alerts[2]["alert_id"]],
                [alerts[3]["alert_id"]],
            ]
            assert sample(m, "errorstream_notify_alerts_received_total") == 4
    finally:
        await http.stop()


def delivered_count(http: HttpReceiver) -> int:
    return sum(len(r.json()["alerts"]) for r in http.requests)


async def test_a_rebalance_sends_held_digests_before_partitions_move(kafka_bootstrap):
    settings = notify_settings(kafka_bootstrap)
    http = await HttpReceiver().start()
    route = Route("hook", "webhook", digest_window=30.0, url=http.url("/hook"))
    a1, a2, a3, a4 = (alert(n) for n in range(1, 5))
    try:
        async with running(settings, (route,)) as first:
            await produce(kafka_bootstrap, settings.topic_alerts, [a1, a2], partition=0)
            assert await eventually(lambda: len(http.requests) == 1)
            await asyncio.sleep(1.0)
            assert first.ledger.pending() == 1  # a2 held for 30 s
            async with running(settings, (route,)) as second:  # same group: a rebalance
                # the first process gave up its partitions only after sending a2
                assert len(http.requests) == 2
                assert http.requests[1].at - http.requests[0].at < 25  # not at the window's end
                assert await committed(kafka_bootstrap, first.group_id, settings.topic_alerts) == {
                    0: 2
                }
                assert await eventually(
                    lambda: first.consumer.assignment() and second.consumer.assignment()
                )
                await produce(kafka_bootstrap, settings.topic_alerts, [a3], partition=0)
                await produce(kafka_bootstrap, settings.topic_alerts, [a4], partition=1)
                # a3 or a4 may wait for the end of a1's window (30 s) on the first process
                assert await eventually(lambda: delivered_count(http) == 4, timeout=40)
                await asyncio.sleep(1.0)
        ids = sorted(a["alert_id"] for r in http.requests for a in r.json()["alerts"])
        assert ids == sorted(a["alert_id"] for a in (a1, a2, a3, a4))  # each exactly once
        group = settings.app_id + "-notify"
        assert await committed(kafka_bootstrap, group, settings.topic_alerts) == {0: 3, 1: 1}
    finally:
        await http.stop()
