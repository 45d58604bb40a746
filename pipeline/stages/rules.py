"""The stream rules: every knob of counting, admission and alerting, as one frozen value.

Built once from the settings (``StreamRules.from_settings``) and passed to the pure stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pipeline.stages.spikes import ThresholdRule, parse_threshold_rules

CRITICAL_LEVELS = frozenset({"fatal", "critical"})


def parse_sample_rates(text: str) -> dict[str, float]:
    """``"debug=0.01, info=0.1"`` → ``{"debug": 0.01, "info": 0.1}``; ValueError when bad."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        level, sep, value = part.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not sep or not level.strip() or not 0.0 <= rate <= 1.0:
            raise ValueError(f"bad sample rate {part!r}: expected level=rate with 0 <= rate <= 1")
        rates[level.strip().lower()] = rate
    return rates


@dataclass(frozen=True)
class StreamRules:
    fingerprint_limit: int = 100  # event bodies per fingerprint per minute
    service_limit: int = 10_000  # event bodies per service per minute
    sample_rates: dict[str, float] = field(default_factory=dict)  # level → rate kept
    grace: float = 60.0  # seconds an event may be late and still count in windows
    spike_window: int = 5  # minutes
    spike_history: int = 12  # previous windows in the baseline (12 × 5 min = the last hour)
    spike_multiplier: float = 5.0
    spike_min_count: int = 20
    service_spike_min_count: int = 200
    thresholds: tuple[ThresholdRule, ...] = ()
    error_rate_per_minute: int = 1000
    error_rate_minutes: int = 5
    cooldown: float = 1800.0  # seconds of event time between two alerts of a rule and key
    incident_min_issues: int = 3  # spiking issues of one service in one minute → one incident
    dedup_minutes: int = 10
    partitions: int = 4

    def share(self, service_level: int) -> int:
        """A partition's share of a service-level number (limits, min counts, rates)."""
        return max(1, -(-service_level // self.partitions))

    @property
    def ring_length(self) -> int:
        return _ring_length(
            self.spike_window, self.spike_history, self.error_rate_minutes, self.thresholds
        )

    @classmethod
    def from_settings(cls, s: Any) -> StreamRules:
        return cls(
            fingerprint_limit=s.fingerprint_limit_per_minute,
            service_limit=s.service_limit_per_minute,
            sample_rates=parse_sample_rates(s.sample_rates),
            grace=s.window_grace,
            spike_window=s.spike_window_minutes,
            spike_history=s.spike_baseline_windows,
            spike_multiplier=s.spike_multiplier,
            spike_min_count=s.spike_min_count,
            service_spike_min_count=s.service_spike_min_count,
            thresholds=parse_threshold_rules(s.threshold_rules),
            error_rate_per_minute=s.error_rate_per_minute,
            error_rate_minutes=s.error_rate_minutes,
            cooldown=s.alert_cooldown,
            incident_min_issues=s.incident_min_issues,
            dedup_minutes=s.dedup_window_minutes,
            partitions=s.partitions,
        )


@lru_cache(maxsize=64)
def _ring_length(
    spike_window: int, spike_history: int, error_rate_minutes: int, thresholds: tuple
) -> int:
    """Minutes a per-minute ring keeps: the longest window any rule looks at, plus one."""
    longest = max(
        [spike_window * (spike_history + 1), error_rate_minutes] + [r.minutes for r in thresholds]
    )
    return longest + 1
