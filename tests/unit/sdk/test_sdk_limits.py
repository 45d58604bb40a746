from __future__ import annotations

import itertools

import errorstream_sdk
from errorstream_sdk.limits import Deduper, LevelSampler, TokenBucketLimiter


def test_level_sampler_defaults_and_rng():
    values = itertools.cycle([0.05, 0.3, 0.7])
    sampler = LevelSampler(
        {"error": 1.0, "warning": 0.5, "info": 0.1, "debug": 0.0}, lambda: next(values)
    )
    assert [sampler.keep("warning") for _ in range(3)] == [True, True, False]
    assert [sampler.keep("info") for _ in range(3)] == [True, False, False]
    assert sampler.keep("error") and not sampler.keep("debug")


def test_sampling_counts_drops(make_sdk, sent_events):
    rolls = iter([0.4, 0.6, 0.09, 0.11])
    client = make_sdk(rng=lambda: next(rolls))
    errorstream_sdk.capture_message("w1", level="warning")  # 0.4 < 0.5 kept
    errorstream_sdk.capture_message("w2", level="warning")  # 0.6 dropped
    errorstream_sdk.capture_message("i1", level="info")  # 0.09 < 0.1 kept
    errorstream_sdk.capture_message("i2", level="info")  # dropped
    assert [e["message"] for e in sent_events(client)] == ["w1", "i1"]
    assert client.snapshot()["dropped"]["sampled"] == 2


def test_token_bucket_burst_then_refill(clock):
    bucket = TokenBucketLimiter(burst=3, per_second=1.0, clock=clock)
    assert [bucket.allow("k") for _ in range(5)] == [True, True, True, False, False]
    assert bucket.allow("other")
    clock.advance(1.0)
    assert [bucket.allow("k") for _ in range(2)] == [True, False]
    clock.advance(10.0)
    assert [bucket.allow("k") for _ in range(4)] == [True, True, True, False]


def test_token_bucket_forgets_least_recent_keys(clock):
    bucket = TokenBucketLimiter(burst=1, per_second=0.0, clock=clock, max_keys=2)
    assert bucket.allow("a") and bucket.allow("b") and bucket.allow("c")
    assert len(bucket._buckets) == 2
    assert bucket.allow("a")  # forgotten, so fresh again


def test_crash_loop_is_rate_limited_per_raise_site(make_sdk, clock, sent_events):
    client = make_sdk(rate_limit_burst=10, rate_limit_per_second=1.0)
    for i in range(100):
        try:
            raise ValueError(f"boom {i}")
        except ValueError:
            errorstream_sdk.capture_exception()
        if i == 49:
            clock.advance(2.0)  # two tokens back
    try:
        raise KeyError("elsewhere")
    except KeyError:
        errorstream_sdk.capture_exception()
    assert len(sent_events(client)) == 13
    s = client.snapshot()
    assert (s["captured"], s["sent"], s["dropped"]["rate_limited"]) == (101, 13, 88)


def test_dedupe_same_exception_object_and_repeated_message(sdk, sent_events):
    exc = ValueError("once")
    assert errorstream_sdk.capture_exception(exc) is not None
    assert errorstream_sdk.capture_exception(exc) is None
    errorstream_sdk.capture_message("same", level="error")
    errorstream_sdk.capture_message("same", level="error")
    errorstream_sdk.capture_message("same", level="warning")
    errorstream_sdk.capture_exception(ValueError("once"))  # equal text, new object: kept
    assert len(sent_events(sdk)) == 4
    assert sdk.snapshot()["dropped"]["duplicate"] == 2


def test_deduper_holds_no_reference_to_the_exception():
    import gc
    import weakref

    class Payload:
        pass

    d = Deduper()
    payload = Payload()
    ref = weakref.ref(payload)
    exc = ValueError(payload)
    assert not d.seen_exception(exc)
    assert d.seen_exception(exc)
    del exc, payload
    gc.collect()
    assert ref() is None
