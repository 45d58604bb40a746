"""One event through the stateful stage (pure): dedup → count → admit → alerts → record.

The issues agent reads four table values (the dedup entry, the issue, the service, the
minute counter), calls ``process_event``, writes back what changed, sends the alerts, then the
processed record. Tables and topics stay in the agent; every decision is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.stages import admission as adm
from pipeline.stages.dedup import is_upstream_duplicate, should_apply
from pipeline.stages.issues import apply_event, user_hash
from pipeline.stages.rules import StreamRules
from pipeline.stages.services import apply_service_event, correlate_spike
from pipeline.stages.windows import is_late, minute_of, ring_count


def minute_key(record: dict[str, Any], fingerprint: str, partition: int = 0) -> str:
    """``partition|`` + the contract key (service, fingerprint, minute, level, release,
    environment); the partition prefix lets eviction find a partition's keys."""
    minute = minute_of(record["_meta"]["ts"]) * 60
    return "|".join(
        (
            str(partition),
            record["service"],
            fingerprint,
            str(minute),
            record.get("level") or "error",
            record.get("release") or "",
            record.get("environment") or "",
        )
    )


def dedup_key(record: dict[str, Any], partition: int = 0) -> str:
    return f"{partition}|{record['event_id']}"


def service_key(service: str, partition: int) -> str:
    """Service counters are kept per partition: each partition counts its share."""
    return f"{service}|{partition}"


@dataclass
class Outcome:
    record: dict[str, Any]  # the processed record (lean when the body was shed)
    duplicate: bool  # an upstream duplicate: not counted, forwarded with the current counts
    admission: adm.Admission
    issue: dict[str, Any] | None = None  # new table values; None = unchanged
    service: dict[str, Any] | None = None
    minute: list[int] | None = None
    dedup: list[int] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    late: bool = False  # older than its issue's watermark minus the grace: not in the windows


def process_event(
    record: dict[str, Any],
    fingerprint: str,
    offset: int,
    *,
    seen: list | None,
    issue_state: dict[str, Any] | None,
    service_state: dict[str, Any] | None,
    minute_value: list[int] | None,
    rules: StreamRules,
    now: float,
    watermark_minute: int,
) -> Outcome:
    meta = record["_meta"]
    ts = meta["ts"]
    minute = minute_of(ts)
    uhash = user_hash(record)
    duplicate = is_upstream_duplicate(seen, offset)
    out_issue = out_service = out_minute = out_dedup = None
    alerts: list[dict[str, Any]] = []
    issue, service, mvalue = issue_state, service_state, minute_value

    late = False
    if not duplicate:
        if should_apply(issue, offset):
            late = issue is not None and is_late(ts, issue["wm"], rules.grace)
            issue, fp_alerts, spike = apply_event(
                issue, record, fingerprint, uhash, rules, offset, now
            )
            out_issue = issue
            alerts.extend(fp_alerts)
        else:
            spike = None
        if should_apply(service, offset):
            service, svc_alerts = apply_service_event(service, record, rules, offset, now)
            if spike is not None:
                service, spiked = correlate_spike(
                    service, fingerprint, issue["issue"]["title"], spike, record, rules, now
                )
                svc_alerts = spiked + svc_alerts
            out_service = service
            alerts.extend(svc_alerts)
        if mvalue is None or mvalue[1] < offset:
            mvalue = out_minute = [(mvalue[0] if mvalue else 0) + 1, offset]

    if seen is not None:  # a replay or a duplicate: decide as the first delivery did
        decision = adm.decode(seen[2], rules.sample_rates.get(record.get("level", "error"), 1.0))
    else:
        fp_count = ring_count(issue["ring"], minute) if issue else 0
        svc_count = ring_count(service["ring"], minute) if service else 0
        decision = adm.admit(
            event_id=record["event_id"],
            level=record.get("level", "error"),
            fingerprint_minute_count=fp_count,
            service_minute_count=svc_count,
            fingerprint_limit=rules.fingerprint_limit,
            service_limit=rules.share(rules.service_limit),
            sample_rates=rules.sample_rates,
        )
        out_dedup = [offset, watermark_minute, adm.encode(decision)]

    meta["fingerprint"] = fingerprint
    meta["body_stored"] = decision.body_stored
    meta["shed_reason"] = decision.shed_reason
    meta["sample_rate"] = decision.sample_rate
    meta["minute"] = minute * 60
    meta["minute_count"] = mvalue[0] if mvalue else 0
    meta["user_hash"] = uhash
    meta["issue"] = issue["issue"] if issue else None
    body = record if decision.body_stored else adm.lean_record(record)
    return Outcome(
        body, duplicate, decision, out_issue, out_service, out_minute, out_dedup, alerts, late
    )


def resolve_alias(aliases: Any, fingerprint: str, hops: int = 8) -> str | None:
    """Follow ``fingerprint → canonical`` links (merges can chain); None when not aliased."""
    found = None
    for _ in range(hops):
        nxt = aliases.get(fingerprint)
        if nxt is None:
            break
        found = fingerprint = nxt
    return found
