from __future__ import annotations

import errorstream_sdk
import orjson
from errorstream_sdk.scrub import FILTERED, RULES, Scrubber, luhn_valid, may_hold_secret
from hypothesis import given
from hypothesis import strategies as st

S = Scrubber()


def test_sensitive_headers_are_filtered_whole():
    headers = {
        "Authorization": "Bearer abc.def.ghi",
        "Cookie": "sessionid=s3cr3t",
        "Set-Cookie": "sid=s3cr3t; HttpOnly",
        "X-Api-Key": "k-123",
        "X-Auth-Token": "t-123",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "Accept": "text/html",
        "User-Agent": "curl/8",
    }
    assert S.scrub({"headers": headers}) == {
        "headers": {
            "Authorization": FILTERED,
            "Cookie": FILTERED,
            "Set-Cookie": FILTERED,
            "X-Api-Key": FILTERED,
            "X-Auth-Token": FILTERED,
            "Proxy-Authorization": FILTERED,
            "Accept": "text/html",
            "User-Agent": "curl/8",
        }
    }


def test_nested_dicts_and_lists():
    data = {"form": {"user": "bob", "password": "pw1", "items": [{"api_key": "k"}, {"n": 1}]}}
    assert S.scrub(data) == {
        "form": {"user": "bob", "password": FILTERED, "items": [{"api_key": FILTERED}, {"n": 1}]}
    }


def test_messages():
    cases = {
        "login failed password=hunter2 for bob": "login failed password=[Filtered] for bob",
        'payload {"api_key": "abc123", "n": 1}': 'payload {"api_key": [Filtered], "n": 1}',
        "Authorization: Bearer eyJabc.def": "Authorization: [Filtered]",
        "sent with Bearer abcdefghijklmn": "sent with Bearer [Filtered]",
        "contact alice.smith@example.com now": "contact ***@example.com now",
        "card 4111-1111-1111-1111 declined": "card [Filtered card] declined",
        "order 4111111111111112 shipped": "order 4111111111111112 shipped",  # not Luhn-valid
        "key AKIAIOSFODNN7EXAMPLE leaked": "key [Filtered] leaked",
        "jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4": "jwt [Filtered]",
        "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789": "token [Filtered]",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----!": "[Filtered private key]!",
        "the author: Bob": "the author: Bob",
    }
    for raw, want in cases.items():
        assert S.scrub_string(raw) == want, raw


def test_urls_userinfo_and_query_params():
    url = "https://bob:hunter2@db.example.com/x?token=abc&page=2&api_key=k1&client_secret=zz"
    assert S.scrub_string(url) == (
        "https://[Filtered]@db.example.com/x?token=[Filtered]&page=2&api_key=[Filtered]"
        "&client_secret=[Filtered]"
    )
    assert S.scrub_string("access_token=a1&state=ok") == "access_token=[Filtered]&state=ok"


def test_user_rules():
    s = Scrubber(extra_keys=("x-tenant-pin",), extra_patterns=(r"ORDER-\d{6}",))
    assert s.scrub({"X-Tenant-PIN": "1234", "other": "ORDER-123456 ok"}) == {
        "X-Tenant-PIN": FILTERED,
        "other": f"{FILTERED} ok",
    }


def test_luhn():
    assert luhn_valid("4111111111111111")
    assert luhn_valid("5500005555555559")
    assert not luhn_valid("4111111111111112")


def test_event_scrubbed_before_serialization(make_sdk, sent_raw):
    # context_lines=0: this test's own source lines (shipped as frame context) list the secrets
    client = make_sdk(scrub_keys=("tenant_pin",), context_lines=0)
    errorstream_sdk.add_breadcrumb(
        "db connect postgres://app:pgpass99@db/x",
        category="db",
        data={"password": "crumbpw", "rows": 3},
    )
    errorstream_sdk.set_tag("tenant_pin", "9876")
    req = {
        "method": "POST",
        "url": "https://h/p",
        "query_string": "token=qs-secret&a=1",
        "headers": {"Authorization": "Bearer hdr-secret-123"},
        "data": {"card": "4111 1111 1111 1111"},
    }
    try:
        raise RuntimeError("failed for carol@example.org with password=msgpw")
    except RuntimeError as e:
        errorstream_sdk.capture_exception(e, request=req, tags={"session": "tagsess"})
    [(_, raw)] = sent_raw(client)
    for secret in (
        b"pgpass99",
        b"crumbpw",
        b"9876",
        b"qs-secret",
        b"hdr-secret-123",
        b"4111 1111 1111 1111",
        b"carol@example.org",
        b"msgpw",
        b"tagsess",
    ):
        assert secret not in raw, secret
    event = orjson.loads(raw)
    assert event["request"]["query_string"] == "token=[Filtered]&a=1"
    assert event["breadcrumbs"]["values"][0]["data"] == {"password": FILTERED, "rows": 3}


# disjoint alphabets: the filler around the pair can never spell the secret itself (it once
# did: before="", after="aaaaaa", secret="aaaaaa" — the value was scrubbed, the filler not)
SECRET = st.text(alphabet="ijklmnopqrstuvwxyz0123456789", min_size=6, max_size=20)
FILLER = st.text(alphabet="abcdefgh ,.;:!?()[]", max_size=30)


@given(
    FILLER,
    SECRET,
    FILLER,
    st.sampled_from(["password", "api_key", "secret", "token", "passwd"]),
    st.sampled_from(["=", ": ", " = ", "="]),
)
def test_key_value_secrets_never_survive(before, secret, after, name, sep):
    text = f"{before} {name}{sep}{secret} {after}"
    assert secret not in S.scrub_string(text)


@given(st.text(max_size=200))
def test_scrubbing_is_idempotent(text):
    once = S.scrub_string(text)
    assert S.scrub_string(once) == once


# -- the common-path precheck: exact, never a way around a rule -------------------------------
_PIECES = [
    "password", "Passwd", "api_key", "API-KEY", "secret", "Token", "Bearer ", "basic ", "auth",
    "Authorization", "sig", "dsn", "pwd", "session_id", "cookie", "credential", "=", ":", " = ",
    "'", '"', " ", "\n", "-", "_", ".", "@", "://", "eyJhbGciOiJIUzI1", "AKIAIOSFODNN7EXAMPLE",
    "ghp_", "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "xoxb-", "sk_live_", "4111", " 1111", "0",
    "-----BEGIN RSA PRIVATE KEY-----", "alice@example.com", "x", "order", "sync", "KEY", "é",
]  # fmt: skip


def _full_rules(s: str) -> str:
    out, low = s, s.lower()
    for gate, pattern, replacement in RULES:
        if gate(out, low):
            out = pattern.sub(replacement, out)
            low = out.lower()
    return out


@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=8), max_size=14))
def test_precheck_false_means_no_rule_changes_the_string(parts):
    text = "".join(parts)
    if not may_hold_secret(text):
        assert _full_rules(text) == text
    assert S.scrub_string(text) == _full_rules(text)


def test_precheck_passes_plain_text_and_catches_each_rule():
    assert not may_hold_secret(f"order {12:>10} failed to sync: " + "x" * 520)
    assert not may_hold_secret("Failed to connect to db.internal:5432 (timeout=30s), retry 3")
    for secret in (
        "https://u:p@h",
        "mail bob@example.com",
        "-----BEGIN PRIVATE KEY-----",
        "xoxb-1234567890ab",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "sk_live_0123456789abcdef",
        "jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.x",
        "AKIAIOSFODNN7EXAMPLE",
        "Bearer abcdefghij",
        "db_password = 'x'",
        'payload {"api_key": "abc123"}',
        "card 4111 1111 1111 1111",
        "ſecret=x",  # non-ASCII: always the full rules
    ):
        assert may_hold_secret(secret), secret
    # the name far back in a long run before the separator (beyond the look-back window)
    long_name = "db_password" + "_x" * 60
    assert S.scrub_string(f"{long_name}=hunter2 ok") == f"{long_name}=[Filtered] ok"
    assert "hunter2" not in S.scrub_string(long_name + " " * 80 + ": hunter2")
