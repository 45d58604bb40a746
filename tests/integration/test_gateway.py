"""The real gateway process against the real broker: accepted bodies land on the ingest
topic as valid v1 events; every refusal has its status and leaves the topic empty; rate
limits, CORS, Kafka down, SIGTERM drain, and exact /metrics values."""

from __future__ import annotations

import gzip
import http.client
import threading
import time
import zlib

import brotli
import orjson
import pytest
import zstandard
from prometheus_client.parser import text_string_to_metric_families

from pipeline.kafka_local import free_ports
from pipeline.stages.decode import DecodedEvent, decode_event
from tests.integration.gateway_harness import (
    KEY,
    KEY_DISABLED,
    KEY_P2,
    KEY_ROTATED,
    GatewayProcess,
    gateway_env,
    read_topic,
)

pytestmark = pytest.mark.integration

AUTH = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1, sentry_key={KEY}"}


def post(gw, path, body: bytes, headers=None, chunked=False, chunk_delay=0.0):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        if chunked:

            def chunks():
                for i in range(0, len(body), 512):
                    if chunk_delay:
                        time.sleep(chunk_delay)
                    yield body[i : i + 512]

            conn.request("POST", path, body=chunks(), headers=headers or {}, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def envelope(*events: dict, header=None, extra=()) -> bytes:
    parts = [orjson.dumps(header or {})]
    for e in events:
        p = orjson.dumps(e)
        parts += [orjson.dumps({"type": "event", "length": len(p)}), p]
    for item_type, payload in extra:
        parts += [orjson.dumps({"type": item_type}), payload]
    return b"\n".join(parts) + b"\n"


def sentry_event(i: int, **kw) -> dict:
    return {
        "event_id": f"{i:032x}",
        "timestamp": "2026-12-01T10:00:00Z",
        "platform": "python",
        "exception": {
            "values": [
                {
                    "type": "KeyError",
                    "value": f"'sku-{i}'",
                    "stacktrace": {
                        "frames": [
                            {
                                "module": "shop.cart",
                                "function": "add",
                                "lineno": 10 + i,
                                "in_app": True,
                            }
                        ]
                    },
                }
            ]
        },
        **kw,
    }


@pytest.fixture
def gateway(kafka_bootstrap, tmp_path):
    gw = GatewayProcess(gateway_env(kafka_bootstrap), tmp_path / "gateway.log").start()
    yield gw
    gw.stop()


def test_accepted_bodies_arrive_as_valid_v1_events(gateway, kafka_bootstrap):
    gw = gateway
    sent = []
    # envelope, gzip, X-Sentry-Auth
    body = envelope(sentry_event(1), header={"event_id": f"{1:032x}"}, extra=[("session", b"{}")])
    status, _, reply = post(
        gw, "/api/1/envelope/", gzip.compress(body), AUTH | {"Content-Encoding": "gzip"}
    )
    assert (status, orjson.loads(reply)) == (200, {"id": f"{1:032x}"})
    sent.append(f"{1:032x}")
    # envelope, brotli, the second (rotated) key in the query string, chunked without
    # Content-Length or Content-Type
    status, _, reply = post(
        gw,
        f"/api/1/envelope/?sentry_key={KEY_ROTATED}",
        brotli.compress(envelope(sentry_event(2))),
        {"Content-Encoding": "br"},
        chunked=True,
    )
    assert status == 200 and orjson.loads(reply) == {"id": f"{2:032x}"}
    sent.append(f"{2:032x}")
    # envelope authenticated only by its header's dsn, zstd, project 2
    dsn = {"dsn": f"http://{KEY_P2}@127.0.0.1:{gw.port}/2"}
    body = zstandard.ZstdCompressor().compress(envelope(sentry_event(3), header=dsn))
    status, _, _ = post(gw, "/api/2/envelope/", body, {"Content-Encoding": "zstd"})
    assert status == 200
    sent.append(f"{3:032x}")
    # legacy store, deflate
    status, _, reply = post(
        gw,
        "/api/1/store/",
        zlib.compress(orjson.dumps(sentry_event(4))),
        AUTH | {"Content-Encoding": "deflate"},
    )
    assert (status, orjson.loads(reply)) == (200, {"id": f"{4:032x}"})
    sent.append(f"{4:032x}")
    # v1 JSON lines, Bearer key
    lines = b"\n".join(
        orjson.dumps(
            {"event_id": f"{i:032x}", "timestamp": 1.7e9, "service": "v1svc", "message": f"m {i}"}
        )
        for i in (5, 6)
    )
    status, _, reply = post(gw, "/v1/events", lines, {"Authorization": f"Bearer {KEY}"})
    assert (status, orjson.loads(reply)) == (200, {"ids": [f"{5:032x}", f"{6:032x}"]})
    sent += [f"{5:032x}", f"{6:032x}"]
    # an envelope of sessions / client reports only: accepted, nothing published
    status, _, _ = post(gw, "/api/1/envelope/", envelope(extra=[("client_report", b"{}")]), AUTH)
    assert status == 200

    events = read_topic(kafka_bootstrap, gw.topic)
    assert sorted(e["event_id"] for e in events) == sorted(sent)
    for e in events:
        assert isinstance(decode_event(orjson.dumps(e)), DecodedEvent)
    service = {e["event_id"]: e["service"] for e in events}
    assert service[f"{1:032x}"] == "checkout" and service[f"{3:032x}"] == "payments"
    assert service[f"{5:032x}"] == "v1svc"


def _deep(n: int) -> bytes:
    return b'{"message": "m", "extra": {"deep": ' + b"[" * n + b"]" * n + b"}}"


BAD = [
    # (name, path, body, headers, expected status)
    ("no key", "/api/1/envelope/", envelope(sentry_event(1)), {}, 401),
    ("wrong key", "/api/1/envelope/?sentry_key=" + "f" * 32, envelope(sentry_event(1)), {}, 401),
    ("other project's key", "/api/2/envelope/", envelope(sentry_event(1)), AUTH, 401),
    (
        "disabled project",
        f"/api/3/store/?sentry_key={KEY_DISABLED}",
        orjson.dumps(sentry_event(1)),
        {},
        403,
    ),
    (
        "dsn of another project",
        "/api/1/envelope/",
        envelope(sentry_event(1), header={"dsn": f"http://{KEY}@h/2"}),
        {},
        401,
    ),
    ("truncated envelope", "/api/1/envelope/", envelope(sentry_event(1))[:-40], AUTH, 400),
    (
        "wrong length",
        "/api/1/envelope/",
        b'{}\n{"type":"event","length":5}\n{"message":"hello"}\n',
        AUTH,
        400,
    ),
    (
        "invalid utf-8",
        "/api/1/envelope/",
        b'{}\n{"type":"event"}\n{"message":"\xff\xfe"}\n',
        AUTH,
        400,
    ),
    ("not an object", "/api/1/store/", b"[1, 2, 3]", AUTH, 400),
    ("deeply nested", "/api/1/store/", _deep(200), AUTH, 400),
    (
        "huge field",
        "/api/1/store/",
        orjson.dumps({"message": "m", "extra": {"blob": "x" * 300_000}}),
        AUTH,
        413,
    ),
    (
        "huge event",
        "/api/1/store/",
        orjson.dumps({"message": "m", "extra": {str(i): "x" * 1000 for i in range(1200)}}),
        AUTH,
        413,
    ),
    (
        "gzip bomb",
        "/api/1/envelope/",
        gzip.compress(b"\n" * (40 * 1024 * 1024)),
        AUTH | {"Content-Encoding": "gzip"},
        413,
    ),
    (
        "bad gzip",
        "/api/1/envelope/",
        b"\x1f\x8b not really",
        AUTH | {"Content-Encoding": "gzip"},
        400,
    ),
    (
        "unknown coding",
        "/api/1/envelope/",
        envelope(sentry_event(1)),
        AUTH | {"Content-Encoding": "lzma"},
        415,
    ),
    (
        "v1 schema",
        "/v1/events",
        orjson.dumps({"service": "s", "message": "m"}),
        {"Authorization": f"Bearer {KEY}"},
        400,
    ),
    (
        "v1 bad key",
        "/v1/events",
        orjson.dumps({"service": "s"}),
        {"Authorization": "Bearer nope-nope"},
        401,
    ),
    ("unknown path", "/api/1/nothing/", b"{}", AUTH, 404),
]


def test_bad_input_is_refused_and_nothing_reaches_kafka(kafka_bootstrap, tmp_path):
    env = gateway_env(kafka_bootstrap, gateway_max_body_bytes=2 * 1024 * 1024)
    gw = GatewayProcess(env, tmp_path / "gateway.log").start()
    try:
        for name, path, body, headers, expected in BAD:
            status, _, reply = post(gw, path, body, headers)
            assert status == expected, (name, status, reply)
            detail = orjson.loads(reply)["detail"]
            assert "Traceback" not in detail and "pipeline" not in detail, name
        # over the wire cap: announced by Content-Length, and chunked without one
        big = b"{" + b" " * (3 * 1024 * 1024) + b"}"
        assert post(gw, "/api/1/store/", big, AUTH)[0] == 413
        assert post(gw, "/api/1/store/", big, AUTH, chunked=True)[0] == 413
        assert read_topic(kafka_bootstrap, gw.topic) == []
        status, _, _ = post(gw, "/api/1/store/", orjson.dumps(sentry_event(9)), AUTH)
        assert status == 200  # the same process still accepts good input afterwards
        assert [e["event_id"] for e in read_topic(kafka_bootstrap, gw.topic)] == [f"{9:032x}"]
        assert "Traceback" not in gw.log()
    finally:
        gw.stop()


def test_rate_limit_answers_429_in_sentrys_format(kafka_bootstrap, tmp_path):
    env = gateway_env(kafka_bootstrap, gateway_rate_limit=0.2, gateway_rate_burst=2)
    gw = GatewayProcess(env, tmp_path / "gateway.log").start()
    try:
        statuses = []
        for i in range(4):
            status, headers, _ = post(gw, "/api/1/envelope/", envelope(sentry_event(i)), AUTH)
            statuses.append(status)
        assert statuses == [200, 200, 429, 429]
        assert headers["Retry-After"] == "5"
        assert headers["X-Sentry-Rate-Limits"] == "5:error;default:key:key_rate_limit"
        # another key has its own bucket; envelopes without events cost nothing
        assert (
            post(
                gw,
                "/api/2/envelope/",
                envelope(sentry_event(7)),
                {"X-Sentry-Auth": f"sentry_key={KEY_P2}"},
            )[0]
            == 200
        )
        assert post(gw, "/api/1/envelope/", envelope(extra=[("session", b"{}")]), AUTH)[0] == 200
        ids = sorted(e["event_id"] for e in read_topic(kafka_bootstrap, gw.topic))
        assert ids == [f"{0:032x}", f"{1:032x}", f"{7:032x}"]
    finally:
        gw.stop()


def test_cors_only_for_configured_origins(kafka_bootstrap, tmp_path):
    env = gateway_env(kafka_bootstrap, gateway_cors_origins="https://shop.example")
    gw = GatewayProcess(env, tmp_path / "gateway.log").start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        pre = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
        conn.request("OPTIONS", "/api/1/envelope/", headers=pre)
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        assert r.getheader("Access-Control-Allow-Origin") == "https://shop.example"
        assert "x-sentry-auth" in r.getheader("Access-Control-Allow-Headers")
        conn.request(
            "OPTIONS", "/api/1/envelope/", headers=pre | {"Origin": "https://evil.example"}
        )
        r = conn.getresponse()
        r.read()
        assert r.status == 403 and r.getheader("Access-Control-Allow-Origin") is None
        conn.close()
        status, headers, _ = post(
            gw,
            "/api/1/envelope/",
            envelope(sentry_event(1)),
            AUTH | {"Origin": "https://shop.example"},
        )
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://shop.example"
        status, headers, _ = post(
            gw,
            "/api/1/envelope/",
            envelope(sentry_event(2)),
            AUTH | {"Origin": "https://evil.example"},
        )
        assert "Access-Control-Allow-Origin" not in headers
    finally:
        gw.stop()


def test_kafka_down_is_503_with_retry_after_never_200(tmp_path):
    (dead,) = free_ports(1)
    env = gateway_env(f"127.0.0.1:{dead}", gateway_retry_after=7)
    gw = GatewayProcess(env, tmp_path / "gateway.log").start(want_ready=False)
    try:
        status, body = gw.get("/readyz")
        assert status == 503 and orjson.loads(body)["failing"] == ["kafka"]
        assert gw.get("/healthz")[0] == 200
        status, headers, reply = post(gw, "/api/1/envelope/", envelope(sentry_event(1)), AUTH)
        assert status == 503 and headers["Retry-After"] == "7"
        assert orjson.loads(reply) == {"detail": "temporarily unavailable"}
    finally:
        gw.stop()


def test_sigterm_drains_requests_in_flight(kafka_bootstrap, tmp_path):
    gw = GatewayProcess(gateway_env(kafka_bootstrap), tmp_path / "gateway.log").start()
    body = envelope(sentry_event(1, extra={"pad": "x" * 4000}))
    result = {}

    def slow():  # a body sent in 512-byte chunks over ~1 s
        result["r"] = post(gw, "/api/1/envelope/", body, AUTH, chunked=True, chunk_delay=0.1)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    gw.terminate()
    t.join(30)
    assert result["r"][0] == 200, result
    assert gw.proc.wait(20) == 0
    assert [e["event_id"] for e in read_topic(kafka_bootstrap, gw.topic)] == [f"{1:032x}"]
    assert "draining" in gw.log()


def scrape(gw) -> dict:
    status, text = gw.get("/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_exact_values(gateway, kafka_bootstrap):
    gw = gateway
    bodies = [
        (
            "/api/1/envelope/",
            envelope(sentry_event(1), extra=[("session", b"{}"), ("attachment", b"abc")]),
            AUTH,
        ),
        ("/api/1/envelope/", envelope(sentry_event(2), sentry_event(3)), AUTH),
        ("/api/1/store/", orjson.dumps(sentry_event(4)), AUTH),
        ("/api/1/envelope/", envelope(sentry_event(5)), {}),  # 401
        ("/api/1/envelope/", b"garbage", AUTH),  # 400
    ]
    wire = 0
    for path, body, headers in bodies:
        post(gw, path, body, headers)
        wire += len(body)  # (the 401 too: without a key in the headers, the envelope's dsn is read)
    gz = gzip.compress(envelope(sentry_event(6)))
    post(gw, "/api/1/envelope/", gz, AUTH | {"Content-Encoding": "gzip"})
    wire += len(gz)
    m = scrape(gw)

    def v(name, **labels):
        return m.get((name, tuple(sorted(labels.items()))), 0.0)

    assert v("errorstream_gateway_requests_total", endpoint="envelope", status="200") == 3
    assert v("errorstream_gateway_requests_total", endpoint="store", status="200") == 1
    assert v("errorstream_gateway_requests_total", endpoint="envelope", status="401") == 1
    assert v("errorstream_gateway_requests_total", endpoint="envelope", status="400") == 1
    assert v("errorstream_gateway_items_total", type="event") == 5
    assert v("errorstream_gateway_items_total", type="session") == 1
    assert v("errorstream_gateway_items_total", type="attachment") == 1
    assert v("errorstream_gateway_events_published_total") == 5
    assert v("errorstream_gateway_rejects_total", reason="auth_missing") == 1
    assert v("errorstream_gateway_rejects_total", reason="envelope") == 1
    assert v("errorstream_gateway_received_bytes_total", stage="wire") == wire
    decompressed = wire - len(gz) + len(envelope(sentry_event(6)))
    assert v("errorstream_gateway_received_bytes_total", stage="decompressed") == decompressed
    # a key refused from the headers: answered before the body is read
    post(
        gw,
        "/api/1/envelope/",
        envelope(sentry_event(8)),
        {"X-Sentry-Auth": "sentry_key=" + "e" * 32},
    )
    m = scrape(gw)
    assert v("errorstream_gateway_rejects_total", reason="auth_invalid") == 1
    assert v("errorstream_gateway_received_bytes_total", stage="wire") == wire
    assert v("errorstream_gateway_publish_latency_seconds_count") == 4
    assert v("errorstream_gateway_publish_latency_seconds_sum") > 0
    assert len(read_topic(kafka_bootstrap, gw.topic)) == 5
