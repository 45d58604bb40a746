"""Stage 3: per-fingerprint issue state (pure).

One table value per issue, written once per event::

    {"o": offset of the last record applied (replay guard, see dedup.py),
     "issue": the public snapshot (processed-topic contract, /api/state/issues),
     "hll": distinct users (hll.py), "ring": per-minute counts (windows.py),
     "wm": newest event time seen, "sample": the last event, trimmed,
     "cd": {rule: cooldown end, event time}, "ign": ignore conditions, "uw": users windows,
     "hr": hourly counts (priority.py), "fc": [hour, forecast], "esc": escalating now,
     "rnext": resolved in the release after this one, "absorbed": merge command ids}

Lifecycle: new → ongoing; resolve → resolved; an event newer than the resolution (event time)
and from a release >= resolved_in_release (when set; strictly newer than the latest release
seen at the resolve for "in the next release") → regressed; ignore → ignored until N more
events (optionally within a window), U more users, a time, or until escalating
(``priority.py``; an ``escalating`` alert), then ongoing; unresolve → ongoing; merge folds
one issue into another; assign and priority change who owns it and how urgent it is.
"""

from __future__ import annotations

from typing import Any

from pipeline.stages import hll
from pipeline.stages.alerts import make_alert
from pipeline.stages.priority import (
    HISTORY_HOURS,
    PRIORITY_MIN_AGE,
    computed_priority,
    count_hour,
    escalation,
    hour_of,
)
from pipeline.stages.records import SAMPLE, sample_of
from pipeline.stages.releases import is_at_least
from pipeline.stages.rules import CRITICAL_LEVELS, StreamRules
from pipeline.stages.spikes import SpikeCheck, check_spike, events_in_last, users_window_start
from pipeline.stages.windows import is_late, minute_of, new_ring, ring_add

NEW, ONGOING, RESOLVED, IGNORED, REGRESSED = "new", "ongoing", "resolved", "ignored", "regressed"


def user_key(record: dict[str, Any]) -> str | None:
    user = record.get("user")
    if not isinstance(user, dict):
        return None
    for field in ("id", "email", "ip_address", "username"):
        if user.get(field):
            return f"{field}:{user[field]}"
    return None


def user_hash(record: dict[str, Any]) -> int | None:
    """Stable 63-bit hash of the user (id, else email, else ip), or None."""
    key = user_key(record)
    return None if key is None else hll.hash64(key) & (2**63 - 1)


def trim_sample(record: dict[str, Any]) -> dict[str, Any]:
    """The latest-event sample: from the facts the decoder trimmed (``records.SAMPLE``), or
    from a whole record."""
    sample = record.get(SAMPLE) or sample_of(record)
    return {
        "event_id": record["event_id"],
        "ts": record["_meta"]["ts"],
        "level": record.get("level", "error"),
        "release": record.get("release"),
        "environment": record.get("environment"),
        "exception": sample[0],
        "message": sample[1],
    }


def new_state(record: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    meta = record["_meta"]
    return {
        "o": -1,
        "issue": {
            "fingerprint": fingerprint,
            "service": record["service"],
            "title": meta["title"],
            "culprit": meta["culprit"],
            "category": meta["category"],
            "status": NEW,
            "first_seen": meta["ts"],
            "last_seen": meta["ts"],
            "count": 0,
            "users": 0,
            "levels": [],
            "resolved_at": None,
            "resolved_in_release": None,
            "priority": "low",
            "priority_source": "auto",
            "assignee": None,
            "version": 0,
        },
        "hll": hll.empty(),
        "ring": new_ring(),
        "wm": None,
        "sample": None,
        "cd": {},
        "ign": None,
        "uw": {},
        "hr": new_ring(),
        "fc": None,
        "esc": False,
        "rnext": None,
        "absorbed": [],
    }


def cooled(state: dict[str, Any], rule: str, now_ts: float) -> bool:
    """Whether ``rule`` may fire for this key at event time ``now_ts``."""
    return now_ts >= state["cd"].get(rule, float("-inf"))


def _alert(kind, issue, record, trigger, numbers, now, rule=None):
    return make_alert(
        kind,
        service=issue["service"],
        fingerprint=issue["fingerprint"],
        title=issue["title"],
        numbers=numbers,
        trigger=trigger,
        now=now,
        record=record,
        rule=rule,
    )


def apply_event(
    state: dict[str, Any] | None,
    record: dict[str, Any],
    fingerprint: str,
    uhash: int | None,
    rules: StreamRules,
    offset: int,
    now: float,
) -> tuple[dict[str, Any], list[dict[str, Any]], SpikeCheck | None]:
    """Count one event into its issue. Returns the new state, the alerts it triggers, and a
    spike candidate (the service stage decides between a spike alert and an incident)."""
    is_new = state is None
    st = new_state(record, fingerprint) if state is None else dict(state)
    issue = st["issue"] = dict(st["issue"])
    ts = record["_meta"]["ts"]
    level = record.get("level", "error")
    alerts: list[dict[str, Any]] = []

    issue["count"] += 1
    issue["first_seen"] = min(issue["first_seen"], ts)
    issue["last_seen"] = max(issue["last_seen"], ts)
    issue["version"] += 1
    if level not in issue["levels"]:
        issue["levels"] = sorted([*issue["levels"], level])
    if uhash is not None:
        registers = hll.add_hash(st["hll"], uhash)
        if registers is not st["hll"] or not issue["users"]:
            st["hll"] = registers
            issue["users"] = hll.estimate(registers)
    if state is None or ts >= (st["wm"] or 0):
        st["sample"] = trim_sample(record)
    status = issue["status"]

    # windows (event time, with grace for late events) and the hourly history
    late = is_late(ts, st["wm"], rules.grace)
    st["wm"] = ts if st["wm"] is None else max(st["wm"], ts)
    minute = minute_of(ts)
    if not late:
        st["ring"] = ring_add(st["ring"], minute, rules.ring_length)
    st["hr"] = count_hour(st.get("hr") or new_ring(), hour_of(ts))
    now_hour = hour_of(st["wm"])
    escalating, hour_count, hour_forecast = escalation(st, now_hour)
    st["esc"] = escalating

    # lifecycle
    if status == NEW and not is_new:
        status = ONGOING
    elif status == RESOLVED:
        release = record.get("release")
        rnext = st.get("rnext")
        if (
            ts > (issue["resolved_at"] or 0)
            and is_at_least(release, issue["resolved_in_release"])
            and (rnext is None or (release != rnext and is_at_least(release, rnext)))
        ):
            status = REGRESSED
            alerts.append(
                _alert(
                    "regression",
                    issue,
                    record,
                    f"resolved@{issue['resolved_at']}",
                    {
                        "resolved_at": issue["resolved_at"],
                        "resolved_in_release": issue["resolved_in_release"],
                        "count": issue["count"],
                    },
                    now,
                )
            )
    elif status == IGNORED:
        ign = dict(st["ign"] or {})
        expired = ignore_expired(st, ign, issue, ts, minute, escalating)
        st["ign"] = None if expired else ign
        if expired:
            status = ONGOING
        if expired and ign.get("esc") and escalating:
            alerts.append(
                _alert(
                    "escalating",
                    issue,
                    record,
                    f"escalating@{now_hour}",
                    {
                        "count": hour_count,
                        "forecast": round(hour_forecast, 3),
                        "window_seconds": 3600,
                        "window_start": now_hour * 3600,
                    },
                    now,
                )
            )
    issue["status"] = status
    if issue.get("priority_source", "auto") == "auto":
        issue["priority"] = auto_priority(st, issue)
    else:
        issue.setdefault("priority", "medium")
    if is_new:
        alerts.append(
            _alert(
                "new_issue",
                issue,
                record,
                "first",
                {"count": 1, "first_seen": ts, "critical": int(level in CRITICAL_LEVELS)},
                now,
            )
        )

    spike = None
    if not late:
        if status != IGNORED:
            alerts.extend(_window_alerts(st, issue, record, minute, uhash, rules, now))
            spike = _spike_candidate(st, issue, minute, rules)
    # The first event of an issue raises new_issue (which carries its level), not both.
    critical = level in CRITICAL_LEVELS and not is_new and status != IGNORED
    if critical and cooled(st, "critical", st["wm"]):
        st["cd"] = {**st["cd"], "critical": st["wm"] + rules.cooldown}
        alerts.append(
            _alert("critical", issue, record, record["event_id"], {"level_count": 1}, now)
        )
    st["o"] = offset
    return st, alerts, spike


def ignore_expired(st, ign: dict, issue: dict, ts: float, minute: int, escalating: bool) -> bool:
    """Whether an ignored issue comes back with this event (``ign`` is updated in place):
    any of its conditions reached — N more events (within a window of W seconds when set:
    the minute ring up to an hour, the hourly ring beyond), U more users, a time, or
    escalating."""
    count = ign.get("count")
    if count is not None:
        window = ign.get("window")
        if window is None:
            ign["count"] = count = count - 1
            if count <= 0:
                return True
        else:
            if window <= 3600:
                seen = events_in_last(st["ring"], minute, -(-window // 60))
            else:
                hours = -(-window // 3600)
                newest, counts = st["hr"]["m"], st["hr"]["r"]
                age = newest - hour_of(ts)
                seen = sum(counts[max(age, 0) : max(age, 0) + hours])
            if seen >= count:
                return True
    if ign.get("users") is not None and issue["users"] - ign.get("u0", 0) >= ign["users"]:
        return True
    if ign.get("until") is not None and ts >= ign["until"]:
        return True
    return bool(ign.get("esc") and escalating)


def auto_priority(st: dict[str, Any], issue: dict[str, Any]) -> str:
    old_enough = (st["wm"] or 0) - issue["first_seen"] >= PRIORITY_MIN_AGE
    return computed_priority(issue["levels"], issue["users"], bool(st.get("esc")) and old_enough)


def _window_alerts(st, issue, record, minute, uhash, rules: StreamRules, now):
    alerts = []
    wm = st["wm"]
    for rule in rules.thresholds:
        if rule.metric == "events":
            count = events_in_last(st["ring"], minute, rule.minutes)
            start = minute - rule.minutes + 1
        else:
            start = users_window_start(minute, rule.minutes)
            win = st["uw"].get(rule.name)
            regs = win[1] if win and win[0] == start else hll.empty()
            if uhash is not None:
                regs = hll.add_hash(regs, uhash)
            st["uw"] = {**st["uw"], rule.name: [start, regs]}
            count = hll.estimate(regs)
        if count > rule.limit and cooled(st, rule.name, wm):
            st["cd"] = {**st["cd"], rule.name: wm + rules.cooldown}
            numbers = {
                "metric": rule.metric,
                "count": count,
                "threshold": rule.limit,
                "window_seconds": rule.minutes * 60,
                "window_start": start * 60,
            }
            alerts.append(
                _alert("threshold", issue, record, f"{rule.name}@{start}", numbers, now, rule.name)
            )
    return alerts


def _spike_candidate(st, issue, minute, rules: StreamRules) -> SpikeCheck | None:
    if not cooled(st, "spike", st["wm"]):
        return None
    check = check_spike(
        st["ring"],
        minute,
        minute_of(issue["first_seen"]),
        window=rules.spike_window,
        history=rules.spike_history,
        min_count=rules.spike_min_count,
        multiplier=rules.spike_multiplier,
    )
    if not check.spiking:
        return None
    st["cd"] = {**st["cd"], "spike": st["wm"] + rules.cooldown}
    return check


def spike_numbers(check: SpikeCheck, rules: StreamRules, min_count: int) -> dict[str, Any]:
    return {
        "count": check.count,
        "window_seconds": rules.spike_window * 60,
        "window_start": check.window_start * 60,
        "baseline": round(check.baseline.mean, 3),
        "baseline_stdev": round(check.baseline.stdev, 3),
        "baseline_windows": check.baseline.windows,
        "multiplier": rules.spike_multiplier,
        "min_count": min_count,
    }


# --- lifecycle commands --------------------------------------------------------------------
def apply_command(state: dict[str, Any], command: dict[str, Any], offset: int) -> dict[str, Any]:
    """The state after a resolve / ignore / unresolve command (merge: ``merge_states``)."""
    st = dict(state)
    issue = st["issue"] = dict(st["issue"])
    action = command["command"]
    if action == "resolve":
        issue["status"] = RESOLVED
        issue["resolved_at"] = command.get("at") or command["issued_at"]
        issue["resolved_in_release"] = command.get("release")
        latest = (st.get("sample") or {}).get("release")
        st["rnext"] = latest if command.get("in_next_release") else None
        st["ign"] = None
    elif action == "ignore":
        issue["status"] = IGNORED
        until = command.get("until_time")
        if command.get("for_seconds") is not None:
            end = command["issued_at"] + command["for_seconds"]
            until = end if until is None else min(until, end)
        st["ign"] = {
            "count": command.get("until_count"),
            "window": command.get("until_count_window"),
            "until": until,
            "users": command.get("until_users"),
            "u0": issue["users"],
            "esc": bool(command.get("until_escalating")),
        }
    elif action == "unresolve":
        issue["status"] = ONGOING
        issue["resolved_at"] = None
        issue["resolved_in_release"] = None
        st["ign"] = None
        st["rnext"] = None
    elif action == "assign":
        issue["assignee"] = command.get("assignee") or None
    elif action == "priority":
        if command["priority"] == "auto":
            issue["priority_source"] = "auto"
            issue["priority"] = auto_priority(st, issue)
        else:
            issue["priority_source"] = "manual"
            issue["priority"] = command["priority"]
    issue["version"] += 1
    st["o"] = offset
    return st


def merge_states(target: dict[str, Any], source: dict[str, Any], offset: int) -> dict[str, Any]:
    """Fold ``source`` into ``target``: counts add, users merge, times widen, rings add."""
    st = dict(target)
    issue = st["issue"] = dict(target["issue"])
    src = source["issue"]
    issue["count"] += src["count"]
    issue["first_seen"] = min(issue["first_seen"], src["first_seen"])
    issue["last_seen"] = max(issue["last_seen"], src["last_seen"])
    issue["levels"] = sorted(set(issue["levels"]) | set(src["levels"]))
    st["hll"] = hll.merge(target["hll"], source["hll"])
    issue["users"] = hll.estimate(st["hll"])
    ring = target["ring"]
    src_ring = source["ring"]
    if src_ring["m"] is not None:
        length = max(len(src_ring["r"]), len(ring["r"]) or 0)
        for age, n in enumerate(src_ring["r"]):
            if n:
                ring = ring_add(ring, src_ring["m"] - age, length, n)
    st["ring"] = ring
    hourly = target.get("hr") or new_ring()
    src_hourly = source.get("hr") or new_ring()
    if src_hourly["m"] is not None:
        for age, n in enumerate(src_hourly["r"]):
            if n:
                hourly = ring_add(hourly, src_hourly["m"] - age, HISTORY_HOURS + 1, n)
    st["hr"] = hourly
    st["fc"] = None
    st["wm"] = max(filter(None, (target["wm"], source["wm"])), default=None)
    if issue.get("priority_source", "auto") == "auto":
        issue["priority"] = auto_priority(st, issue)
    issue["version"] += 1
    st["o"] = offset
    return st


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    return state["issue"]
