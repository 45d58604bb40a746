"""pipeline.gateway.ingest: bodies -> records, or refusals with the right status."""

from __future__ import annotations

import base64
import zlib

import orjson
import pytest
from errorstream_sdk.scrub import Scrubber

from pipeline.gateway import ingest
from pipeline.gateway.ingest import IngestLimits, Refused

LIMITS = IngestLimits(max_event_bytes=64 * 1024, max_json_depth=16, max_field_chars=8192)
EID = "0123456789abcdef0123456789abcdef"


def envelope(*payloads: bytes, header=None, extra=()) -> bytes:
    parts = [orjson.dumps(header or {"event_id": EID})]
    for p in payloads:
        parts += [orjson.dumps({"type": "event", "length": len(p)}), p]
    for item_type, p in extra:
        parts += [orjson.dumps({"type": item_type}), p]
    return b"\n".join(parts) + b"\n"


def from_env(body: bytes, scrub=True):
    return ingest.from_envelope(
        ingest.parse(body),
        service="checkout",
        received_at=1.7e9,
        limits=LIMITS,
        scrubber=Scrubber() if scrub else None,
    )


def test_event_item_becomes_a_record_and_other_items_are_counted():
    payload = orjson.dumps({"message": "password=hunter2 failed", "level": "warn"})
    body = envelope(payload, extra=[("session", b"{}"), ("client_report", b"{}"), ("x", b"")])
    batch = from_env(body)
    assert dict(batch.items) == {"event": 1, "session": 1, "client_report": 1, "other": 1}
    ((key, value),) = batch.records
    event = orjson.loads(value)
    assert key == EID.encode() and event["event_id"] == EID  # from the envelope header
    assert event["service"] == "checkout" and event["level"] == "warning"
    assert event["message"] == "password=[Filtered] failed"  # scrubbed server-side
    assert batch.reply_id == EID


def test_envelope_without_events_has_no_records_but_replies_with_its_id():
    batch = from_env(envelope(extra=[("transaction", b"{}"), ("check_in", b"{}")]))
    assert batch.records == [] and batch.reply_id == EID
    assert ingest.event_count(ingest.parse(envelope(b"{}", b"{}"))) == 2


@pytest.mark.parametrize(
    "payload, status, reason",
    [
        (b'{"message": "\xff\xfe bad utf-8"}', 400, "json"),
        (b'{"message": "cut', 400, "json"),
        (b"[1, 2]", 400, "json"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, 400, "json"),  # past the parser's depth
        (b'{"extra": {"a":' + b"[" * 20 + b"]" * 20 + b"}}", 400, "json_too_deep"),
        (orjson.dumps({"message": "m", "extra": {"k": "x" * 9000}}), 413, "field_too_large"),
        (orjson.dumps({"message": "m", "request": {"data": "x" * 9000}}), 413, "field_too_large"),
        (orjson.dumps({"extra": {"k": "x" * 70_000}}), 413, "event_too_large"),
    ],
)
def test_bad_event_payloads(payload, status, reason):
    with pytest.raises(Refused) as info:
        from_env(envelope(payload))
    assert (info.value.status, info.value.reason) == (status, reason)
    assert "Traceback" not in info.value.detail and "/" not in info.value.detail


def test_bounded_fields_are_cut_not_refused():
    batch = ingest.from_envelope(
        ingest.parse(envelope(orjson.dumps({"message": "x" * 70_000}))),
        service="s",
        received_at=1.7e9,
        limits=IngestLimits(max_event_bytes=1 << 20, max_field_chars=1 << 20),
        scrubber=None,
    )
    assert len(orjson.loads(batch.records[0][1])["message"]) == 65536
    # deep or huge JSON in a field the conversion does not keep is dropped, not refused
    (record,) = from_env(
        envelope(orjson.dumps({"message": "m", "spans": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}))
    ).records
    assert "spans" not in orjson.loads(record[1])


def test_bad_envelope_is_400():
    with pytest.raises(Refused) as info:
        ingest.parse(b'{}\n{"type":"event","length":99}\n{}')
    assert (info.value.status, info.value.reason) == (400, "envelope")


def test_store_json_and_legacy_base64_zlib():
    payload = orjson.dumps({"event_id": EID, "exception": [{"type": "E", "value": "v"}]})
    for body in (payload, base64.b64encode(zlib.compress(payload))):
        batch = ingest.from_store(
            body, service="s", received_at=1.7e9, limits=LIMITS, scrubber=None
        )
        assert batch.reply_id == EID
        assert orjson.loads(batch.records[0][1])["exception"]["values"][0]["type"] == "E"


def v1(**kw):
    return {"event_id": EID, "timestamp": 1.7e9, "service": "s", "message": "m"} | kw


def test_v1_object_pretty_printed_object_and_json_lines():
    one = ingest.from_v1(orjson.dumps(v1()), limits=LIMITS, scrubber=None)
    assert one.event_ids == [EID]
    pretty = ingest.from_v1(
        orjson.dumps(v1(), option=orjson.OPT_INDENT_2), limits=LIMITS, scrubber=None
    )
    assert pretty.event_ids == [EID]
    lines = b"\n".join(orjson.dumps(v1(event_id=f"{i:032x}")) for i in range(3)) + b"\n\n"
    batch = ingest.from_v1(lines, limits=LIMITS, scrubber=Scrubber())
    assert batch.event_ids == [f"{i:032x}" for i in range(3)] and batch.items["event"] == 3


def test_v1_one_bad_line_refuses_all_and_names_it():
    lines = orjson.dumps(v1()) + b"\n" + orjson.dumps({"service": "s"}) + b"\n"
    with pytest.raises(Refused) as info:
        ingest.from_v1(lines, limits=LIMITS, scrubber=None)
    assert info.value.status == 400 and info.value.reason == "schema"
    assert info.value.detail.startswith("line 2:")
    with pytest.raises(Refused):
        ingest.from_v1(b"  \n ", limits=LIMITS, scrubber=None)


def test_gateway_scrubber_filters_source_lines_and_remembers_them():
    from pipeline.gateway.scrub import GatewayScrubber, scrub_event

    scrubber = GatewayScrubber()
    line = '    db.connect(password="hunter2")'
    frame = {"function": "f", "context_line": line, "pre_context": [line], "post_context": []}
    event = {"exception": {"values": [{"type": "E", "stacktrace": {"frames": [frame]}}]}}
    scrub_event(event, scrubber)
    assert "hunter2" not in frame["context_line"] and "hunter2" not in frame["pre_context"][0]
    assert scrubber._source[line] == frame["context_line"]
