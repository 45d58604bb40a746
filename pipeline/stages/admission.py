"""Admission control and server-side sampling (pure): which event *bodies* go on to the sink.

Every event is counted in the aggregates before this decision; only the body is shed. The
decision depends on the event's position in its minute (the exact per-minute count after it),
so it is deterministic: a replay of the same event at the same position decides the same.

Sampling by level is decided by a hash of the event_id (stable across replays) and records its
rate, so stored bodies can be re-weighted by ``1 / sample_rate``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

FINGERPRINT_LIMIT = "fingerprint_limit"
SERVICE_LIMIT = "service_limit"
SAMPLED = "sampled"
LEAN_FIELDS = (
    "event_id",
    "timestamp",
    "service",
    "level",
    "release",
    "environment",
    "user",
    "tags",
    "_meta",
)


@dataclass(frozen=True, slots=True)
class Admission:
    body_stored: bool
    shed_reason: str | None
    sample_rate: float


KEEP = Admission(True, None, 1.0)


def sample_keep(event_id: str, rate: float) -> bool:
    """Keep about ``rate`` of the events, decided by the event_id alone."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    h = int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")
    return h < rate * 2**64


def admit(
    *,
    event_id: str,
    level: str,
    fingerprint_minute_count: int,
    service_minute_count: int,
    fingerprint_limit: int,
    service_limit: int,
    sample_rates: dict[str, float],
) -> Admission:
    """Limits first (the body is over the minute's budget), then sampling by level."""
    rate = sample_rates.get(level, 1.0)
    if fingerprint_minute_count > fingerprint_limit:
        return Admission(False, FINGERPRINT_LIMIT, rate)
    if service_minute_count > service_limit:
        return Admission(False, SERVICE_LIMIT, rate)
    if rate < 1.0 and not sample_keep(event_id, rate):
        return Admission(False, SAMPLED, rate)
    return Admission(True, None, rate) if rate < 1.0 else KEEP


def lean_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its body: only the fields the aggregates need."""
    return {k: record[k] for k in LEAN_FIELDS if k in record}


# Compact codes so the decision fits in the dedup value and replays decide the same.
_CODES = {None: 0, FINGERPRINT_LIMIT: 1, SERVICE_LIMIT: 2, SAMPLED: 3}
_REASONS = {v: k for k, v in _CODES.items()}


def encode(a: Admission) -> int:
    return _CODES[a.shed_reason]


def decode(code: int, rate: float) -> Admission:
    reason = _REASONS[code]
    return Admission(reason is None, reason, rate)
