"""The producer SDK against a real Kafka broker: what each capture path puts on the topic,
outage and recovery, crash-loop rate limiting, and secrets never reaching the topic."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import errorstream_sdk
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.kafka_local import KafkaBroker, default_cache_dir, free_ports

pytestmark = pytest.mark.integration


async def _consume(bootstrap: str, topic: str, n: int, timeout: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < n and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
        # anything beyond n would be a duplicate or an event that should have been dropped
        extra = await consumer.getmany(timeout_ms=1000)
        for part in extra.values():
            records.extend(part)
    finally:
        await consumer.stop()
    return records


def consume(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[Any]:
    return asyncio.run(_consume(bootstrap, topic, n, timeout))


@pytest.fixture
def sdk_options(kafka_bootstrap: str, unique_topic: str) -> dict[str, Any]:
    return {
        "service": "it-svc",
        "brokers": kafka_bootstrap,
        "topic": unique_topic,
        "install_hooks": False,
        "rng": lambda: 0.0,
        "environment": "test",
        "release": "9.9.9",
    }


@pytest.fixture(autouse=True)
def _close_sdk():
    yield
    errorstream_sdk.close(timeout=5)


def test_every_capture_path_arrives_with_expected_fields(
    kafka_bootstrap, unique_topic, sdk_options
):
    errorstream_sdk.init(**sdk_options)
    errorstream_sdk.set_tag("team", "payments")

    def charge() -> None:
        raise ValueError("card declined")

    ids = []
    try:
        charge()
    except ValueError:
        ids.append(errorstream_sdk.capture_exception(fingerprint=["{{ default }}", "charge"]))
    ids.append(errorstream_sdk.capture_message("cache warm", level="warning", logger="app.cache"))

    logger = logging.getLogger("it.app")
    logger.propagate = False
    handler = errorstream_sdk.ErrorstreamHandler()
    logger.addHandler(handler)
    try:
        try:
            {}["missing"]
        except KeyError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)

    @errorstream_sdk.capture_errors()
    def job() -> None:
        raise TimeoutError("job slow")

    with pytest.raises(TimeoutError):
        job()

    def wsgi_app(environ, start_response):
        raise PermissionError("forbidden")

    with pytest.raises(PermissionError):
        errorstream_sdk.ErrorstreamWSGIMiddleware(wsgi_app)(
            {
                "REQUEST_METHOD": "DELETE",
                "PATH_INFO": "/x",
                "QUERY_STRING": "a=1",
                "HTTP_HOST": "h.test",
                "wsgi.url_scheme": "http",
            },
            lambda s, h: None,
        )
    assert errorstream_sdk.flush(30)
    stats = errorstream_sdk.stats()
    assert (stats["captured"], stats["sent"], sum(stats["dropped"].values())) == (5, 5, 0)

    records = consume(kafka_bootstrap, unique_topic, 5)
    assert len(records) == 5
    events = [orjson.loads(r.value) for r in records]
    by_kind = {
        (e.get("exception") or {"values": [{"type": "message"}]})["values"][-1]["type"]: (r, e)
        for r, e in zip(records, events, strict=True)
    }
    assert set(by_kind) == {"ValueError", "message", "KeyError", "TimeoutError", "PermissionError"}
    for e in events:
        assert (e["service"], e["platform"], e["environment"], e["release"]) == (
            "it-svc",
            "python",
            "test",
            "9.9.9",
        )
        assert e["sdk"] == {"name": "errorstream.python", "version": "0.1.0"}
        assert e["tags"]["team"] == "payments"

    record, e = by_kind["ValueError"]
    assert e["event_id"] == ids[0]
    assert (
        record.key
        == f"it-svc:ValueError:{__name__}.test_every_capture_path_arrives_with_expected_fields.<locals>.charge".encode()
    )
    assert e["level"] == "error"
    assert e["fingerprint"] == ["{{ default }}", "charge"]
    [value] = e["exception"]["values"]
    assert (value["type"], value["value"], value["module"]) == (
        "ValueError",
        "card declined",
        "builtins",
    )
    assert value["mechanism"] == {"type": "generic", "handled": True}
    frame = value["stacktrace"]["frames"][-1]
    assert (frame["function"], frame["context_line"], frame["in_app"]) == (
        "test_every_capture_path_arrives_with_expected_fields.<locals>.charge",
        '        raise ValueError("card declined")',
        True,
    )

    record, e = by_kind["message"]
    assert (e["event_id"], e["message"], e["level"], e["logger"]) == (
        ids[1],
        "cache warm",
        "warning",
        "app.cache",
    )
    assert record.key == b"it-svc:message:app.cache"

    _, e = by_kind["KeyError"]
    assert (e["message"], e["logger"], e["level"]) == ("lookup failed", "it.app", "error")
    assert e["exception"]["values"][0]["mechanism"] == {"type": "logging", "handled": True}

    _, e = by_kind["TimeoutError"]
    assert e["exception"]["values"][0]["mechanism"] == {"type": "generic", "handled": False}

    _, e = by_kind["PermissionError"]
    assert e["request"] == {
        "method": "DELETE",
        "url": "http://h.test/x",
        "query_string": "a=1",
        "headers": {"Host": "h.test"},
    }
    assert e["tags"]["http.status_code"] == "500"
    assert e["exception"]["values"][0]["mechanism"] == {"type": "wsgi", "handled": False}


def test_broker_outage_and_recovery(tmp_path: Path, unique_topic: str):
    port, controller_port = free_ports(2)
    queue_size, overflow = 40, 7
    client = errorstream_sdk.init(
        service="it-svc",
        brokers=f"127.0.0.1:{port}",
        topic=unique_topic,
        install_hooks=False,
        queue_size=queue_size,
        rate_limit_burst=1000,
        rng=lambda: 0.0,
        max_retry_backoff_s=1.0,
    )
    for i in range(queue_size + overflow):
        errorstream_sdk.capture_message(f"during outage {i}", level="error")
    s = errorstream_sdk.stats()
    assert (s["captured"], s["queue_depth"], s["dropped"]["queue_full"], s["sent"]) == (
        queue_size + overflow,
        queue_size,
        overflow,
        0,
    )
    assert not client.transport.connected

    broker = KafkaBroker(tmp_path / "kafka", port, controller_port, cache_dir=default_cache_dir())
    try:
        broker.start()
        broker.wait_ready(90)
        assert errorstream_sdk.flush(60), errorstream_sdk.stats()
        s = errorstream_sdk.stats()
        assert (s["sent"], s["dropped"]["queue_full"], s["dropped"]["send_failed"]) == (
            queue_size,
            overflow,
            0,
        )
        records = consume(broker.bootstrap, unique_topic, queue_size)
        messages = [orjson.loads(r.value)["message"] for r in records]
        assert messages == [f"during outage {i}" for i in range(queue_size)]
    finally:
        errorstream_sdk.close(timeout=5)
        broker.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_crash_loop_is_rate_limited(kafka_bootstrap, unique_topic, sdk_options):
    clock = Clock()
    errorstream_sdk.init(**sdk_options, clock=clock, rate_limit_burst=10, rate_limit_per_second=1.0)
    for i in range(200):
        if i == 100:
            clock.now += 3.0  # three tokens come back
        try:
            int("not a number %d" % i)
        except ValueError:
            errorstream_sdk.capture_exception()
    assert errorstream_sdk.flush(30)
    s = errorstream_sdk.stats()
    assert (s["captured"], s["sent"], s["dropped"]["rate_limited"]) == (200, 13, 187)
    records = consume(kafka_bootstrap, unique_topic, 13)
    values = [orjson.loads(r.value)["exception"]["values"][0]["value"] for r in records]
    expected = [
        f"invalid literal for int() with base 10: 'not a number {i}'"
        for i in [*range(10), 100, 101, 102]
    ]
    assert values == expected
    assert len({r.key for r in records}) == 1 and len({r.partition for r in records}) == 1


def test_secrets_never_reach_the_topic(kafka_bootstrap, unique_topic, sdk_options):
    # built at run time, so they are not in this file's source lines (sent as frame context)
    token = "tok" + uuid.uuid4().hex
    password = "pw" + uuid.uuid4().hex[:12]
    cookie = "ck" + uuid.uuid4().hex
    api_key = "ak" + uuid.uuid4().hex
    email = f"user{uuid.uuid4().hex[:6]}@example.com"
    card = "4111 1111 1111 1111"
    errorstream_sdk.init(**sdk_options, include_locals=True)
    errorstream_sdk.add_breadcrumb(
        f"login with password={password}",
        category="auth",
        data={"Authorization": f"Bearer {token}", "ok": True},
    )
    errorstream_sdk.add_breadcrumb(f"GET https://u:{password}@api.test/v1?api_key={api_key}")

    def asgi_app(scope, receive, send):
        async def run():
            local_secret = password  # noqa: F841 - shows up in frame vars
            raise RuntimeError(f"charge failed for {email} card {card}")

        return run()

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/pay",
        "scheme": "https",
        "query_string": f"token={token}&n=1".encode(),
        "headers": [
            (b"host", b"shop.test"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"cookie", f"sessionid={cookie}".encode()),
            (b"x-api-key", api_key.encode()),
        ],
    }

    async def noop(*a):
        return {}

    with pytest.raises(RuntimeError):
        asyncio.run(errorstream_sdk.ErrorstreamASGIMiddleware(asgi_app)(scope, noop, noop))
    errorstream_sdk.capture_message(f"retrying with api_key={api_key} for {email}", level="error")
    assert errorstream_sdk.flush(30)
    records = consume(kafka_bootstrap, unique_topic, 2)
    assert len(records) == 2
    raw = b"".join(r.value for r in records)
    for secret in (token, password, cookie, api_key, email, card):
        assert secret.encode() not in raw, secret
    exc_event = orjson.loads(records[0].value)
    assert exc_event["request"]["headers"]["Authorization"] == "[Filtered]"
    assert exc_event["request"]["query_string"] == "token=[Filtered]&n=1"
    assert (
        exc_event["exception"]["values"][0]["value"]
        == "charge failed for ***@example.com card [Filtered card]"
    )
    assert exc_event["breadcrumbs"]["values"][0]["data"] == {
        "Authorization": "[Filtered]",
        "ok": True,
    }
