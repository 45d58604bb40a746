"""The load generator's plan: deterministic, at the asked rate, long-tailed, and every bug is
exactly one issue (its variable parts masked by grouping), with the planned anomalies."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from pipeline.grouping import group_event
from pipeline.loadgen import Flood, LoadPlan, Profile, Spike, parse_flood, parse_spike, to_sentry
from pipeline.stages.decode import DecodedEvent, decode_event

START = 1_700_000_000.0


def run_plan(profile: Profile, tick: float = 0.5) -> list:
    plan = LoadPlan(profile, start=START)
    items, t = [], 0.0
    while t < profile.duration:
        items += plan.items(t, min(profile.duration, t + tick))
        t += tick
    return items


def test_same_seed_same_traffic_and_the_asked_rate():
    profile = Profile(rate=400, duration=10, seed=7)
    a, b = run_plan(profile), run_plan(profile)
    assert [orjson.dumps(i.event) if i.event else i.raw for i in a] == [
        orjson.dumps(i.event) if i.event else i.raw for i in b
    ]
    assert len(a) == 4000  # the carry keeps the count exact over the run
    assert run_plan(Profile(rate=400, duration=10, seed=8))[0].event != a[0].event


def test_fractions_of_late_duplicate_and_malformed():
    items = run_plan(Profile(rate=2000, duration=10, late_fraction=0.05, duplicate_fraction=0.05,
                             malformed_fraction=0.02))  # fmt: skip
    kinds = Counter(i.kind for i in items)
    n = len(items)
    assert 0.035 < kinds["late"] / n < 0.065
    assert 0.035 < kinds["duplicate"] / n < 0.065
    assert 0.01 < kinds["malformed"] / n < 0.03
    for item in items:
        if item.kind == "late":
            assert item.event["timestamp"] < START - 100  # minutes in the past
        if item.kind == "malformed":
            assert item.event is None
            decoded = decode_event(item.raw)
            assert not isinstance(decoded, DecodedEvent)  # the decoder refuses each kind
    originals = {i.event["event_id"] for i in items if i.kind in ("event", "late")}
    assert all(i.event["event_id"] in originals for i in items if i.kind == "duplicate")


def test_every_event_is_valid_v1_and_each_bug_is_one_fingerprint():
    items = run_plan(Profile(rate=500, duration=6, bugs=40, new_bug_every=2))
    by_bug: dict[int, set[str]] = {}
    for item in items:
        if item.kind not in ("event", "late"):
            continue
        decoded = decode_event(orjson.dumps(item.event))
        assert isinstance(decoded, DecodedEvent), decoded
        fp = group_event(decoded.event).fingerprint
        by_bug.setdefault(item.bug.id, set()).add(fp)
        # the same event as a Sentry SDK sends it keeps service as a tag
        assert to_sentry(item.event)["tags"]["service"] == item.event["service"]
    assert all(len(fps) == 1 for fps in by_bug.values()), "a bug split into several issues"
    fps = [next(iter(f)) for f in by_bug.values()]
    assert len(set(fps)) == len(fps), "two bugs merged into one issue"


def test_long_tail_and_new_bugs():
    profile = Profile(rate=2000, duration=10, bugs=300, new_bug_every=2.5)
    plan = LoadPlan(profile, start=START)
    items = plan.items(0, 10)
    counts = Counter(i.bug.id for i in items if i.bug is not None)
    top = counts.most_common(10)
    assert sum(n for _, n in top) / sum(counts.values()) > 0.25  # a few bugs carry much
    assert len(counts) > 100  # and there is a long tail
    assert [b["at"] for b in plan.summary()["bugs_appeared"]] == [2.5, 5.0, 7.5, 10.0]


def test_spike_multiplies_one_bugs_share_and_flood_adds_a_new_bug():
    base = Profile(rate=1000, duration=20, new_bug_every=0, seed=3)
    spiked = Profile(rate=1000, duration=20, new_bug_every=0, seed=3,
                     spikes=(Spike(at=10, length=5, factor=10, rank=2),),
                     floods=(Flood(at=5, length=2, rate=300),))  # fmt: skip
    plain = run_plan(base)
    items = run_plan(spiked)

    def share(its, lo, hi, bug_id):
        window = [i for i in its if i.bug is not None and lo <= i.event["timestamp"] - START < hi]
        return sum(i.bug.id == bug_id for i in window) / len(window)

    plan = LoadPlan(spiked, start=START)
    spiking = plan.bugs[2].id
    assert share(items, 10, 15, spiking) > 4 * share(plain, 10, 15, spiking)
    flood_bug = plan.flood_bugs[0].id
    flooded = [i for i in items if i.bug is not None and i.bug.id == flood_bug]
    assert len(flooded) == 600  # 300/s for 2 s, on top of the rate
    assert all(5 <= i.event["timestamp"] - START < 7 for i in flooded)
    assert plan.summary()["floods"][0]["bug"] == flood_bug


def test_a_spike_keeps_its_bug_while_new_bugs_push_it_down_the_ranks():
    # a new bug every second joins at rank 6: the bug at rank 12 changes during the spike
    spiked = Profile(rate=2000, duration=20, new_bug_every=1.0, seed=4,
                     spikes=(Spike(at=5, length=10, factor=10, rank=12),))  # fmt: skip
    plan = LoadPlan(spiked, start=START)
    items, t = [], 0.0
    while t < spiked.duration:
        if t == 5.0:
            rank12_at_start = plan.bugs[12].id
        items += plan.items(t, t + 0.5)
        t += 0.5
    bug = plan.spike_bugs[0]
    assert bug.id == rank12_at_start and bug.appeared_at == 0
    assert plan.bugs.index(bug) > 12  # pushed down meanwhile
    assert plan.summary()["spikes"][0]["bug"] == bug.id

    def count(lo, hi):
        window = [i for i in items if i.bug is not None and lo <= i.event["timestamp"] - START < hi]
        return sum(i.bug.id == bug.id for i in window)

    # the last seconds of the spike are still its bug's, as the first are (factor 10)
    assert count(12, 15) > 5 * count(16, 19) and count(5, 8) > 5 * count(16, 19) > 0


def test_bad_profiles_and_options_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="rate"):
        Profile(rate=0)
    with pytest.raises(ValueError, match="fractions"):
        Profile(late_fraction=0.5, duplicate_fraction=0.3, malformed_fraction=0.3)
    with pytest.raises(ValueError, match="rank 300 is not one of the 300 bugs"):
        Profile(spikes=(Spike(10, 5, 3, 300),))
    with pytest.raises(ValueError, match="rank -1"):
        Profile(spikes=(Spike(10, 5, 3, -1),))
    with pytest.raises(ValueError, match="factor >= 1"):
        Profile(spikes=(Spike(10, 5, 0.5),))
    with pytest.raises(ValueError, match="AT:LENGTH:FACTOR"):
        parse_spike("10:5")
    assert parse_spike("10:5:3:1") == Spike(10, 5, 3, 1)
    assert parse_flood("1:2:300") == Flood(1, 2, 300)
