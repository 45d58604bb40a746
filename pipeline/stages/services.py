"""Per-service state (pure): minute counts, service spikes, sustained error rate, and the
correlation of many issues spiking together into one incident.

Events are partitioned by fingerprint, so each partition keeps its own share of a service
(key ``service|partition``) and compares it with its share of the service-level numbers
(``StreamRules.share``): exact per partition, see docs/stream-agents.md, "Keying". Value::

    {"o": replay guard, "ring": per-minute counts, "wm": newest event time, "first": first
     event time, "cd": {rule: cooldown end}, "cand": {"m": minute, "fps": [...]},
     "inc": {"until": event time, "fps": [...]}}

Incident correlation: a fingerprint spike is a *candidate*. While an incident of the service
is open, candidates join it silently. Otherwise candidates of the same minute are collected;
the first ``incident_min_issues - 1`` go out as spike alerts, the next one turns them into one
``incident`` alert listing all of them, which stays open for the cooldown.
"""

from __future__ import annotations

from typing import Any

from pipeline.stages.alerts import make_alert
from pipeline.stages.issues import spike_numbers
from pipeline.stages.rules import StreamRules
from pipeline.stages.spikes import SpikeCheck, check_spike, sustained_rate
from pipeline.stages.windows import is_late, minute_of, new_ring, ring_add


def new_service_state(ts: float) -> dict[str, Any]:
    return {
        "o": -1,
        "ring": new_ring(),
        "wm": None,
        "first": ts,
        "cd": {},
        "cand": None,
        "inc": None,
    }


def _cooled(st, rule, ts):
    return ts >= st["cd"].get(rule, float("-inf"))


def apply_service_event(
    state: dict[str, Any] | None,
    record: dict[str, Any],
    rules: StreamRules,
    offset: int,
    now: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Count one event into its service; returns the new state and service-level alerts."""
    ts = record["_meta"]["ts"]
    service = record["service"]
    st = new_service_state(ts) if state is None else dict(state)
    st["first"] = min(st["first"], ts)
    alerts: list[dict[str, Any]] = []
    late = is_late(ts, st["wm"], rules.grace)
    st["wm"] = ts if st["wm"] is None else max(st["wm"], ts)
    st["o"] = offset
    if late:
        return st, alerts
    minute = minute_of(ts)
    st["ring"] = ring = ring_add(st["ring"], minute, rules.ring_length)
    wm = st["wm"]
    if _cooled(st, "spike", wm):
        check = check_spike(
            ring,
            minute,
            minute_of(st["first"]),
            window=rules.spike_window,
            history=rules.spike_history,
            min_count=rules.share(rules.service_spike_min_count),
            multiplier=rules.spike_multiplier,
        )
        if check.spiking:
            st["cd"] = {**st["cd"], "spike": wm + rules.cooldown}
            numbers = spike_numbers(check, rules, rules.share(rules.service_spike_min_count))
            alerts.append(
                _service_alert(
                    "spike", service, record, f"service@{check.window_start}", numbers, now
                )
            )
    if _cooled(st, "error_rate", wm):
        low = sustained_rate(
            ring,
            minute,
            per_minute=rules.share(rules.error_rate_per_minute),
            minutes=rules.error_rate_minutes,
        )
        if low is not None:
            st["cd"] = {**st["cd"], "error_rate": wm + rules.cooldown}
            first = minute - rules.error_rate_minutes + 1
            numbers = {
                "count": sum(ring["r"][: rules.error_rate_minutes]),
                "min_per_minute": low,
                "threshold_per_minute": rules.share(rules.error_rate_per_minute),
                "window_seconds": rules.error_rate_minutes * 60,
                "window_start": first * 60,
            }
            alerts.append(
                _service_alert("error_rate", service, record, f"rate@{first}", numbers, now)
            )
    return st, alerts


def correlate_spike(
    state: dict[str, Any],
    fingerprint: str,
    title: str,
    check: SpikeCheck,
    record: dict[str, Any],
    rules: StreamRules,
    now: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A fingerprint spike candidate → a spike alert, an incident alert, or nothing (joined an
    open incident)."""
    st = dict(state)
    ts = record["_meta"]["ts"]
    minute = minute_of(ts)
    inc = st.get("inc")
    if inc and ts < inc["until"]:
        if fingerprint not in inc["fps"]:
            st["inc"] = {**inc, "fps": [*inc["fps"], fingerprint]}
        return st, []
    cand = st.get("cand")
    fps = cand["fps"] if cand and cand["m"] == minute else []
    fps = [*fps, fingerprint] if fingerprint not in fps else fps
    st["cand"] = {"m": minute, "fps": fps}
    if len(fps) >= rules.incident_min_issues:
        st["inc"] = {"until": st["wm"] + rules.cooldown, "fps": fps}
        st["cand"] = None
        numbers = {
            "issues": len(fps),
            "window_seconds": 60,
            "window_start": minute * 60,
            "min_issues": rules.incident_min_issues,
        }
        alert = make_alert(
            "incident",
            service=record["service"],
            fingerprint="",
            title=f"{len(fps)} issues spiking together in {record['service']}",
            numbers=numbers,
            trigger=f"incident@{minute}",
            now=now,
            record=record,
            fingerprints=fps,
        )
        return st, [alert]
    numbers = spike_numbers(check, rules, rules.spike_min_count)
    alert = make_alert(
        "spike",
        service=record["service"],
        fingerprint=fingerprint,
        title=title,
        numbers=numbers,
        trigger=f"spike@{check.window_start}",
        now=now,
        record=record,
    )
    return st, [alert]


def _service_alert(kind, service, record, trigger, numbers, now):
    return make_alert(
        kind,
        service=service,
        fingerprint="",
        title=f"{kind.replace('_', ' ')} in {service}",
        numbers=numbers,
        trigger=trigger,
        now=now,
        record=record,
    )
