"""Optional Prometheus collector over ``stats()``; imports ``prometheus_client`` lazily.

errorstream_sdk_queue_depth              gauge
errorstream_sdk_sent_total               counter
errorstream_sdk_dropped_total{reason}    counter
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from errorstream_sdk import api
from errorstream_sdk.stats import DROP_REASONS


class SDKCollector:
    def __init__(self, stats: Callable[[], dict[str, Any]] = api.stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self._stats()
        depth = GaugeMetricFamily("errorstream_sdk_queue_depth", "Events waiting in the SDK queue")
        depth.add_metric([], s["queue_depth"])
        yield depth
        sent = CounterMetricFamily("errorstream_sdk_sent", "Events acknowledged by Kafka")
        sent.add_metric([], s["sent"])
        yield sent
        dropped = CounterMetricFamily(
            "errorstream_sdk_dropped", "Events dropped by the SDK, by reason", labels=["reason"]
        )
        for reason in DROP_REASONS:
            dropped.add_metric([reason], s["dropped"].get(reason, 0))
        yield dropped


def register_collector(registry: Any = None) -> SDKCollector:
    """Register on ``registry`` (default: prometheus_client's global REGISTRY)."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    collector = SDKCollector()
    registry.register(collector)
    return collector
