"""Webhook signatures, the retry schedule, and which offsets may be committed."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from pipeline.notify.backoff import Backoff, parse_retry_after
from pipeline.notify.ledger import OffsetLedger
from pipeline.notify.signing import signature, signed_headers, verify

BODY = b'{"alerts":[],"count":0}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"key", b"1764756000." + BODY, hashlib.sha256).hexdigest()
    assert signature("key", 1764756000, BODY) == f"sha256={expected}"
    assert signed_headers("key", 1764756000, BODY) == {
        "X-Errorstream-Timestamp": "1764756000",
        "X-Errorstream-Signature": f"sha256={expected}",
    }


def test_verify_rejects_other_bodies_secrets_and_stale_timestamps():
    sig = signature("key", 1000, BODY)
    assert verify("key", "1000", sig, BODY, now=1100)
    assert not verify("key", "1000", sig, BODY + b" ", now=1100)
    assert not verify("other", "1000", sig, BODY, now=1100)
    assert not verify("key", "1001", sig, BODY, now=1100)  # the timestamp is signed too
    assert not verify("key", "1000", sig, BODY, now=1301)  # older than 300 s
    assert not verify("key", "soon", sig, BODY, now=1000)


def test_backoff_doubles_to_the_cap_within_its_jitter():
    b = Backoff(max_attempts=8, initial=1.0, maximum=10.0, jitter=0.5)
    assert [b.base(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    rng = random.Random(7)
    for n in range(1, 30):
        d = b.delay(n, rng)
        assert b.base(n) * 0.5 <= d <= b.base(n) <= 10.0
    assert len(b.schedule(random.Random(1))) == 7


def test_backoff_jitter_extremes_and_retry_after():
    class Fixed(random.Random):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def random(self):
            return self.value

    b = Backoff(initial=2.0, maximum=30.0, jitter=0.5)
    assert b.delay(3, Fixed(0.0)) == 4.0  # base 8: 8 * 0.5
    assert b.delay(3, Fixed(1.0)) == 8.0
    assert b.delay(1, Fixed(0.0), retry_after=12) == 12  # the receiver asked for longer
    assert b.delay(1, Fixed(0.0), retry_after=600) == 30.0  # still capped
    assert b.delay(3, Fixed(0.0), retry_after=1) == 4.0  # shorter: ours stands


@pytest.mark.parametrize(
    "header, seconds",
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("", None),
        (None, None),
        ("-1", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header) == seconds


def test_ledger_commits_the_lowest_unfinished_offset():
    ledger = OffsetLedger()
    a = ledger.consumed("p0", 10, 1)  # held in a digest
    b = ledger.consumed("p0", 11, 2)  # two routes
    ledger.consumed("p0", 12, 0)  # no route took it
    ledger.consumed("p1", 5, 0)
    assert ledger.committable() == {"p0": 10, "p1": 6}
    assert ledger.pending() == 2
    ledger.finished(b)
    assert ledger.committable()["p0"] == 10 and ledger.is_waiting(b)
    ledger.finished(a)
    assert ledger.committable()["p0"] == 11
    ledger.finished(b)
    assert ledger.committable() == {"p0": 13, "p1": 6} and ledger.pending() == 0


def test_ledger_to_commit_only_what_moved_and_forget():
    ledger = OffsetLedger()
    t = ledger.consumed("p0", 0, 1)
    ledger.consumed("p1", 0, 0)
    first = ledger.to_commit()
    assert first == {"p0": 0, "p1": 1}
    ledger.committed(first)
    assert ledger.to_commit() == {}
    ledger.finished(t)
    assert ledger.to_commit() == {"p0": 1}
    ledger.forget(["p0"])
    assert ledger.committable() == {"p1": 1}
    ledger.finished(t)  # a late delivery of a revoked partition changes nothing
    assert ledger.pending() == 0


def test_the_verification_snippet_in_the_docs_accepts_our_signatures():
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "notify.md").read_text()
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(snippet, namespace)
    doc_verify = namespace["verify"]
    now = int(time.time())
    headers = signed_headers("key", now, BODY)
    assert doc_verify(b"key", headers, BODY)
    assert not doc_verify(b"key", headers, BODY + b"x")
    assert not doc_verify(b"key", signed_headers("key", now - 301, BODY), BODY)
