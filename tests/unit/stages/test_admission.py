from pipeline.stages.admission import (
    FINGERPRINT_LIMIT,
    SAMPLED,
    SERVICE_LIMIT,
    admit,
    decode,
    encode,
    lean_record,
    sample_keep,
)
from pipeline.stages.rules import StreamRules
from tests.unit.stages.helpers import T0, process_all, record


def decide(fp_count, svc_count, level="error", rates=None, eid="e"):
    return admit(
        event_id=eid,
        level=level,
        fingerprint_minute_count=fp_count,
        service_minute_count=svc_count,
        fingerprint_limit=100,
        service_limit=10_000,
        sample_rates=rates or {},
    )


def test_limits_and_sampling():
    assert decide(100, 1).body_stored
    assert decide(101, 1).shed_reason == FINGERPRINT_LIMIT
    assert decide(1, 10_001).shed_reason == SERVICE_LIMIT
    sampled = [decide(1, 1, "debug", {"debug": 0.25}, f"e{i}") for i in range(4000)]
    kept = sum(a.body_stored for a in sampled)
    assert 800 < kept < 1200
    assert all(a.sample_rate == 0.25 for a in sampled)
    assert {a.shed_reason for a in sampled if not a.body_stored} == {SAMPLED}


def test_sampling_is_stable_per_event_id():
    assert [sample_keep(f"e{i}", 0.5) for i in range(50)] == [
        sample_keep(f"e{i}", 0.5) for i in range(50)
    ]


def test_decision_round_trips_through_its_code():
    for a in (decide(1, 1), decide(101, 1), decide(1, 10_001)):
        assert decode(encode(a), a.sample_rate) == a


def test_lean_record_has_no_body():
    lean = lean_record(record())
    assert "exception" not in lean and "breadcrumbs" not in lean
    assert {"event_id", "service", "level", "_meta"} <= lean.keys()


def run(records, rules):
    """List in → list of processed records out, through fresh state (one partition)."""
    outputs, issues, services = process_all(records, rules)
    return [o.record for o in outputs], issues, services


def test_admission_sheds_bodies_but_counts_stay_exact():
    rules = StreamRules(fingerprint_limit=10, service_limit=25, partitions=1)
    recs = [record(i, T0 + i * 0.1, fp=f"fp{i % 3}") for i in range(90)]
    out, issues, services = run(recs, rules)
    assert sum(s["issue"]["count"] for s in issues.values()) == 90
    assert sum(services["checkout"]["ring"]["r"]) == 90
    stored = [r for r in out if r["_meta"]["body_stored"]]
    assert len(stored) == 25  # the service budget of the minute
    shed = [r for r in out if not r["_meta"]["body_stored"]]
    assert all("exception" not in r for r in shed)
    assert {r["_meta"]["shed_reason"] for r in shed} == {"fingerprint_limit", "service_limit"}
    # the minute counts are exact and cumulative per contract key
    last = {}
    for r in out:
        last[r["_meta"]["fingerprint"]] = r["_meta"]["minute_count"]
    assert last == {"fp0": 30, "fp1": 30, "fp2": 30}
