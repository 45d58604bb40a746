"""pipeline.stages.formats: which format an ingest message is in (content-type header, else
shape), the service of a Sentry payload, and that Sentry payloads become exactly the v1
events the gateway makes of them (one conversion)."""

from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decoder import decode_batch
from pipeline.gateway.envelope import parse_envelope
from pipeline.gateway.ingest import IngestLimits, from_envelope, from_sentry_payload
from pipeline.gateway.scrub import GatewayScrubber
from pipeline.grouping import GroupingConfig, group_event
from pipeline.metrics import Metrics
from pipeline.settings import ConfigError, load_settings
from pipeline.stages.decode import decode_event
from pipeline.stages.formats import (
    ENVELOPE,
    SENTRY,
    UNKNOWN,
    V1,
    IngestFormats,
    decode_message,
    fallback_event_id,
    ingest_formats,
    parse_service_sources,
    sentry_service,
)
from pipeline.stages.records import read_by_fingerprint_line
from schemas import example_paths, invalid_expectations

NOW = 1_764_583_200.0
SOURCE = ("events", 0, 7)
V1_EVENT = {"event_id": "a" * 32, "timestamp": NOW, "service": "api", "message": "m"}
SENTRY_PAYLOADS = {p.name: orjson.loads(p.read_bytes()) for p in example_paths("sentry", "valid")}


def decode(raw: bytes, headers=(), formats: IngestFormats | None = None):
    return decode_message(raw, headers, formats, received_at=NOW, source=SOURCE)


def envelope_bytes(*payloads: dict, header: dict | None = None, extra=()) -> bytes:
    parts = [orjson.dumps(header or {})]
    for p in payloads:
        body = orjson.dumps(p)
        parts += [orjson.dumps({"type": "event", "length": len(body)}), body]
    for item_type, body in extra:
        parts += [orjson.dumps({"type": item_type}), body]
    return b"\n".join(parts) + b"\n"


# -- detection ----------------------------------------------------------------------------
def test_v1_event_by_shape_is_decoded_as_before():
    raw = orjson.dumps(V1_EVENT)
    message = decode(raw)
    assert message.format == V1 and message.invalid is None
    assert [e.event for e in message.events] == [decode_event(raw).event]


@pytest.mark.parametrize("path", example_paths("event", "invalid"), ids=lambda p: p.name)
def test_invalid_v1_examples_keep_their_reason_and_error(path):
    """A v1 event that misses `service` and has no Sentry-only key stays a v1 error."""
    raw = path.read_bytes()
    old = decode_event(raw)
    message = decode(raw)
    assert message.events == [] and message.invalid == old
    assert message.format == (UNKNOWN if old.reason == "json" else V1)
    assert invalid_expectations("event")[path.name]["reason"] == message.invalid.reason


@pytest.mark.parametrize("name", sorted(SENTRY_PAYLOADS))
def test_sentry_payload_by_shape(name):
    message = decode(orjson.dumps(SENTRY_PAYLOADS[name]))
    assert message.invalid is None and message.format == SENTRY
    assert len(message.events) == 1
    assert message.events[0].event["event_id"] == SENTRY_PAYLOADS[name]["event_id"]


@pytest.mark.parametrize("path", example_paths("sentry", "invalid"), ids=lambda p: p.name)
def test_invalid_sentry_examples_name_the_format(path):
    expected = invalid_expectations("sentry")[path.name]
    message = decode(path.read_bytes())
    assert message.format == SENTRY and message.events == []
    assert message.invalid.reason == expected["reason"]
    assert message.invalid.error.startswith("sentry event: ")
    assert expected["contains"] in message.invalid.error


def test_the_v1_issue_reports_shapes_are_sentry_now():
    """Top-level stacktrace and logentry without `service`: the shapes that used to be
    dead-lettered for `missing required field: service` / `needs an exception or a message`."""
    for payload in (
        {"platform": "go", "stacktrace": {"frames": [{"function": "main", "lineno": 3}]}},
        {"logentry": {"message": "disk %s full", "params": ["/var"]}},
        {"exception": {"values": [{"type": "E", "value": "v"}]}, "event_id": "b" * 32},
    ):
        message = decode(orjson.dumps(payload))
        assert message.format == SENTRY and message.invalid is None, message


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(st.sampled_from(["platform", "sdk", "logentry", "x"]), _json))
def test_any_object_with_service_is_v1_and_decoded_exactly_as_before(extra):
    """Whatever else it holds, an object with `service` is read as schema v1, with the very
    result (event or error) ``decode_event`` gives."""
    raw = orjson.dumps({**V1_EVENT, **extra})
    message = decode(raw)
    old = decode_event(raw)
    assert message.format == V1
    if message.invalid is None:
        assert [e.event for e in message.events] == [old.event]
    else:
        assert message.invalid == old


def test_message_only_without_service_is_v1_unless_the_header_says_sentry():
    raw = orjson.dumps({"event_id": "c" * 32, "timestamp": NOW, "message": "no service"})
    assert decode(raw).format == V1 and decode(raw).invalid.reason == "schema"
    message = decode(raw, [("content-type", b"application/vnd.sentry.event+json")])
    assert message.format == SENTRY and message.events[0].event["message"] == "no service"
    assert message.events[0].event["service"] == "sentry"


def test_content_type_header_overrides_the_shape():
    sentry_looking = dict(V1_EVENT, platform="python")
    v1 = decode(orjson.dumps(sentry_looking))
    assert v1.format == V1  # `service` wins by shape
    as_sentry = decode(
        orjson.dumps(sentry_looking), [("Content-Type", b"application/vnd.sentry.event+json")]
    )
    assert as_sentry.format == SENTRY  # header names are case-insensitive
    missing = {"event_id": "d" * 32, "timestamp": NOW, "exception": {"values": [{"type": "E"}]}}
    strict = decode(
        orjson.dumps(missing),
        [("content-type", b"application/vnd.errorstream.event.v1+json; charset=utf-8")],
    )
    assert strict.format == V1 and strict.invalid.error == "missing required field: service"
    shape = decode(orjson.dumps(missing), [("content-type", b"application/json")])
    assert shape.format == SENTRY and shape.invalid is None


def test_unknown_content_type_is_a_counted_dead_letter():
    message = decode(orjson.dumps(V1_EVENT), [("content-type", b"text/plain")])
    assert message.events == [] and message.invalid.reason == "content_type"
    assert "text/plain" in message.invalid.error and "application/x-sentry-envelope" in (
        message.invalid.error
    )


def test_envelope_by_shape_and_by_header():
    payload = SENTRY_PAYLOADS["python_exception_values.json"]
    raw = envelope_bytes(payload, extra=[("session", b"{}"), ("client_report", b"{}")])
    for headers in ((), [("content-type", b"application/x-sentry-envelope")]):
        message = decode(raw, headers)
        assert message.format == ENVELOPE and message.invalid is None
        assert [e.event["event_id"] for e in message.events] == [payload["event_id"]]
        assert message.skipped == {"session": 1, "client_report": 1}


def test_envelope_without_events_is_counted_not_dead_lettered():
    message = decode(envelope_bytes(extra=[("transaction", b"{}")]))
    assert (message.format, message.events, message.invalid) == (ENVELOPE, [], None)
    assert message.skipped == {"transaction": 1}


def test_broken_envelopes_are_dead_lettered_with_the_envelope_format():
    wrong_length = b'{}\n{"type":"event","length":5}\n{"message":"hello"}\n'
    message = decode(wrong_length)
    assert message.format == ENVELOPE and message.invalid.reason == "envelope"
    assert message.invalid.error.startswith("sentry envelope: ")
    bad_item = b'{}\n{"type":"event"}\n{"message": nope}\n'
    message = decode(bad_item)
    assert (message.format, message.invalid.reason) == (ENVELOPE, "json")
    assert "item 1 (event)" in message.invalid.error
    forced = decode(b"{not an envelope", [("content-type", b"application/x-sentry-envelope")])
    assert (forced.format, forced.invalid.reason) == (ENVELOPE, "envelope")


def test_json_lines_are_not_taken_for_an_envelope():
    lines = orjson.dumps(V1_EVENT) + b"\n" + orjson.dumps(V1_EVENT)
    message = decode(lines)
    assert (message.format, message.invalid.reason) == (UNKNOWN, "json")


def test_too_large_names_the_format_when_known():
    big = b" " * (1024 * 1024 + 1)
    assert decode(big).invalid.reason == "too_large" and decode(big).format == UNKNOWN
    labelled = decode(big, [("content-type", b"application/vnd.sentry.event+json")])
    assert labelled.format == SENTRY and labelled.invalid.error.startswith("sentry event: ")


# -- service ------------------------------------------------------------------------------
def test_service_sources_parse_and_reject():
    assert parse_service_sources("header:Service, tag:app; server_name,sdk.name") == (
        ("header", "service"),
        ("tag", "app"),
        ("server_name", ""),
        ("sdk.name", ""),
    )
    assert parse_service_sources("") == ()
    for bad in ("tag:", "hostname", "header"):
        with pytest.raises(ValueError, match="expected one of"):
            parse_service_sources(bad)


def test_service_rule_order():
    formats = IngestFormats(
        service_from=parse_service_sources("header:service, tag:service, server_name, sdk.name"),
        default_service="fallback",
    )
    payload = {"tags": {"service": "from-tag"}, "server_name": "web-3", "sdk": {"name": "sdk"}}
    assert sentry_service(payload, [("service", b"from-header")], formats) == "from-header"
    assert sentry_service(payload, [("service", b"  ")], formats) == "from-tag"
    assert sentry_service({**payload, "tags": [["service", "pair"]]}, (), formats) == "pair"
    assert sentry_service({**payload, "tags": {}}, (), formats) == "web-3"
    assert sentry_service({"sdk": {"name": "sentry.go"}}, (), formats) == "sentry.go"
    assert sentry_service({}, (), formats) == "fallback"


def test_service_from_settings_is_validated_and_shown():
    s = load_settings(
        env={
            "ERRORSTREAM_INGEST_SENTRY_SERVICE_FROM": "tag:app, server_name",
            "ERRORSTREAM_INGEST_SENTRY_DEFAULT_SERVICE": "unnamed",
        }
    )
    formats = ingest_formats(s)
    assert formats.service_from == (("tag", "app"), ("server_name", ""))
    assert formats.default_service == "unnamed" and formats.scrubber is not None
    assert s.masked()["ingest_sentry_service_from"] == "tag:app, server_name"
    with pytest.raises(ConfigError, match="ingest_sentry_service_from"):
        load_settings(env={"ERRORSTREAM_INGEST_SENTRY_SERVICE_FROM": "hostname"})


def test_service_lands_in_the_event_made_to_fit_the_schema():
    payload = {"platform": "go", "message": "m", "tags": {"service": "my service!"}}
    event = decode(orjson.dumps(payload)).events[0].event
    assert event["service"] == "my-service-"


# -- one conversion -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SENTRY_PAYLOADS))
def test_same_v1_event_as_the_gateway(name):
    payload = SENTRY_PAYLOADS[name]
    limits = IngestLimits()
    published = from_sentry_payload(  # what the gateway publishes
        copy.deepcopy(payload),
        service="checkout",
        received_at=NOW,
        limits=limits,
        scrubber=GatewayScrubber(),
    ).records[0][1]
    gateway = orjson.loads(published)
    formats = IngestFormats(scrubber=GatewayScrubber())
    kafka = decode(orjson.dumps(payload), [("service", b"checkout")], formats).events[0].event
    assert kafka == gateway
    gw_envelope = orjson.loads(
        from_envelope(
            parse_envelope(envelope_bytes(payload)),
            service="checkout",
            received_at=NOW,
            limits=limits,
            scrubber=GatewayScrubber(),
        ).records[0][1]
    )
    kafka_envelope = decode(envelope_bytes(payload), [("service", b"checkout")], formats)
    assert kafka_envelope.events[0].event == gw_envelope == gateway
    config = GroupingConfig()
    assert group_event(kafka, config).fingerprint == group_event(gateway, config).fingerprint


def test_missing_event_id_is_the_same_on_replay():
    raw = orjson.dumps({"platform": "go", "message": "no id"})
    first = decode(raw).events[0].event["event_id"]
    assert first == decode(raw).events[0].event["event_id"] == fallback_event_id(*SOURCE)
    other = decode_message(raw, (), None, received_at=NOW, source=("events", 0, 8))
    assert other.events[0].event["event_id"] != first


def test_missing_timestamp_is_the_time_received():
    message = decode(orjson.dumps({"platform": "go", "message": "no time"}))
    assert message.events[0].ts == NOW


# -- the batch: counters and dead letters -------------------------------------------------
def test_decode_batch_counts_by_format_and_dead_letters_name_it():
    metrics = Metrics()
    sentry = SENTRY_PAYLOADS["go_logentry_params.json"]
    records = [
        ("t", 0, 0, orjson.dumps(V1_EVENT), ()),
        ("t", 0, 1, orjson.dumps(sentry), ()),
        ("t", 0, 2, envelope_bytes(sentry, extra=[("session", b"{}")]), ()),
        ("t", 0, 3, b"{nope", ()),
        ("t", 0, 4, (example_paths("sentry", "invalid")[0]).read_bytes(), ()),
        ("t", 0, 5, orjson.dumps(V1_EVENT), [("content-type", b"text/csv")]),
    ]
    envelopes, dead = decode_batch(records, GroupingConfig(), 2, metrics, now=NOW)
    lines = [read_by_fingerprint_line(x)[0] for _, ls in envelopes.values() for x in ls]
    assert sorted(r["service"] for r in lines) == ["api", "inventory", "inventory"]
    letters = [orjson.loads(d) for d in dead]
    assert [(x["format"], x["reason"]) for x in letters] == [
        ("unknown", "json"),
        ("sentry", "json_too_deep"),
        ("unknown", "content_type"),
    ]
    assert [x["source"]["offset"] for x in letters] == [3, 4, 5]
    r = metrics.registry

    def sample(name, **labels):
        return r.get_sample_value(name, labels) or 0.0

    received = "errorstream_ingest_events_received_total"
    assert sample(received, format="v1") == 1
    assert sample(received, format="sentry") == 2
    assert sample(received, format="sentry_envelope") == 1
    assert sample(received, format="unknown") == 2
    assert sample("errorstream_ingest_events_accepted_total") == 3
    invalid = "errorstream_ingest_events_invalid_total"
    assert sample(invalid, reason="json_too_deep", format="sentry") == 1
    assert sample(invalid, reason="content_type", format="unknown") == 1
    assert sample("errorstream_ingest_envelope_items_skipped_total", type="session") == 1
