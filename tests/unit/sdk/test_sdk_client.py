from __future__ import annotations

import json
from pathlib import Path

import errorstream_sdk
import pytest
from errorstream_sdk.config import settings_from

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "event.v1.json"


def test_queue_full_drops_newest_and_counts(make_sdk, sent_events):
    client = make_sdk(queue_size=3)
    ids = [errorstream_sdk.capture_message(f"m{i}", level="error") for i in range(5)]
    assert ids[3] is None and ids[4] is None and all(ids[:3])
    assert client.snapshot()["queue_depth"] == 3
    assert [e["message"] for e in sent_events(client)] == ["m0", "m1", "m2"]
    s = client.snapshot()
    assert (s["captured"], s["sent"], s["dropped"]["queue_full"], s["queue_depth"]) == (5, 3, 2, 0)


def test_oversize_event_is_truncated_to_fit(make_sdk, sent_raw):
    client = make_sdk(max_event_bytes=8 * 1024, max_string_length=100_000)
    for i in range(100):
        errorstream_sdk.add_breadcrumb("crumb %d " % i + "x" * 200)
    errorstream_sdk.capture_message("y" * 50_000, level="error")
    [(_, raw)] = sent_raw(client)
    assert len(raw) <= 8 * 1024
    event = json.loads(raw)
    assert event["message"].startswith("yyy") and event["message"].endswith("...")
    assert "breadcrumbs" not in event
    assert client.snapshot()["truncated"] == 1


def test_long_strings_capped_up_front(make_sdk, sent_events):
    client = make_sdk(max_string_length=1000)
    errorstream_sdk.capture_message("z" * 5000, level="error")
    [event] = sent_events(client)
    assert len(event["message"]) == 1000
    assert client.snapshot()["truncated"] == 1


def test_event_that_cannot_fit_is_dropped_as_oversize(make_sdk, sent_events):
    client = make_sdk(max_event_bytes=1024)
    errorstream_sdk.capture_message(
        "m", level="error", tags={f"t{i}": "v" * 150 for i in range(60)}
    )
    assert sent_events(client) == []
    assert client.snapshot()["dropped"]["oversize"] == 1


def test_never_raises_into_host_code(sdk, monkeypatch, sent_events):
    class Evil(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str exploded")

    assert errorstream_sdk.capture_exception(Evil()) is not None  # unprintable value is fine
    [event] = sent_events(sdk)
    assert event["exception"]["values"][0]["value"] == "<unprintable Evil object>"

    def boom(*a, **k):
        raise RuntimeError("internal")

    monkeypatch.setattr("errorstream_sdk.client.extract_chain", boom)
    assert errorstream_sdk.capture_exception(ValueError("x")) is None
    monkeypatch.setattr(sdk.builder, "build", boom)
    assert errorstream_sdk.capture_message("hello", level="error") is not None
    assert len(sent_events(sdk)) == 1  # still only Evil: processing failed on the SDK side
    monkeypatch.setattr(sdk.transport, "submit", boom)
    assert errorstream_sdk.capture_message("again", level="error") is None
    assert sdk.snapshot()["dropped"]["internal_error"] == 3
    errorstream_sdk.capture_exception(object())  # not an exception at all
    assert sdk.snapshot()["dropped"]["internal_error"] == 4


def test_api_is_noop_before_init():
    errorstream_sdk.close()
    assert errorstream_sdk.capture_message("x") is None
    assert errorstream_sdk.capture_exception(ValueError()) is None
    assert errorstream_sdk.flush(0.1) is True
    assert errorstream_sdk.stats()["captured"] == 0


def test_stats_shape(sdk):
    assert errorstream_sdk.stats() == {
        "captured": 0,
        "sent": 0,
        "dropped": {
            "sampled": 0,
            "rate_limited": 0,
            "queue_full": 0,
            "duplicate": 0,
            "oversize": 0,
            "send_failed": 0,
            "internal_error": 0,
        },
        "queue_depth": 0,
        "in_flight": 0,
        "truncated": 0,
    }


def test_event_fields(make_sdk, sent_events):
    client = make_sdk(environment="prod", release="1.2.3")
    errorstream_sdk.set_user({"id": 7, "email": "u@example.com", "password": "nope"})
    errorstream_sdk.set_tag("region", "eu")
    errorstream_sdk.add_breadcrumb("clicked", category="ui", data={"x": 1})
    try:
        raise ValueError("bad")
    except ValueError:
        eid = errorstream_sdk.capture_exception(fingerprint=["{{ default }}", "db"], tags={"k": 1})
    errorstream_sdk.capture_message("note", level="warning", logger="app.worker", order_id=42)
    exc_event, msg_event = sent_events(client)
    assert exc_event["event_id"] == eid and len(eid) == 32 and int(eid, 16) >= 0
    assert exc_event["level"] == "error"
    assert exc_event["platform"] == "python"
    assert exc_event["service"] == "unit-svc"
    assert exc_event["environment"] == "prod" and exc_event["release"] == "1.2.3"
    assert exc_event["sdk"] == {"name": "errorstream.python", "version": "0.1.0"}
    assert exc_event["fingerprint"] == ["{{ default }}", "db"]
    assert exc_event["tags"] == {"region": "eu", "k": "1"}
    assert exc_event["user"] == {"id": "7", "email": "u@example.com"}
    assert set(exc_event["contexts"]) == {"runtime", "os", "host"}
    crumb = exc_event["breadcrumbs"]["values"][0]
    assert {k: crumb[k] for k in ("category", "message", "level", "type", "data")} == {
        "category": "ui",
        "message": "clicked",
        "level": "info",
        "type": "default",
        "data": {"x": 1},
    }
    ts = exc_event["timestamp"]
    assert len(ts) == 27 and ts[10] == "T" and ts.endswith("Z") and ts[19] == "."
    assert msg_event["message"] == "note" and msg_event["logger"] == "app.worker"
    assert msg_event["level"] == "warning" and "exception" not in msg_event
    assert msg_event["contexts"]["extra"] == {"order_id": 42}


def test_events_match_the_event_schema(make_sdk, sent_events):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    client = make_sdk(include_locals=True, environment="test", release="r1")
    errorstream_sdk.add_breadcrumb(None, category=None)
    errorstream_sdk.set_user({"id": "1"})
    try:
        try:
            raise KeyError("a")
        except KeyError as e:
            raise ValueError("b") from e
    except ValueError:
        errorstream_sdk.capture_exception(
            fingerprint=["{{ default }}"],
            request={
                "method": "GET",
                "url": "http://x/y",
                "query_string": "",
                "headers": {"A": "b"},
            },
        )
    errorstream_sdk.capture_message("m" * 10, level="debug", tags={"x" * 100: "y" * 300})
    events = sent_events(client)
    assert len(events) == 2
    for event in events:
        jsonschema.validate(event, schema)


@pytest.mark.parametrize(
    ("options", "env", "key"),
    [
        ({}, {}, "ERRORSTREAM_SERVICE"),
        ({"service": "bad service!"}, {}, "service"),
        ({"service": "s"}, {"ERRORSTREAM_QUEUE_SIZE": "lots"}, "ERRORSTREAM_QUEUE_SIZE"),
        ({"service": "s", "queue_size": 0}, {}, "queue_size"),
        ({"service": "s"}, {"ERRORSTREAM_BROKERS": "nohost"}, "brokers"),
        ({"service": "s", "sample_rates": {"warning": 2}}, {}, "sample_rates"),
        ({"service": "s"}, {"ERRORSTREAM_SAMPLE_RATES": "loud=0.5"}, "sample_rates"),
        ({"service": "s", "compression": "brotli"}, {}, "compression"),
        ({"service": "s", "acks": "1"}, {}, "enable_idempotence"),
        ({"service": "s", "scrub_patterns": ["("]}, {}, "scrub_patterns"),
        ({"service": "s", "no_such_option": 1}, {}, "no_such_option"),
        ({"service": "s"}, {"ERRORSTREAM_INCLUDE_LOCALS": "maybe"}, "ERRORSTREAM_INCLUDE_LOCALS"),
    ],
)
def test_invalid_config_names_the_key(options, env, key):
    with pytest.raises(ValueError, match=key):
        settings_from(env, **options)


def test_config_from_environment():
    s = settings_from(
        {
            "ERRORSTREAM_SERVICE": "api",
            "ERRORSTREAM_BROKERS": "k1:9092,k2:9093",
            "ERRORSTREAM_TOPIC": "t",
            "ERRORSTREAM_ENVIRONMENT": "staging",
            "ERRORSTREAM_RELEASE": "abc",
            "ERRORSTREAM_SAMPLE_RATES": "warning=1.0,debug=0",
            "ERRORSTREAM_QUEUE_SIZE": "50",
            "ERRORSTREAM_IN_APP_INCLUDE": "a, b",
        },
        release="override",
    )
    assert (s.service, s.brokers, s.topic, s.environment, s.release) == (
        "api",
        "k1:9092,k2:9093",
        "t",
        "staging",
        "override",
    )
    assert s.sample_rates == {"fatal": 1.0, "error": 1.0, "warning": 1.0, "info": 0.1, "debug": 0.0}
    assert s.queue_size == 50 and s.in_app_include == ("a", "b")
    d = settings_from({}, service="x")
    assert (d.brokers, d.topic, d.acks, d.enable_idempotence) == (
        "127.0.0.1:9092",
        "errorstream-events",
        "all",
        True,
    )


def test_metrics_collector(sdk):
    prometheus_client = pytest.importorskip("prometheus_client")
    from errorstream_sdk.metrics import register_collector

    registry = prometheus_client.CollectorRegistry()
    register_collector(registry)
    errorstream_sdk.capture_message("a", level="error")
    errorstream_sdk.capture_message("a", level="error")
    sdk.transport.drain()
    assert registry.get_sample_value("errorstream_sdk_sent_total") == 1
    assert registry.get_sample_value("errorstream_sdk_dropped_total", {"reason": "duplicate"}) == 1
    assert registry.get_sample_value("errorstream_sdk_queue_depth") == 0


def test_sdk_imports_without_pipeline_dependencies():
    import subprocess
    import sys

    code = (
        "import sys; import errorstream_sdk, errorstream_sdk.metrics; "
        "bad = {'faust', 'chdb', 'clickhouse_connect', 'prometheus_client'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": ":".join(sys.path)})


def test_rfc3339_matches_datetime():
    import datetime
    import random

    from errorstream_sdk.event import rfc3339

    rng = random.Random(7)
    stamps = [rng.uniform(0, 4e9) for _ in range(2000)]
    stamps += [1.7e9 + 0.9999996, 1.7e9 + 0.0000005, 1.7e9 + 0.5, 0.0, 59.9999999]
    for ts in stamps:
        want = datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert rfc3339(ts) == want, ts


def test_event_ids_are_unique_uuid4_hex():
    import uuid

    from errorstream_sdk.client import new_event_id

    ids = {new_event_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    for eid in list(ids)[:100]:
        u = uuid.UUID(hex=eid)
        assert u.version == 4 and u.variant == uuid.RFC_4122 and u.hex == eid
