"""pipeline.gateway.limits: token buckets per key and the JSON shape limits."""

from __future__ import annotations

import pytest

from pipeline.gateway.limits import KeyRateLimiter, LimitExceeded, check_json


def test_bucket_allows_burst_then_refills_at_rate():
    lim = KeyRateLimiter(rate=10, burst=20)
    assert all(lim.acquire("k", 1, 100.0) is None for _ in range(20))
    limited = lim.acquire("k", 1, 100.0)
    assert limited is not None and limited.retry_after == 1
    assert limited.headers() == {
        "Retry-After": "1",
        "X-Sentry-Rate-Limits": "1:error;default:key:key_rate_limit",
    }
    assert lim.acquire("other", 1, 100.0) is None  # per key
    assert lim.acquire("k", 5, 100.5) is None  # 0.5 s at 10/s = 5 tokens
    assert lim.acquire("k", 1, 100.5) is not None


def test_retry_after_is_when_enough_tokens_exist():
    lim = KeyRateLimiter(rate=0.5, burst=1)
    assert lim.acquire("k", 1, 0.0) is None
    assert lim.acquire("k", 1, 0.0).retry_after == 2
    assert lim.acquire("k", 1, 2.0) is None


def test_costless_and_disabled():
    assert KeyRateLimiter(0, 1).acquire("k", 10**6, 0.0) is None
    lim = KeyRateLimiter(1, 1)
    assert lim.acquire("k", 0, 0.0) is None and lim.acquire("k", 1, 0.0) is None


def test_bucket_memory_is_bounded():
    lim = KeyRateLimiter(rate=100, burst=10, max_keys=50)
    for i in range(500):
        lim.acquire(f"k{i}", 1, float(i))
    assert len(lim._buckets) <= 50


def test_json_depth_and_field_size():
    check_json({"a": [{"b": "x" * 10}]}, max_depth=3, max_chars=10)
    deep: object = "leaf"
    for _ in range(10):
        deep = {"d": deep}
    with pytest.raises(LimitExceeded) as info:
        check_json(deep, max_depth=5, max_chars=100)
    assert (info.value.status, info.value.reason) == (400, "json_too_deep")
    for value in ({"a": "x" * 11}, {"x" * 11: 1}, {"a": ["x" * 11]}, ["x" * 11]):
        with pytest.raises(LimitExceeded) as info:
            check_json(value, max_depth=5, max_chars=10)
        assert (info.value.status, info.value.reason) == (413, "field_too_large")


def test_deep_lists_do_not_recurse():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(LimitExceeded):
        check_json(deep, max_depth=64, max_chars=10)
