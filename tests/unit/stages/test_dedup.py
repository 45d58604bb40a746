import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.stages.dedup import EvictionQueue, is_upstream_duplicate, should_apply
from pipeline.stages.rules import StreamRules
from tests.unit.stages.helpers import T0, record
from tests.unit.stages.test_admission import run


def test_guards():
    assert not is_upstream_duplicate(None, 5)
    assert not is_upstream_duplicate([5, 0, 0], 5)  # a replay of the first delivery
    assert is_upstream_duplicate([5, 0, 0], 9)
    assert should_apply(None, 0) and should_apply({"o": 3}, 4) and not should_apply({"o": 4}, 4)


def test_eviction_queue_pops_in_order_after_the_horizon():
    q = EvictionQueue(10, [(5, "b"), (1, "a")])
    q.push(12, "c")
    assert q.expired(11) == []
    assert q.expired(16) == ["a", "b"]
    assert len(q) == 1
    assert q.expired(100) == ["c"]


def test_duplicates_are_forwarded_with_current_counts_but_not_counted():
    recs = [record(i, T0 + i) for i in range(5)]
    dups = [copy.deepcopy(recs[1]), copy.deepcopy(recs[3])]
    out, issues, services = run(recs + dups, StreamRules())
    assert issues["fp-a"]["issue"]["count"] == 5
    assert sum(services["checkout"]["ring"]["r"]) == 5
    assert len(out) == 7
    assert [r["_meta"]["issue"]["count"] for r in out[-2:]] == [5, 5]
    assert out[-1]["_meta"]["body_stored"] == out[3]["_meta"]["body_stored"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 19), min_size=1, max_size=60))
def test_any_redelivery_pattern_counts_each_event_once(order):
    recs = [record(i, T0 + i, fp=f"fp{i % 4}") for i in order]
    _, issues, services = run(recs, StreamRules())
    distinct = set(order)
    assert sum(s["issue"]["count"] for s in issues.values()) == len(distinct)
    assert sum(services["checkout"]["ring"]["r"]) == len(distinct)


def test_dedup_window_persists_one_value_per_envelope_and_rebuilds_from_it():
    from pipeline.stages.dedup import DedupWindow

    w = DedupWindow(horizon=10)
    w.add("0|a", [5 << 20, 100, 0])
    w.add("0|b", [(5 << 20) + 1, 101, 0])
    assert w.get("0|a") == [5 << 20, 100, 0] and w.get("0|zz") is None
    value = w.take_batch("0|b|5")
    assert value == {"m": 101, "e": {"0|a": [5 << 20, 100, 0], "0|b": [(5 << 20) + 1, 101, 0]}}
    assert w.take_batch("0|b|6") is None  # nothing new since

    # a restart: the window comes back from the table, old one-key-per-event entries included
    r = DedupWindow(10, [("0|b|5", value), ("0|old", [3, 95, 1])])
    assert r.get("0|b") == [(5 << 20) + 1, 101, 0] and r.get("0|old") == [3, 95, 1]
    assert r.newest_minute() == 101
    assert r.expired(105) == []  # entered at 95: kept while 95 >= 105 - 10
    assert r.expired(106) == ["0|old"]
    assert r.get("0|old") is None and r.get("0|a") is not None
    assert r.expired(112) == ["0|b|5"]
    assert r.get("0|a") is None and r.get("0|b") is None
