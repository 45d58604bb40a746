from pipeline.stages.issues import (
    IGNORED,
    ONGOING,
    REGRESSED,
    RESOLVED,
    apply_command,
    apply_event,
    merge_states,
    user_hash,
)
from pipeline.stages.rules import StreamRules
from pipeline.stages.spikes import parse_threshold_rules
from tests.unit.stages.helpers import T0, record

RULES = StreamRules()


def feed(recs, state=None, rules=RULES, start=0):
    alerts = []
    for offset, rec in enumerate(recs, start):
        state, new, _ = apply_event(
            state, rec, rec["_meta"]["fingerprint"], user_hash(rec), rules, offset, T0
        )
        alerts.extend(new)
    return state, alerts


def kinds(alerts):
    return [a["kind"] for a in alerts]


def test_new_issue_then_ongoing_with_exact_count_and_users():
    state, alerts = feed([record(i, T0 + i, user=f"u{i % 3}") for i in range(10)])
    issue = state["issue"]
    assert kinds(alerts) == ["new_issue"]
    assert (issue["status"], issue["count"], issue["users"]) == (ONGOING, 10, 3)
    assert issue["first_seen"] == T0 and issue["last_seen"] == T0 + 9
    assert issue["version"] == 10 and issue["levels"] == ["error"]
    assert "breadcrumbs" not in state["sample"]


def resolved(release=None, at=T0 + 100):
    state, _ = feed([record(0, T0)])
    cmd = {"command": "resolve", "issued_at": at, "release": release}
    return apply_command(state, cmd, 1)


def test_regression_only_for_newer_events():
    state = resolved()
    assert state["issue"]["status"] == RESOLVED
    late, alerts = feed([record(1, T0 + 50)], state, start=2)  # older than the resolution
    assert late["issue"]["status"] == RESOLVED and alerts == []
    assert late["issue"]["count"] == 2
    new, alerts = feed([record(2, T0 + 200)], late, start=3)
    assert new["issue"]["status"] == REGRESSED and kinds(alerts) == ["regression"]
    assert alerts[0]["numbers"]["resolved_at"] == T0 + 100


def test_regression_respects_the_release():
    state = resolved(release="app@1.2.10")
    old, alerts = feed([record(1, T0 + 200, release="app@1.2.9")], state, start=2)
    assert old["issue"]["status"] == RESOLVED and alerts == []
    new, alerts = feed([record(2, T0 + 300, release="app@1.2.10")], old, start=3)
    assert kinds(alerts) == ["regression"]


def test_ignore_until_count_then_ongoing_and_silent_meanwhile():
    state, _ = feed([record(0, T0)])
    state = apply_command(state, {"command": "ignore", "issued_at": T0, "until_count": 2}, 1)
    state, alerts = feed([record(1, T0 + 1, level="fatal")], state, start=2)
    assert state["issue"]["status"] == IGNORED and alerts == []
    state, _ = feed([record(2, T0 + 2)], state, start=3)
    assert state["issue"]["status"] == ONGOING
    state = apply_command(state, {"command": "unresolve", "issued_at": T0}, 9)
    assert state["issue"]["status"] == ONGOING


def test_critical_with_cooldown():
    recs = [record(0, T0)] + [record(i, T0 + i * 60, level="fatal") for i in range(1, 40)]
    _, alerts = feed(recs)
    assert kinds(alerts) == ["new_issue", "critical", "critical"]  # 1800 s cooldown
    assert alerts[2]["event_id"] == f"{31:032x}"


def test_threshold_rules_fire_once_per_cooldown():
    rules = StreamRules(thresholds=parse_threshold_rules("events>5/2m; users>3/10m"))
    recs = [record(i, T0 + i, user=f"u{i}") for i in range(20)]
    _, alerts = feed(recs, rules=rules)
    th = [a for a in alerts if a["kind"] == "threshold"]
    assert [a["rule"] for a in th] == ["users>3/10m", "events>5/2m"]
    assert th[1]["numbers"]["count"] == 6 and th[1]["numbers"]["threshold"] == 5


def test_late_events_count_but_do_not_enter_windows():
    state, _ = feed([record(0, T0 + 600), record(1, T0)])
    assert state["issue"]["count"] == 2
    assert sum(state["ring"]["r"]) == 1


def test_merge_adds_counts_and_users():
    a, _ = feed([record(i, T0 + i, fp="a", user=f"u{i}") for i in range(3)])
    b, _ = feed([record(i, T0 + 100 + i, fp="b", user=f"v{i}") for i in range(4)])
    m = merge_states(a, b, 10)
    assert m["issue"]["count"] == 7 and m["issue"]["users"] == 7
    assert m["issue"]["last_seen"] == T0 + 103 and sum(m["ring"]["r"]) == 7


def test_an_event_older_than_the_watermark_minus_grace_is_counted_and_marked_late():
    from tests.unit.stages.helpers import process_all

    rules = StreamRules(grace=60.0)
    recs = [record(0, T0 + 600), record(1, T0 + 590), record(2, T0 + 400), record(3, T0 + 700)]
    outs, issues, _ = process_all(recs, rules)
    assert [o.late for o in outs] == [False, False, True, False]
    assert issues["fp-a"]["issue"]["count"] == 4  # late events still count in the totals
