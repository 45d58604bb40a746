from pipeline.stages.rules import StreamRules
from tests.unit.stages.helpers import T0, process_all, record

RULES = StreamRules(
    spike_min_count=10, incident_min_issues=3, service_spike_min_count=10_000, partitions=1
)


def run(recs, rules=RULES):
    outputs, _, _ = process_all(recs, rules)
    return [alert for o in outputs for alert in o.alerts]


def history(fps, service="checkout"):
    """One event per fingerprint every 5 minutes from T0 - 300 to T0 + 3300."""
    out, i = [], 0
    for m in range(-5, 60, 5):
        for fp in fps:
            out.append(record(i, T0 + m * 60, fp=fp, service=service))
            i += 1
    return out, i


def burst(fps, start_i, n=12, at=T0 + 3600 + 10, service="checkout"):
    out, i = [], start_i
    for k in range(n):
        for fp in fps:
            out.append(record(i, at + k, fp=fp, service=service))
            i += 1
    return out, i


def test_single_issue_spike_carries_its_numbers():
    hist, i = history(["a", "b"])
    spike, _ = burst(["a"], i)
    alerts = [a for a in run(hist + spike) if a["kind"] != "new_issue"]
    assert [a["kind"] for a in alerts] == ["spike"]
    numbers = alerts[0]["numbers"]
    assert numbers["count"] == 10 and numbers["baseline"] == 1.0
    assert numbers["window_seconds"] == 300 and numbers["multiplier"] == 5.0


def test_many_issues_spiking_together_make_one_incident():
    fps = [f"fp{k}" for k in range(8)]
    hist, i = history(fps)
    spike, _ = burst(fps, i)
    alerts = [a for a in run(hist + spike) if a["kind"] != "new_issue"]
    assert [a["kind"] for a in alerts] == ["spike", "spike", "incident"]
    assert alerts[2]["fingerprints"] == fps[:3]
    assert alerts[2]["fingerprint"] == "" and alerts[2]["service"] == "checkout"


def test_no_spike_in_an_other_service_and_cooldown_holds():
    hist, i = history(["a"])
    one, i = burst(["a"], i)
    two, _ = burst(["a"], i, at=T0 + 3600 + 120)  # still within the cooldown
    alerts = [a for a in run(hist + one + two) if a["kind"] == "spike"]
    assert len(alerts) == 1


def test_service_spike_and_error_rate():
    rules = StreamRules(
        spike_min_count=10_000,
        service_spike_min_count=30,
        error_rate_per_minute=20,
        error_rate_minutes=2,
        partitions=1,
    )
    hist, i = history(["a"])
    recs = hist
    for minute in (61, 62):
        more, i = burst(["a", "b"], i, n=10, at=T0 + minute * 60)
        recs += more
    alerts = [a for a in run(recs, rules) if a["kind"] not in ("new_issue",)]
    assert [a["kind"] for a in alerts] == ["spike", "error_rate"]
    assert alerts[0]["fingerprint"] == "" and alerts[0]["numbers"]["count"] == 30
    assert alerts[1]["numbers"]["min_per_minute"] == 20
