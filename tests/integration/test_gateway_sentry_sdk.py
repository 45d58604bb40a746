"""The real sentry-sdk (from PyPI) sending to the real gateway on loopback: chained
exceptions, a message with an attached stack (threads interface) and a logging-integration
record arrive on the ingest topic as valid v1 events and group into issues with the right
titles, culprits and frames."""

from __future__ import annotations

import logging
import time

import pytest
import sentry_sdk
from prometheus_client.parser import text_string_to_metric_families
from sentry_sdk.integrations.logging import LoggingIntegration

from pipeline.grouping import GroupingConfig
from pipeline.stages.decode import DecodedEvent, validate_event
from pipeline.stages.fingerprint import enrich
from tests.integration.gateway_harness import KEY, GatewayProcess, gateway_env, read_topic

pytestmark = pytest.mark.integration
HERE = __name__  # the module name the SDK gives these frames


def load_order(orders: dict) -> dict:
    return orders["sku-17"]


def handle_request() -> None:
    try:
        load_order({})
    except KeyError as exc:
        raise RuntimeError("order 17 could not be loaded") from exc


def warm_cache(shards: int) -> str | None:
    return sentry_sdk.capture_message(f"cache warmup failed for {shards} shards", level="warning")


def test_sentry_sdk_events_become_issues(kafka_bootstrap, tmp_path):
    gw = GatewayProcess(gateway_env(kafka_bootstrap), tmp_path / "gateway.log").start()
    try:
        with sentry_sdk.init(
            dsn=f"http://{KEY}@127.0.0.1:{gw.port}/1",
            default_integrations=False,
            integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
            attach_stacktrace=True,
            release="shop@1.4.0",
            environment="test",
            auto_session_tracking=False,
        ):
            try:
                handle_request()
            except RuntimeError:
                chained_id = sentry_sdk.capture_exception()
            message_id = warm_cache(3)
            logging.getLogger("shop.orders").error("order %s failed: %s", 42, "timeout")
            assert sentry_sdk.flush(timeout=10) is None
        events = read_topic(kafka_bootstrap, gw.topic)
        status, text = gw.get("/metrics")
        assert status == 200
    finally:
        gw.stop()

    assert len(events) == 3, events
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    assert samples[("errorstream_gateway_items_total", (("type", "event"),))] == 3
    wire = samples[("errorstream_gateway_received_bytes_total", (("stage", "wire"),))]
    inflated = samples[("errorstream_gateway_received_bytes_total", (("stage", "decompressed"),))]
    assert wire < inflated  # the SDK compressed its bodies (brotli, as it is installed)
    by_id = {e["event_id"]: e for e in events}
    assert set(by_id) >= {chained_id, message_id}
    (log_id,) = set(by_id) - {chained_id, message_id}
    meta = {}
    for event_id, event in by_id.items():
        decoded = validate_event(event)
        assert isinstance(decoded, DecodedEvent), decoded
        assert event["service"] == "checkout" and event["release"] == "shop@1.4.0"
        assert event["sdk"]["name"] == "sentry.python"
        meta[event_id] = enrich(decoded, GroupingConfig(), time.time())["_meta"]

    chained = by_id[chained_id]
    values = chained["exception"]["values"]
    assert [v["type"] for v in values] == ["KeyError", "RuntimeError"]
    assert [f["function"] for f in values[0]["stacktrace"]["frames"]][-2:] == [
        "handle_request",
        "load_order",
    ]
    assert values[-1]["stacktrace"]["frames"][-1]["function"] == "handle_request"
    assert meta[chained_id]["title"] == "RuntimeError: order <int> could not be loaded"
    assert meta[chained_id]["culprit"] == f"{HERE} in handle_request"
    assert meta[chained_id]["grouping_variant"] == "in_app_stacktrace"

    message = by_id[message_id]
    assert message["level"] == "warning"
    # attach_stacktrace puts the stack in `threads`: it is read, and groups the event
    assert meta[message_id]["title"] == "cache warmup failed for <int> shards"
    assert meta[message_id]["culprit"] == f"{HERE} in warm_cache"
    assert meta[message_id]["grouping_variant"] == "in_app_stacktrace"

    record = by_id[log_id]
    assert record["logger"] == "shop.orders" and record["level"] == "error"
    assert record["message"]["message"] == "order %s failed: %s"
    assert record["message"]["formatted"] == "order 42 failed: timeout"
    assert meta[log_id]["title"] == "order <int> failed: timeout"

    assert message["exception"]["values"][0]["mechanism"] == {
        "type": "stacktrace",
        "synthetic": True,
    }
    assert len({m["fingerprint"] for m in meta.values()}) == 3  # three issues
