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
