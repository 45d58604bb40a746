"""Enriched records for stage tests (what the decode + fingerprint stages produce)."""

from __future__ import annotations

from typing import Any

T0 = 1_700_000_000 // 3600 * 3600  # an hour boundary


def record(
    i: int = 0,
    ts: float = T0,
    *,
    fp: str = "fp-a",
    service: str = "checkout",
    level: str = "error",
    release: str | None = "app@1.0.0",
    user: str | None = None,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "event_id": f"{i:032x}",
        "timestamp": ts,
        "service": service,
        "level": level,
        "environment": "prod",
        "exception": {"values": [{"type": "KeyError", "value": f"'k{i}'"}]},
        "breadcrumbs": [{"message": "x"}],
        "_meta": {
            "ts": ts,
            "received_at": ts,
            "fingerprint": fp,
            "secondary_fingerprints": [],
            "grouping_variant": "exception",
            "title": f"KeyError in {fp}",
            "culprit": "app.cart in total",
            "category": "bug",
        },
    }
    if release:
        rec["release"] = release
    if user:
        rec["user"] = {"id": user}
    return rec


def process_all(records: list[dict[str, Any]], rules: Any) -> tuple[list[Any], dict, dict]:
    """List in → (process_event outputs, issue table, service table), through fresh state
    for one partition, the way the issues agent threads state between events."""
    from pipeline.stages.aggregate import dedup_key, minute_key, process_event

    issues: dict = {}
    services: dict = {}
    minutes: dict = {}
    dedup: dict = {}
    outputs = []
    for offset, rec in enumerate(records):
        fp = rec["_meta"]["fingerprint"]
        mk, dk = minute_key(rec, fp), dedup_key(rec)
        o = process_event(
            rec,
            fp,
            offset,
            seen=dedup.get(dk),
            issue_state=issues.get(fp),
            service_state=services.get(rec["service"]),
            minute_value=minutes.get(mk),
            rules=rules,
            now=T0,
            watermark_minute=0,
        )
        for table, key, value in (
            (issues, fp, o.issue),
            (services, rec["service"], o.service),
            (minutes, mk, o.minute),
            (dedup, dk, o.dedup),
        ):
            if value is not None:
                table[key] = value
        outputs.append(o)
    return outputs, issues, services
