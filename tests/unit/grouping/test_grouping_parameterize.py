import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.grouping import GroupingConfig, PatternError, normalize_message, parameterize
from pipeline.grouping import patterns as builtin_patterns
from pipeline.grouping.parameterize import MAX_OUTPUT_CHARS
from pipeline.grouping.patterns import (
    BUILTIN_PATTERNS,
    BUILTIN_PATTERNS_V2,
    FIRST_CHARS,
    FIRST_CHARS_V2,
)

from . import reference_patterns

SENTRY_EXAMPLE = (
    "Wed Apr 17 22:31:45 2019: foobar.bazblafasel@example.invalid logged in (error 42) "
    "time spent 1234.33 --- correlation id 88ee7c66-29a9-4a4a-bc26-c72d76c5de14, checksum "
    "da39a3ee5e6b4b0d3255bfef95601890afd80709 (md5 d41d8cd98f00b204e9800998ecf8427e); payload "
    "timestamp 2019-04-17T20:29:05Z (submitted from 127.0.0.1 via "
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334 via ::1) at offset 0xfeedbeef"
)
SENTRY_EXPECTED = (
    "<date>: <email> logged in (error <int>) time spent <float> --- correlation id <uuid>, "
    "checksum <sha1> (md5 <md5>); payload timestamp <date> (submitted from <ip> via <ip> "
    "via <ip>) at offset <hex>"
)


def test_sentry_worked_example():
    assert normalize_message(SENTRY_EXAMPLE) == SENTRY_EXPECTED


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("testing testing 1, 2, 3", "testing testing <int>, <int>, <int>"),
        ("Test 1", "Test <int>"),
        (
            "Loading chunk 158 failed.\n(timeout: https://shop.example.com/static/js/158.js)",
            "Loading chunk <int> failed.\n(timeout: <url>)",
        ),
        ("mail bob.smith+tag@corp.example.org bounced", "mail <email> bounced"),
        ("GET https://api.example.com/v1/users/7?x=1 failed", "GET <url> failed"),
        ("DSN postgres://app:secret@db.internal:5432/shop down", "DSN <url> down"),
        ("cannot reach payments.example.com", "cannot reach <hostname>"),
        ("dial tcp 10.1.2.3:5432: connect: refused", "dial tcp <ip>: connect: refused"),
        ("peer [2001:db8::1]:443 reset", "peer <ip> reset"),
        ("from fe80::1%eth0 and ::ffff:192.168.0.1", "from <ip> and <ip>"),
        ("trace 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "trace <traceparent>"),
        ("alb Root=1-67891233-abcdef012345678912345678 slow", "alb Root=<traceparent> slow"),
        ("id 88EE7C66-29A9-4A4A-BC26-C72D76C5DE14 gone", "id <uuid> gone"),
        (
            "blob e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 missing",
            "blob <sha256> missing",
        ),
        ("deploy abc1234 failed", "deploy <git_sha> failed"),
        ("object at 0x7f3a2b1c9d40 is dead", "object at <hex> is dead"),
        ("session deadbeef1234 expired", "session <hex> expired"),
        ("at 2024-01-02 03:04:05.123+02:00", "at <date>"),
        ("at 2024-01-02T03:04:05Z", "at <date>"),
        ("on Mon, 02 Jan 2006 15:04:05 MST", "on <date>"),
        ("on Wed Apr 17 2019 22:31:45 GMT+0200 (Central European Summer Time)", "on <date>"),
        ("since Jan 02, 1999", "since <date>"),
        ("at 17/04/2019 and 3:45 PM", "at <date> and <date>"),
        ("at datetime.datetime(2019, 4, 17, 20, 29, 5)", "at <date>"),
        ("took 1.5s then 250ms then 1h2m3.5s", "took <duration> then <duration> then <duration>"),
        ("waited 30 seconds", "waited <duration>"),
        ("ratio -3.14 of 1234.5", "ratio <float> of <float>"),
        ("retry -5 and item_42 and order-17", "retry <int> and item_<int> and order-<int>"),
        ("open /home/alice/shop/data/report.csv failed", "open <path> failed"),
        ("read ./config/settings.yaml", "read <path>"),
        (r"open C:\Users\bob\AppData\cache.db denied", "open <path> denied"),
        (
            "user=\"bob\" role='admin' active=True",
            "user=<quoted_str> role=<quoted_str> active=<bool>",
        ),
        # kept as is
        ("Foo::bar() failed in std::vector", "Foo::bar() failed in std::vector"),
        ("Cafe::Bad is not an address", "Cafe::Bad is not an address"),
        ("java.io.IOException in app.db", "java.io.IOException in app.db"),
        ("v1 of the API", "v1 of the API"),
        ("KeyError: 'user_id'", "KeyError: 'user_id'"),
        ("GET /api/users/9 not allowed", "GET /api/users/<int> not allowed"),
    ],
)
def test_placeholders(raw, expected):
    assert normalize_message(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "status 404",
        "status code 503",
        "status_code=500",
        "HTTP 502",
        "HTTP/1.1 429",
        "HTTP error 401",
        "upstream returned 500",
        "upstream returned 503: try later",
        "server responded with 404",
        "502 Bad Gateway",
        "GET /x -> 404 Not Found",
        "request failed with 500",
    ],
)
def test_http_status_codes_are_kept(raw):
    assert normalize_message(raw) == raw


def test_status_codes_group_apart_but_other_numbers_do_not():
    assert normalize_message("status 404 for /api") != normalize_message("status 500 for /api")
    assert normalize_message("query returned 250 rows") == "query returned <int> rows"
    assert normalize_message("error 42") == "error <int>"
    assert normalize_message("status 9999") == "status <int>"


def test_long_messages_are_trimmed_to_two_lines():
    text = "first line 1\n\n  second line 2  \nthird line\nfourth"
    assert normalize_message(text) == "first line <int>\nsecond line <int>..."


def test_output_is_capped():
    text = "word " * 5000
    assert len(normalize_message(text)) <= MAX_OUTPUT_CHARS


def test_custom_patterns_apply_before_builtins():
    config = GroupingConfig(custom_patterns=(("order_id", r"\bORD-\d+"), ("tenant", r"t_[a-z]+")))
    assert (
        normalize_message("ORD-12345 for t_acme at 10.0.0.1", config)
        == "<order_id> for <tenant> at <ip>"
    )
    assert normalize_message("ORD-12345", None) == "ORD-<int>"


@pytest.mark.parametrize(
    "patterns",
    [(("Bad Name", "x"),), (("ok", "(unclosed"),), (("empty", "a*"),), (("x",),)],
)
def test_invalid_custom_patterns_are_rejected(patterns):
    with pytest.raises(PatternError):
        GroupingConfig(custom_patterns=patterns)


def test_non_string_input_is_empty():
    assert normalize_message(None) == ""  # type: ignore[arg-type]
    assert normalize_message("") == ""


_TOKENS = st.sampled_from(
    [
        "a", "x=", "=", "'", '"', "-", ".", ":", "::", "/", "\\", "_", "@", " ", "\n", "0x",
        "1", "42", "404", "3.5", "ms", "s", "status", "HTTP", "returned", "Jan", "Mon", ",",
        "2019-04-17", "T", "Z", "12:30", "10.0.0.1", "fe80", "abc", "deadbeef", "com", "example",
        "https://", "True", "(", ")", "[", "]", "<int>", "<", ">", "ORD", "home", "e5", "%",
    ]
)  # fmt: skip


# every grouping version's patterns (v1's are frozen, v2 adds Sentry's newest categories)
CONFIGS = {"v1": GroupingConfig(version="v1"), "v2": GroupingConfig(version="v2")}


@pytest.mark.parametrize("version", CONFIGS)
@settings(max_examples=600, deadline=None)
@given(st.lists(_TOKENS, max_size=25).map("".join))
def test_normalization_is_idempotent_on_tricky_tokens(version, text):
    once = normalize_message(text, CONFIGS[version])
    assert normalize_message(once, CONFIGS[version]) == once


@pytest.mark.parametrize("version", CONFIGS)
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_normalization_is_idempotent_on_any_text(version, text):
    once = normalize_message(text, CONFIGS[version])
    assert normalize_message(once, CONFIGS[version]) == once


# The combined regex dispatches on the character at each position and copies word tails in
# one step (a speed-up). It must find exactly what trying every pattern at every position
# finds: compare with the plain alternation of the same patterns.
_MORE_TOKENS = st.sampled_from(
    [
        "error", "got", "Monday", "datetime.datetime(", "PM", "ff", "beef", "~", "C:\\", "a.com",
        ".io", "h", "0", "00", "12", "255", "500", "1234567", "-04-", "17", "+", "ſ", "é", "٣",
        "K", "false", ";", "e", "E", "g", "Q", "seconds", "Not Found", "\t", "item_", "x_1",
        "a1b2", "FF00", "tx", "tx0123456789abcdef01234-0a1b2c3d4e", "-cluster", "1a2b3",
    ]
)  # fmt: skip
_MIXED_TEXT = st.one_of(
    st.lists(st.one_of(_TOKENS, _MORE_TOKENS), max_size=25).map("".join),
    st.text(alphabet="abcfxzABFZ0123456789 .:-_/@=%+~'\"()[],;\\#<>\tſ٣", max_size=40),
    st.text(max_size=60),
)


def _reference_patterns(version):
    """The frozen v1 patterns; for v2 with its two changes (Sentry's 4-character hex words
    and OpenStack Swift transaction ids, right after "duration")."""
    patterns = list(reference_patterns.BUILTIN_PATTERNS)
    needs_digit = reference_patterns.NEEDS_DIGIT
    if version == "v2":
        patterns = [(n, builtin_patterns._HEX_V2 if n == "hex" else r) for n, r in patterns]
        after = [name for name, _ in patterns].index("duration") + 1
        patterns.insert(after, ("swift_txn_id", builtin_patterns._SWIFT_TXN_ID))
        needs_digit = needs_digit | {"swift_txn_id"}
    return patterns, needs_digit


def _reference_regex(with_digits, version="v1"):
    patterns, needs_digit = _reference_patterns(version)
    return re.compile(
        "|".join(
            f"(?P<{name}>{regex})"
            for name, regex in patterns
            if with_digits or name not in needs_digit
        )
    )


_REFERENCES = {
    version: {True: _reference_regex(True, version), False: _reference_regex(False, version)}
    for version in CONFIGS
}
_NORMALIZERS = {"v1": parameterize.V1, "v2": parameterize.V2}
# (with "-" after ">": the one change made on purpose, so that "0xa-0xa" normalizes to a
# fixed point - "<hex><hex>", not "<hex>-0xa" which itself normalizes to "<hex><hex>")
_REFERENCE_GLUED = re.compile(r"(?:[0-9a-fA-F][:.]{0,2}|[:.])<[a-z]|[a-z0-9]>[\w:.-]").search


def _plain_sub(regex, text):
    def replace(match):
        name = match.lastgroup
        return (
            match.group()
            if name in reference_patterns.KEEP
            else "<int>"
            if name == "plain_int"
            else f"<{name}>"
        )

    return regex.sub(replace, text)


def _reference_normalize(text, version="v1"):
    """Normalization as it was before the speed-ups: every pattern tried at every position."""
    reference = _REFERENCES[version]
    trimmed = parameterize.trim_lines(text[: parameterize.MAX_INPUT_CHARS])
    if not re.search(r"\d", trimmed):
        return parameterize._cut(_plain_sub(reference[False], trimmed))
    result = _plain_sub(reference[True], trimmed)
    for _ in range(4):
        if not _REFERENCE_GLUED(result):
            break
        again = _plain_sub(reference[True], result)
        if again == result:
            break
        result = again
    return parameterize._cut(result)


def _dispatched_matches_plain(text, version):
    normalizer = _NORMALIZERS[version]
    for with_digits, regex in (
        (True, normalizer.all_patterns),
        (False, normalizer.no_digit_patterns),
    ):
        expected = _plain_sub(_REFERENCES[version][with_digits], text)
        assert regex.sub(normalizer.substitute, text) == expected


@pytest.mark.parametrize("version", CONFIGS)
@settings(max_examples=1500, deadline=None)
@given(_MIXED_TEXT)
def test_dispatched_regex_matches_like_the_plain_alternation(version, text):
    _dispatched_matches_plain(text, version)


@pytest.mark.parametrize("version", CONFIGS)
@settings(max_examples=1500, deadline=None)
@given(_MIXED_TEXT)
def test_normalization_equals_the_reference_implementation(version, text):
    assert normalize_message(text, CONFIGS[version]) == _reference_normalize(text, version)


@pytest.mark.parametrize(
    ("patterns", "first_chars"),
    [(BUILTIN_PATTERNS, FIRST_CHARS), (BUILTIN_PATTERNS_V2, FIRST_CHARS_V2)],
    ids=["v1", "v2"],
)
@settings(max_examples=500, deadline=None)
@given(_MIXED_TEXT)
def test_patterns_start_only_with_their_declared_first_characters(patterns, first_chars, text):
    for name, regex in patterns:
        compiled, first = re.compile(regex), re.compile(f"[{first_chars[name]}]")
        for position in range(len(text)):
            if compiled.match(text, position):
                assert first.match(text[position]), (name, text, position)


@pytest.mark.parametrize(
    "text",
    [
        "Cannot read properties of undefined (reading 'total')",
        "no digits but an e-mail bob@example.com",
        "path /home/app/x.py and key=value and x='y' and a.example.com",
        "Loading chunk 158 failed.",
        "dial tcp 10.2.33.44:5432: connect: connection refused",
        "item_42 v1_2 abc_def",
    ],
)
def test_normalization_equals_the_reference_on_examples(text):
    for version, config in CONFIGS.items():
        assert normalize_message(text, config) == _reference_normalize(text, version)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="<>:.aAfFgz09_ -", max_size=20))
def test_glued_placeholder_check_finds_what_the_plain_regex_finds(text):
    plain = re.compile(r"(?:[0-9a-fA-F][:.]{0,2}|[:.])<[a-z]|[a-z0-9]>[\w:.-]")
    assert bool(parameterize._GLUED_PLACEHOLDER(text)) == bool(plain.search(text))


def test_a_placeholder_glued_to_a_minus_is_re_normalized():
    # found by the idempotence property: "-0xa" can only start a match after "<hex>"
    assert normalize_message("0xa-0xa") == "<hex><hex>"
    assert normalize_message("<hex><hex>") == "<hex><hex>"


# "." and ":" before a blank or the end ("stops") are copied in one step, a word ending in one
# is kept by "stop_word", and runs of plain words by "plain_run" before the other patterns are
# tried: texts full of them and of what could make a word, a stop or a run part of a match
# ("=", "_", "\\", "//", "@", digits, status and day words).
_STOP_TOKENS = st.sampled_from(
    [
        "failed.", "server: ", "connect:", "word.", "word:", "Mon.", "Jan:", "status:", "error:",
        "got:", "http:", "C:", "c:\\x", "foo_", "foo_.", "dead:beef", "::1", "v2:", "10:", "10.",
        "5432:", "=true.", "=x:", "true.", "5 days.", "datetime.", "a.b", "x.com.", ". ", ": ",
        "foo_ ", "x_y@a.com", "bob@x.io", "a_b", " Mon ", "status ", "error ", "got ", "Jan 3",
        "Wed, ", "http://x.io/a ", "C:\\x\\y.txt", "cafe", "Bad Gateway", "404 Not Found",
    ]
)  # fmt: skip


@pytest.mark.parametrize("version", CONFIGS)
@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(_TOKENS, _STOP_TOKENS), max_size=20).map("".join))
def test_stops_normalize_like_the_reference(version, text):
    assert normalize_message(text, CONFIGS[version]) == _reference_normalize(text, version)
    _dispatched_matches_plain(text, version)


# Every category of Sentry's newest pattern list (docs: parameterization-sentry.md), one
# example each, as grouping v2 normalizes it (v1 lacks the last two rows' behaviour).
SENTRY_CATEGORIES = [
    ("email", "mail to bob.smith+x@shop.example.com failed", "mail to <email> failed"),
    ("url", "GET wss://stream.example.com/v2?x=1 closed", "GET <url> closed"),
    ("hostname", "cannot resolve api.example.com", "cannot resolve <hostname>"),
    ("ip", "from 127.0.0.1 via 2001:db8::8a2e:370:7334 via ::1", "from <ip> via <ip> via <ip>"),
    ("traceparent", "trace 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 lost",
     "trace <traceparent> lost"),
    ("uuid", "id 88ee7c66-29a9-4a4a-bc26-c72d76c5de14 unknown", "id <uuid> unknown"),
    ("sha1", "checksum da39a3ee5e6b4b0d3255bfef95601890afd80709", "checksum <sha1>"),
    ("md5", "md5 d41d8cd98f00b204e9800998ecf8427e", "md5 <md5>"),
    ("date", "at Wed Apr 17 22:31:45 2019 and 2019-04-17T20:29:05Z", "at <date> and <date>"),
    ("duration", "took 250ms then 1.5s", "took <duration> then <duration>"),
    ("swift_txn_id", "object PUT failed tx0123456789abcdef01234-0a1b2c3d4e-cluster1",
     "object PUT failed <swift_txn_id>"),
    ("hex", "at 0xfeedbeef, block a1b2, key DEADBEEF12", "at <hex>, block <hex>, key <hex>"),
    ("git_sha", "built from abc1234", "built from <git_sha>"),
    ("float", "ratio -3.14 exceeded", "ratio <float> exceeded"),
    ("int", "testing testing 1, 2, 3", "testing testing <int>, <int>, <int>"),
    ("quoted_str", "lookup user='bob' failed", "lookup user=<quoted_str> failed"),
    ("bool", "flag active=True rejected", "flag active=<bool> rejected"),
]  # fmt: skip


@pytest.mark.parametrize(("category", "raw", "expected"), SENTRY_CATEGORIES)
def test_every_sentry_category_in_v2(category, raw, expected):
    assert normalize_message(raw, CONFIGS["v2"]) == expected
    assert f"<{category}>" in expected


def test_v2_adds_sentrys_swift_ids_and_short_hex_words_to_v1():
    for raw in ("object PUT failed tx0123456789abcdef01234-0a1b2c3d4e-cluster1", "block a1b2"):
        assert normalize_message(raw, CONFIGS["v1"]) != normalize_message(raw, CONFIGS["v2"])
    # words and 4-digit numbers stay what they were
    assert normalize_message("beef cafe 2024 year", CONFIGS["v2"]) == "beef cafe <int> year"
