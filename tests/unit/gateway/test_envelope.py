"""pipeline.gateway.envelope: Sentry's envelope framing, and bad framing refused."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.gateway.envelope import EnvelopeError, parse_envelope

EVENT = orjson.dumps({"event_id": "a" * 32, "message": "hello\nworld"})


def build(items, header=None, lengths=True, trailing=b"\n"):
    parts = [orjson.dumps(header or {"event_id": "a" * 32})]
    for item_type, payload in items:
        h = {"type": item_type}
        if lengths:
            h["length"] = len(payload)
        parts += [orjson.dumps(h), payload]
    return b"\n".join(parts) + trailing


def test_items_with_length():
    env = parse_envelope(build([("event", EVENT), ("attachment", b"a\nb\n\x00c")]))
    assert env.headers == {"event_id": "a" * 32}
    assert [(i.type, i.payload) for i in env.items] == [
        ("event", EVENT),
        ("attachment", b"a\nb\n\x00c"),
    ]


def test_items_without_length_end_at_the_newline_and_the_last_newline_is_optional():
    body = build([("session", b'{"sid":"x"}'), ("client_report", b"{}")], lengths=False)
    env = parse_envelope(body)
    assert [(i.type, i.payload) for i in env.items] == [
        ("session", b'{"sid":"x"}'),
        ("client_report", b"{}"),
    ]
    assert parse_envelope(body.rstrip(b"\n")).items == env.items


def test_mixed_crlf_empty_lines_and_header_only():
    body = b'{"dsn":"https://k@h/1"}\r\n\n{"type":"event"}\r\n{"message":"m"}\r\n'
    env = parse_envelope(body)
    assert env.items[0].payload == b'{"message":"m"}'
    assert parse_envelope(b'{"event_id":"x"}').items == ()
    assert parse_envelope(b'{"event_id":"x"}\n').items == ()


def test_zero_length_item_and_unknown_type_is_other():
    env = parse_envelope(b'{}\n{"type":"brand_new","length":0}\n\n')
    assert env.items[0].payload == b"" and env.items[0].metric_type == "other"


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "empty"),
        (b"not json\n", "envelope header is not valid JSON"),
        (b"[1]\n", "not a JSON object"),
        (b'{}\n{"length": 2}\nab', "has no type"),
        (b'{}\n{"type":"event","length":100}\n{"a":1}', "runs past the end"),
        (b'{}\n{"type":"event","length":3}\n{"a":1}\n', "longer than its length"),
        (b'{}\n{"type":"event","length":-1}\n', "non-negative"),
        (b'{}\n{"type":"event","length":"7"}\n', "non-negative"),
        (b"{}\n\xff\xfe\n", "not valid JSON"),
        (b'{}\n{"type":"event"', "not valid JSON"),
    ],
)
def test_bad_envelopes(body, message):
    with pytest.raises(EnvelopeError, match=message):
        parse_envelope(body)


def test_truncated_envelopes_are_refused_at_every_cut():
    body = build([("event", EVENT), ("attachment", b"0123456789")], trailing=b"")
    for cut in range(1, len(body)):
        try:
            env = parse_envelope(body[:cut])
        except EnvelopeError:
            continue
        # a cut right after a complete item is a well-formed shorter envelope
        assert all(i.payload in (EVENT, b"0123456789") for i in env.items)


def test_item_count_limit():
    body = b"{}\n" + b'{"type":"session","length":0}\n\n' * 5
    assert len(parse_envelope(body, max_items=5).items) == 5
    with pytest.raises(EnvelopeError, match="more than 4 items"):
        parse_envelope(body, max_items=4)


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_any_bytes_parse_or_raise_envelope_error(body):
    try:
        env = parse_envelope(body)
    except EnvelopeError:
        return
    assert isinstance(env.headers, dict)
    assert sum(len(i.payload) for i in env.items) <= len(body)
