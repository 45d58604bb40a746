"""Stage 3 (first version): per-fingerprint issue state.

Pure: the previous state (or None) and an enriched record in, the new state out.
"""

from __future__ import annotations

from typing import Any


def update_issue(state: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    meta = record["_meta"]
    ts = meta["ts"]
    if state is None:
        return {
            "fingerprint": meta["fingerprint"],
            "service": record["service"],
            "title": meta["title"],
            "culprit": meta["culprit"],
            "category": meta["category"],
            "first_seen": ts,
            "last_seen": ts,
            "count": 1,
        }
    new = dict(state)
    new["first_seen"] = min(state["first_seen"], ts)
    new["last_seen"] = max(state["last_seen"], ts)
    new["count"] = state["count"] + 1
    return new
