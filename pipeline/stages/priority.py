"""Issue priority and escalation (pure).

Escalation: an issue keeps a ring of hourly event counts (``HISTORY_HOURS`` + the current
hour, in event time, inside its state). Once per hour (the first event of a new hour) the
forecast for the hour is computed from the previous 168 hourly counts (zeros included):

    forecast = max(mean + SIGMAS · stddev, FLOOR)        (population stddev; SIGMAS = 3,
                                                          FLOOR = 10 events per hour)
    escalating ⇔ count of the current hour > forecast

For a steady issue the forecast sits a few standard deviations above its usual hourly
rate; for a bursty one it is higher; for a new or rare one the floor keeps single events
from counting as an escalation.

Priority (``computed_priority``), from the issue's levels, escalation and user impact:

    high    a fatal or critical event, or escalating (issues older than a day), or ≥ 100 users
    medium  an error event, or ≥ 10 users
    low     otherwise (only warning / info / debug events, few users)

A person's choice (the ``priority`` command) overrides it until ``priority auto``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from pipeline.stages.rules import CRITICAL_LEVELS
from pipeline.stages.windows import ring_add

HISTORY_HOURS = 168
SIGMAS = 3.0
FLOOR = 10.0
HIGH_USERS = 100
MEDIUM_USERS = 10
PRIORITY_MIN_AGE = 86400  # seconds an issue must exist before its escalation raises priority
PRIORITIES = ("high", "medium", "low")
RANK = {"high": 0, "medium": 1, "low": 2}


def hour_of(ts: float) -> int:
    return int(ts // 3600)


def forecast(history: Sequence[int], sigmas: float = SIGMAS, floor: float = FLOOR) -> float:
    """The most events the next hour is expected to hold, from the hourly counts before it."""
    if not history:
        return floor
    n = len(history)
    mean = sum(history) / n
    variance = sum((x - mean) ** 2 for x in history) / n
    return max(mean + sigmas * math.sqrt(variance), floor)


def hourly_history(ring: dict[str, Any], hour: int, hours: int = HISTORY_HOURS) -> list[int]:
    """The counts of the ``hours`` hours before ``hour`` (oldest last), zeros where none."""
    newest, counts = ring["m"], ring["r"]
    if newest is None:
        return [0] * hours
    out = []
    for h in range(hour - 1, hour - 1 - hours, -1):
        age = newest - h
        out.append(counts[age] if 0 <= age < len(counts) else 0)
    return out


def count_hour(ring: dict[str, Any], hour: int) -> dict[str, Any]:
    return ring_add(ring, hour, HISTORY_HOURS + 1)


def escalation(state: dict[str, Any], hour: int) -> tuple[bool, int, float]:
    """(escalating, the current hour's count, the forecast) after an event of ``hour``;
    the forecast is cached in ``state["fc"]`` = [hour, forecast] (recomputed once per hour)."""
    ring = state["hr"]
    cached = state.get("fc")
    if cached and cached[0] == hour:
        value = cached[1]
    else:
        value = forecast(hourly_history(ring, hour))
        state["fc"] = [hour, value]
    age = ring["m"] - hour if ring["m"] is not None else -1
    current = ring["r"][age] if 0 <= age < len(ring["r"]) else 0
    return current > value, current, value


def computed_priority(levels: Iterable[str], users: int, escalating: bool) -> str:
    levels = set(levels)
    if escalating or levels & CRITICAL_LEVELS or users >= HIGH_USERS:
        return "high"
    if "error" in levels or users >= MEDIUM_USERS:
        return "medium"
    return "low"
