"""Alert records (schema ``alert.v1.json``): built by pure functions, sent by the agents.

``alert_id`` is derived from what triggered the alert (kind, fingerprint or service, and a
trigger key such as the window start), so a replay produces the same id and consumers can
drop repeats.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from schemas import ALERT_SCHEMA_VERSION


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_id(kind: str, subject: str, trigger: str) -> str:
    return hashlib.blake2b(f"{kind}\x00{subject}\x00{trigger}".encode(), digest_size=16).hexdigest()


def make_alert(
    kind: str,
    *,
    service: str,
    fingerprint: str,
    title: str,
    numbers: dict[str, Any],
    trigger: str,
    now: float,
    record: dict[str, Any] | None = None,
    rule: str | None = None,
    fingerprints: list[str] | None = None,
) -> dict[str, Any]:
    """One alert; ``record`` (the triggering event, enriched) fills the descriptive fields."""
    alert: dict[str, Any] = {
        "schema_version": ALERT_SCHEMA_VERSION,
        "alert_id": alert_id(kind, fingerprint or service, trigger),
        "kind": kind,
        "created_at": rfc3339(now),
        "service": service,
        "fingerprint": fingerprint,
        "title": title,
        "numbers": numbers,
    }
    if record is not None:
        meta = record["_meta"]
        alert["event_time"] = rfc3339(meta["ts"])
        alert["event_id"] = record["event_id"]
        alert["level"] = record.get("level", "error")
        alert["culprit"] = meta.get("culprit", "")
        alert["category"] = meta.get("category", "unknown")
        for key in ("environment", "release"):
            if record.get(key):
                alert[key] = record[key]
    if rule:
        alert["rule"] = rule
    if fingerprints is not None:
        alert["fingerprints"] = fingerprints
    return alert
