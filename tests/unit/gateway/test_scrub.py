"""pipeline.gateway.scrub: the gateway's scrubbing gives byte-identical results to the SDK's
rules (errorstream_sdk.scrub: every rule applied, no precheck; and the SDK's Scrubber on whole
events), checks the same limits as limits.check_json, and leaves converted events valid
against schema v1."""

from __future__ import annotations

import copy

import orjson
import pytest
from errorstream_sdk.scrub import RULES, Scrubber, may_hold_secret
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.gateway.limits import LimitExceeded, check_json
from pipeline.gateway.scrub import JOIN, GatewayScrubber, scrub_event, scrub_within
from pipeline.sentry import to_event_v1
from pipeline.stages.decode import DecodedEvent, validate_event

SECRETS = [
    "password=hunter2",
    "PASSWORD: 'hunter2'",
    'db.connect(password="hunter2")',
    "passwd=x",
    "api_key=abc123",
    "ApiKey: abc",
    "access-key=AKIAIOSFODNN7EXAMPLE",
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAIOSFODNN7EXAMPLE",
    "Authorization: Bearer abcdefghijklmnop",
    "authorization=Basic dXNlcjpwYXNzd29yZA==",
    "token abcdefgh12345678",
    "auth=x",
    "sig=deadbeef",
    "dsn=https://k@o1.ingest.example/1",
    "session_id=abc; other=1",
    "Cookie: sessionid=abc",
    "https://user:pass@db.example/x",
    "postgres://admin:s3cr3t@10.0.0.1:5432/db",
    "mail bob.smith+x@example.co.uk now",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
    "ghp_" + "a" * 36,
    "xoxb-1234567890-abcdef",
    "sk_live_" + "a" * 24,
    "card 4111 1111 1111 1111 ok",
    "card 4111-1111-1111-1111",
    "4111111111111111",
    "4111111111111112",  # not Luhn-valid: kept
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\nMII (truncated)",
    "secret_thing = 'x'",
    "my-token:abc",
    "credential\t=\tv",
    "x_auth=1",
    "pwd: p",
]
PLAIN = [
    "",
    "order 42 failed after 7 steps",
    "    total = cart.price(item, 1234)",
    "GET /api/orders/ab12cd34ef?page=3",
    "<session 3f2b8a1e-9c4d-4e5f-8a7b-1c2d3e4f5a6b>",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "phone 555 0100 555",
    "2026-12-03T10:00:00Z",
    "key error in lookup",
    "Basically fine",
    "tokenizer ready",
    "KeyError: 'user'",
    "a = {'k': 1}",
]
NON_ASCII = [
    "pässword=geheim",
    "password=geheim ünd",
    "\u212aey=x",  # Kelvin sign folds to k
    "ſession=x",
    "mail bób@example.com",
    "tøken abcdefgh12345678",
    "İAKIAIOSFODNN7EXAMPLE",
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662\u0663",
]
CORPUS = SECRETS + PLAIN + NON_ASCII

PIECES = st.sampled_from(
    [
        "password", "pass", "passwd", "token", "Token", "TOKEN", "Bearer", "bearer", "Basic",
        "basic", "api_key", "apikey", "ApiKey", "access_key", "private_key", "secret",
        "credential", "session", "session_id", "cookie", "signature", "authorization",
        "auth", "pwd", "sig", "dsn", "key", "AKIA", "ASIA", "AROA", "eyJ", "ghp_", "gho_",
        "xoxb-", "xoxs-", "sk_live_", "PRIVATE KEY", "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----", "://", "@", "example.com", "4111", "1111", " ", "-",
        "=", ":", "'", '"', "\t", "\n", "\x1c", ".", "_", "&", ";", "#", "/", "ä", "\u212a",
        "ſ", "0123456789", "ABCDEFGHIJKLMNOP",
    ]
)  # fmt: skip
ALPHABET = "aAbBkKpPsStTeEyYjJxXoOgGhHlLiI@:=-_ '\"\t\n0123456789./&;#ä\u212aſ"
STRINGS = st.lists(st.one_of(PIECES, st.text(alphabet=ALPHABET, max_size=6)), max_size=12).map(
    "".join
)


def every_rule(text: str) -> str:
    """The SDK's value rules, each one tried (no precheck, no memo)."""
    out, low = text, text.lower()
    for gate, pattern, replacement in RULES:
        if gate(out, low):
            out = pattern.sub(replacement, out)
            low = out.lower()
    return out


@pytest.mark.parametrize("text", CORPUS)
def test_corpus_strings_scrub_exactly_as_the_sdk_rules(text):
    ours = GatewayScrubber()
    assert ours.scrub_string(text) == every_rule(text) == Scrubber().scrub_string(text)
    assert ours.scrub_source_line(text) == every_rule(text)


def test_the_corpus_holds_secrets_the_rules_change():
    changed = [t for t in SECRETS if every_rule(t) != t]
    assert len(changed) == len(SECRETS) - 1  # all but the card number that is not Luhn-valid
    assert all(may_hold_secret(t) for t in changed)
    # the common path: ids with many digits (UUIDs, hex) are not taken for card numbers
    assert not any(may_hold_secret(t) for t in PLAIN[:5])


@given(STRINGS)
@settings(max_examples=3000, deadline=None)
def test_generated_strings_scrub_exactly_as_the_sdk_rules(text):
    expected = every_rule(text)
    assert GatewayScrubber().scrub_string(text) == expected
    assert GatewayScrubber().scrub_source_line(text) == expected
    if not may_hold_secret(text):
        assert expected == text  # what skipping the rules relies on


@given(st.lists(st.sampled_from(["1", "4", "0", "9", " ", "-", "  ", "a", "x1", "."]), max_size=40))
@settings(max_examples=2000, deadline=None)
def test_digit_runs_the_card_rule_could_match_are_never_skipped(parts):
    text = "".join(parts)
    if not may_hold_secret(text):
        assert every_rule(text) == text


@given(st.lists(STRINGS, min_size=1, max_size=6))
@settings(max_examples=3000, deadline=None)
def test_one_precheck_over_joined_strings_implies_each(parts):
    if not may_hold_secret(JOIN.join(parts)):
        assert not any(may_hold_secret(p) for p in parts)
        assert all(every_rule(p) == p for p in parts)
    # and the other way round: a string that may hold a secret makes the joined text so
    if any(may_hold_secret(p) for p in parts):
        assert may_hold_secret(JOIN.join(parts))


def test_user_patterns_still_run_on_every_string():
    ours = GatewayScrubber(extra_patterns=(r"order \d+",))
    sdk = Scrubber(extra_patterns=(r"order \d+",))
    for text in CORPUS:
        assert ours.scrub_string(text) == sdk.scrub_string(text)
    assert ours.scrub_string("order 42 failed") == "[Filtered] failed"


# -- whole events --------------------------------------------------------------------------
def nested_secrets_payload(i: int) -> dict:
    secret = SECRETS[i % len(SECRETS)]
    plain = PLAIN[i % len(PLAIN)]
    frame = {
        "filename": "app/db.py",
        "module": "app.db",
        "function": "connect",
        "lineno": 10 + i,
        "pre_context": [plain, secret],
        "context_line": f'    db.connect(password="{i}")',
        "post_context": [NON_ASCII[i % len(NON_ASCII)]],
        "vars": {
            "password": "hunter2",
            "empty_token": "",
            "none_secret": None,
            "conn": {"dsn": "postgres://a:b@h/db", "opts": [secret, plain, {"api_key": 1}]},
            "text": secret,
            "n": i,
            "ok": True,
            "nested": {"deeper": {"Authorization": {"scheme": "Bearer", "v": "x" * 20}}},
        },
    }
    return {
        "event_id": f"{i:032x}",
        "timestamp": 1_760_000_000 + i,
        "platform": "python",
        "message": {"message": "login %s failed for %s", "params": [secret, {"token": "t"}]},
        "exception": {
            "values": [
                {"type": "ValueError", "value": f"bad {secret}", "stacktrace": {"frames": [frame]}}
            ]
        },
        "breadcrumbs": {
            "values": [
                {"message": secret, "category": "http", "data": {"url": secret, "cookie": "c"}},
                {"message": plain, "data": {}},
            ]
        },
        "request": {
            "method": "post",
            "url": f"https://u:p@shop.example/checkout?token=abc&i={i}",
            "query_string": [["session", "s1"], ["page", "2"]],
            "headers": {"Authorization": "Bearer abcdefghijkl", "X-Note": secret},
            "cookies": "sessionid=abc",
            "data": {"card": "4111 1111 1111 1111", "items": [plain, secret]},
            "env": {"REMOTE_ADDR": "10.0.0.1", "SECRET_KEY": "k"},
        },
        "tags": {"user_email": "bob@example.com", "token": "abc", "region": plain},
        "extra": {"payload": {"password": {"nested": "x"}, "list": [[secret]]}},
        "contexts": {"db": {"password": "p", "host": secret}, "runtime": {"name": "CPython"}},
        "user": {"id": "u1", "email": "bob@example.com", "data": {"api_key": "k", "x": secret}},
        "sdk": {"name": "sentry.python", "packages": [{"name": "pypi:x", "version": "1"}]},
    }


def sdk_rules_scrub_event(event: dict, s: Scrubber) -> dict:
    """The reference: each part through the SDK's Scrubber, as the gateway did before."""
    message = event.get("message")
    if isinstance(message, str):
        event["message"] = s.scrub_string(message)
    elif isinstance(message, dict):
        for key in ("message", "formatted"):
            if isinstance(message.get(key), str):
                message[key] = s.scrub_string(message[key])
        if isinstance(message.get("params"), list):
            message["params"] = s.scrub(message["params"])
    for exc in (event.get("exception") or {}).get("values", ()):
        if isinstance(exc.get("value"), str):
            exc["value"] = s.scrub_string(exc["value"])
        for f in (exc.get("stacktrace") or {}).get("frames", ()):
            if f.get("context_line"):
                f["context_line"] = s.scrub_string(f["context_line"])
            for key in ("pre_context", "post_context"):
                if key in f:
                    f[key] = [s.scrub_string(x) for x in f[key]]
            if "vars" in f:
                f["vars"] = s.scrub(f["vars"])
    for crumb in (event.get("breadcrumbs") or {}).get("values", ()):
        if isinstance(crumb.get("message"), str):
            crumb["message"] = s.scrub_string(crumb["message"])
        if crumb.get("data"):
            crumb["data"] = s.scrub(crumb["data"])
    for key in ("request", "tags", "extra", "contexts"):
        if event.get(key):
            event[key] = s.scrub(event[key])
    user = event.get("user")
    if user:
        for key in ("data", "geo"):
            if key in user:
                user[key] = s.scrub(user[key])
    return event


def converted(i: int) -> dict:
    return to_event_v1(nested_secrets_payload(i), service="shop", received_at=1.7e9)


@pytest.mark.parametrize("i", range(len(SECRETS) * 2))
@pytest.mark.parametrize("limits", [None, (64, 262144)])
def test_events_scrub_byte_identical_to_the_sdk_rules(i, limits):
    event = converted(i)
    expected = orjson.dumps(sdk_rules_scrub_event(copy.deepcopy(event), Scrubber()))
    depth, chars = limits or (None, None)
    got = orjson.dumps(scrub_event(event, GatewayScrubber(), depth, chars))
    assert got == expected
    assert b"hunter2" not in got and b"abcdefghijkl" not in got and b"4111 1111" not in got


def test_one_scrubber_over_many_events_equals_fresh_sdk_scrubbers():
    ours = GatewayScrubber()  # its memos carry over from event to event
    for i in list(range(60)) * 2:
        event = converted(i)
        expected = orjson.dumps(sdk_rules_scrub_event(copy.deepcopy(event), Scrubber()))
        assert orjson.dumps(scrub_event(event, ours, 64, 262144)) == expected


# -- limits in the same walk ----------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | STRINGS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(PIECES, st.text(max_size=6)), children, max_size=4)
    ),
    max_leaves=40,
)


def outcome(fn):
    try:
        return ("ok", orjson.dumps(fn()))
    except LimitExceeded as exc:
        return (exc.status, exc.reason)


@given(JSON, st.integers(1, 6), st.integers(1, 30))
@settings(max_examples=1500, deadline=None)
def test_scrub_within_is_check_json_then_the_sdks_scrub(value, depth, chars):
    def reference():
        check_json(value, depth, chars)
        return Scrubber().scrub(value)

    expected = outcome(reference)
    got = outcome(lambda: scrub_within(value, GatewayScrubber(), depth, chars))
    if expected[0] == "ok" or got[0] == "ok":
        assert got == expected
    else:  # refused either way; with two violations either may be named first
        assert got[0] in (400, 413)


def test_limits_apply_under_a_secret_key_too():
    with pytest.raises(LimitExceeded) as info:
        scrub_within({"password": {"a": {"b": {}}}}, GatewayScrubber(), 3, 100)
    assert info.value.reason == "json_too_deep"
    with pytest.raises(LimitExceeded) as info:
        scrub_within({"token": "x" * 101}, GatewayScrubber(), 3, 100)
    assert info.value.reason == "field_too_large"
    assert scrub_within({"token": "x" * 100}, GatewayScrubber(), 3, 100) == {"token": "[Filtered]"}


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"request": {"headers": {"a": "x" * 101}}}, "field_too_large"),
        ({"request": {"cookies": "x" * 101}}, "field_too_large"),  # a secret key: filtered, checked
        ({"request": {"url": "https://x/" + "y" * 200}}, None),  # bounded by the conversion
        ({"sdk": {"name": "s", "packages": [{"name": "x" * 101}]}}, "field_too_large"),
        ({"user": {"id": 1, "data": {"a": [[[[1]]]]}}}, "json_too_deep"),
        ({"message": {"message": "%s", "params": ["x" * 101]}}, "field_too_large"),
        ({"breadcrumbs": [{"message": "m", "data": {"k": "x" * 101}}]}, "field_too_large"),
    ],
)
def test_free_form_limits_in_scrub_event(payload, reason):
    event = to_event_v1({"message": "m"} | payload, service="s", received_at=1.7e9)
    if reason is None:
        scrub_event(event, GatewayScrubber(), 4, 100)
        return
    with pytest.raises(LimitExceeded) as info:
        scrub_event(event, GatewayScrubber(), 4, 100)
    assert info.value.reason == reason


# -- what scrubbing lengthens is cut back: the event still fits schema v1 -------------------
def test_fields_lengthened_by_scrubbing_are_cut_to_their_bounds():
    at_bound = " a@b.io"  # 7 characters that the e-mail rule makes 9
    payload = {
        "message": "m" * (65536 - 7) + at_bound,
        "tags": {"t": "y" * (200 - 7) + at_bound, "u": "short a@b.io"},
        "request": {"method": "a@b.io" + "x" * 10, "url": "u" * (8192 - 7) + at_bound},
        "exception": [{"type": "E", "value": "v" * (65536 - 7) + at_bound}],
    }
    event = scrub_event(to_event_v1(payload, service="s", received_at=1.7e9), GatewayScrubber())
    assert len(event["message"]) == 65536 and event["message"].endswith(" ***@b.")
    assert len(event["tags"]["t"]) == 200 and event["tags"]["u"] == "short ***@b.io"
    assert event["request"]["method"] == "***@B.IOXXXXXXXX"
    assert len(event["request"]["url"]) == 8192
    assert len(event["exception"]["values"][0]["value"]) == 65536
    assert isinstance(validate_event(copy.deepcopy(event)), DecodedEvent)


BOUNDED = st.sampled_from([16, 64, 193, 194, 200, 4090, 8186, 65530])


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "message": st.tuples(BOUNDED, STRINGS),
            "tags": st.dictionaries(
                st.text(min_size=1, max_size=8), st.tuples(BOUNDED, STRINGS), max_size=3
            ),
            "method": st.tuples(BOUNDED, STRINGS),
            "url": st.tuples(BOUNDED, STRINGS),
            "value": st.tuples(BOUNDED, STRINGS),
            "line": st.tuples(BOUNDED, STRINGS),
        },
    )
)
@settings(max_examples=300, deadline=None)
def test_converted_and_scrubbed_events_always_validate(parts):
    def fill(pair):
        n, tail = pair
        return "x" * n + " " + tail + " a@b.io"

    payload: dict = {"message": fill(parts["message"]) if "message" in parts else "m"}
    if "tags" in parts:
        payload["tags"] = {k: fill(v) for k, v in parts["tags"].items()}
    request = {k: fill(parts[k]) for k in ("method", "url") if k in parts}
    if request:
        payload["request"] = request
    if "value" in parts or "line" in parts:
        frame = {"function": "f", "context_line": fill(parts.get("line", (1, "")))}
        payload["exception"] = [
            {
                "type": "E",
                "value": fill(parts.get("value", (1, ""))),
                "stacktrace": {"frames": [frame]},
            }
        ]
    event = to_event_v1(payload, service="s", received_at=1.7e9)
    event = scrub_event(event, GatewayScrubber(), 64, 1 << 20)
    assert isinstance(validate_event(copy.deepcopy(event)), DecodedEvent)
