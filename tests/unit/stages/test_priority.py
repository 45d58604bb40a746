"""Priority and escalation (pure): the forecast math, the rule, and the lifecycle they drive."""

from __future__ import annotations

import math

import pytest

from pipeline.control import make_command
from pipeline.stages.issues import apply_command
from pipeline.stages.priority import (
    FLOOR,
    computed_priority,
    count_hour,
    escalation,
    forecast,
    hourly_history,
)
from pipeline.stages.rules import StreamRules
from pipeline.stages.windows import new_ring
from tests.unit.stages.helpers import T0, process_all, record


def test_forecast_is_mean_plus_three_sigma_with_a_floor():
    steady = [50] * 168
    assert forecast(steady) == 50  # no variance: the mean
    bursty = [0, 100] * 84  # mean 50, population stddev 50
    assert forecast(bursty) == pytest.approx(50 + 3 * 50)
    assert forecast([0] * 168) == FLOOR and forecast([]) == FLOOR
    history = [3, 5, 4, 6, 2]
    mean = sum(history) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in history) / 5)
    assert forecast(history, floor=0) == pytest.approx(mean + 3 * sd)


def test_hourly_history_excludes_the_current_hour_and_fills_gaps():
    ring = new_ring()
    for hour, n in ((100, 2), (102, 5), (103, 7)):
        for _ in range(n):
            ring = count_hour(ring, hour)
    assert hourly_history(ring, 103, hours=4) == [5, 0, 2, 0]
    assert hourly_history(new_ring(), 10, hours=3) == [0, 0, 0]


def test_escalation_compares_the_current_hour_with_the_cached_forecast():
    ring = new_ring()
    for hour in range(200, 368):
        for _ in range(20):
            ring = count_hour(ring, hour)
    state = {"hr": ring, "fc": None}
    for _ in range(20):
        state["hr"] = count_hour(state["hr"], 368)
    assert escalation(state, 368) == (False, 20, 20.0)
    assert state["fc"] == [368, 20.0]  # cached for the hour
    state["hr"] = count_hour(state["hr"], 368)
    assert escalation(state, 368) == (True, 21, 20.0)


@pytest.mark.parametrize(
    ("levels", "users", "escalating", "expected"),
    [
        (["error"], 0, False, "medium"),
        (["warning"], 0, False, "low"),
        (["info", "warning"], 9, False, "low"),
        (["warning"], 10, False, "medium"),
        (["warning"], 100, False, "high"),
        (["error", "fatal"], 0, False, "high"),
        (["critical"], 0, False, "high"),
        (["debug"], 0, True, "high"),
    ],
)
def test_priority_rule(levels, users, escalating, expected):
    assert computed_priority(levels, users, escalating) == expected


def test_priority_follows_events_until_a_person_sets_it():
    rules = StreamRules()
    _, issues, _ = process_all([record(0, level="warning")], rules)
    state = issues["fp-a"]
    assert state["issue"]["priority"] == "low" and state["issue"]["priority_source"] == "auto"
    manual = apply_command(state, make_command("priority", "fp-a", priority="high"), 10)
    assert (manual["issue"]["priority"], manual["issue"]["priority_source"]) == ("high", "manual")
    back = apply_command(manual, make_command("priority", "fp-a", priority="auto"), 11)
    assert (back["issue"]["priority"], back["issue"]["priority_source"]) == ("low", "auto")
    # a fatal event raises the computed priority
    _, issues, _ = process_all(
        [record(0, level="warning"), record(1, T0 + 1, level="fatal")], rules
    )
    assert issues["fp-a"]["issue"]["priority"] == "high"


def test_ignored_until_escalating_comes_back_with_an_escalating_alert():
    rules = StreamRules()
    # a steady day of 2 events an hour, then ignored until escalating, then a burst
    history = [record(i, T0 - 86400 + (i // 2) * 3600 + i % 2) for i in range(48)]
    outputs, issues, _ = process_all(history, rules)
    ignored = apply_command(
        issues["fp-a"], make_command("ignore", "fp-a", until_escalating=True), 10**9
    )
    assert ignored["issue"]["status"] == "ignored"
    from pipeline.stages.aggregate import process_event

    state, alerts = ignored, []
    burst_alerts = []
    for i in range(FLOOR.__int__() + 2):
        out = process_event(
            record(1000 + i, T0 + 60 + i),
            "fp-a",
            10**9 + 1 + i,
            seen=None,
            issue_state=state,
            service_state=None,
            minute_value=None,
            rules=rules,
            now=T0 + 60 + i,
            watermark_minute=(T0 + 60 + i) // 60,
        )
        state = out.issue
        burst_alerts += [a for a in out.alerts if a["kind"] == "escalating"]
        if state["issue"]["status"] != "ignored":
            break
    # the forecast: mean + 3 sd of the last 168 hours (mostly zeros) is below the floor
    assert state["issue"]["status"] == "ongoing"
    assert i + 1 == FLOOR + 1  # the first hour count above the floor of 10
    assert [a["numbers"]["forecast"] for a in burst_alerts] == [FLOOR]
    assert burst_alerts[0]["numbers"]["count"] == FLOOR + 1
    alerts += burst_alerts
    assert len(alerts) == 1


def test_ignore_conditions_counts_windows_users_and_time():
    rules = StreamRules()
    _, issues, _ = process_all([record(0)], rules)
    base = issues["fp-a"]

    def run(command, events):
        from pipeline.stages.aggregate import process_event

        state = apply_command(base, command, 10**6)
        for n, (ts, user) in enumerate(events, start=1):
            rec = record(100 + n, ts, user=user)
            state = process_event(
                rec,
                "fp-a",
                10**6 + n,
                seen=None,
                issue_state=state,
                service_state=None,
                minute_value=None,
                rules=rules,
                now=ts,
                watermark_minute=int(ts // 60),
            ).issue
            if state["issue"]["status"] != "ignored":
                return n
        return None

    issued = T0 + 10
    cmd = make_command("ignore", "fp-a", until_count=3)
    assert run(cmd, [(T0 + 3600 * k, None) for k in range(1, 6)]) == 3
    # 3 within 10 minutes: spread-out events do not count, a burst does
    windowed = make_command("ignore", "fp-a", until_count=3, until_count_window=600)
    spread = [(T0 + 1200 * k, None) for k in range(1, 5)]
    assert run(windowed, spread) is None
    assert run(windowed, spread + [(T0 + 4801, None), (T0 + 4802, None)]) == 6
    users = make_command("ignore", "fp-a", until_users=2)
    assert run(users, [(T0 + k, "u1") for k in range(1, 4)] + [(T0 + 9, "u2")]) == 4
    timed = {**make_command("ignore", "fp-a", for_seconds=3600), "issued_at": issued}
    assert run(timed, [(issued + 1800, None), (issued + 3601, None)]) == 2
