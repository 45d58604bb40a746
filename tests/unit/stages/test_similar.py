"""MinHash signatures of grouping components (pure): deterministic, a Jaccard estimate."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from pipeline.stages.similar import (
    PERMUTATIONS,
    SignatureMemo,
    minhash,
    shingles,
    signature,
    similarity,
)

CHECKOUT = [
    "type:KeyError",
    "frame:app.cart|total|",
    "frame:app.checkout|pay|",
    "frame:app.api|post|",
]


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def test_signature_shape_and_determinism_across_processes():
    sig = signature(CHECKOUT, "KeyError: 'sku'")
    assert len(sig) == PERMUTATIONS and all(0 <= v < 2**32 for v in sig)
    code = (
        "from pipeline.stages.similar import signature;"
        f"print(signature({CHECKOUT!r}, \"KeyError: 'sku'\"))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str(sig)  # no per-process hash seed, no random state


def test_identical_components_score_one_and_disjoint_ones_near_zero():
    assert similarity(signature(CHECKOUT), signature(list(reversed(CHECKOUT)))) == 1.0
    unrelated = ["message:disk <path> is full", "frame:ops.backup|run|"]
    assert similarity(signature(CHECKOUT), signature(unrelated)) < 0.1


def test_score_estimates_the_jaccard_similarity_of_the_shingles():
    one_frame_off = [*CHECKOUT[:-1], "frame:app.api|put|"]
    a, b = shingles(CHECKOUT), shingles(one_frame_off)
    exact = jaccard(a, b)
    estimate = similarity(minhash(a), minhash(b))
    assert 0.2 < exact < 0.9
    assert abs(estimate - exact) < 0.2  # standard error sqrt(J(1-J)/64) ≈ 0.06
    # more alike components score higher
    two_off = [*CHECKOUT[:-2], "frame:app.x|a|", "frame:app.y|b|"]
    assert similarity(signature(CHECKOUT), signature(one_frame_off)) > similarity(
        signature(CHECKOUT), signature(two_off)
    )


def test_messages_differing_in_one_word_share_most_shingles():
    a = signature(["message:Connection to db <ip> timed out after <duration>"])
    b = signature(["message:Connection to cache <ip> timed out after <duration>"])
    c = signature(["message:User <int> not found"])
    assert similarity(a, b) > similarity(a, c)


def test_empty_sets_and_length_mismatch():
    assert minhash([]) == minhash(set())
    assert similarity(minhash([]), signature(CHECKOUT)) == 0.0
    try:
        similarity([1, 2], [1])
    except ValueError as exc:
        assert "lengths" in str(exc)
    else:
        raise AssertionError("a length mismatch must raise")


def test_memo_says_first_once_per_fingerprint_and_forgets_the_oldest():
    memo = SignatureMemo(capacity=2)
    assert memo.first("a") and memo.first("b")
    assert not memo.first("a")  # a is now the most recent
    assert memo.first("c")  # evicts b, the least recently seen
    assert memo.first("b") and not memo.first("c")


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=12))
def test_signature_is_a_function_of_the_set(items):
    assert minhash(items) == minhash(list(reversed(items))) == minhash(items + items)
    assert similarity(minhash(items), minhash(set(items))) == 1.0
