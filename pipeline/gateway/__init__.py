"""``errorstream gateway``: the HTTP ingest gateway (Sentry-compatible). See docs/gateway.md.

    SDK ──HTTP──▶ server.py (aiohttp: CORS, body caps, auth.py, limits.py, compression.py)
                     │ ingest.py: envelope.py parse → pipeline.sentry conversion → scrub.py
                     │           → schema v1 check (pipeline.stages.decode)
                     ▼
                publisher.py ──acks=all──▶ topic_events ──▶ the worker (pipeline/app.py)
                     │
                  reply 200 {"id": ...} only after Kafka acknowledged; 503 + Retry-After if not

SIGTERM: /readyz turns 503, the listener closes, requests in flight finish, bodies still
arriving included (at most ``shutdown_timeout`` seconds), the producer flushes, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

log = logging.getLogger("errorstream.gateway")

# aiohttp would inflate gzip / deflate / br bodies itself, without a cap on the output:
# compression.py does it instead, incrementally and capped
SERVER_OPTIONS = {"auto_decompress": False}


async def serve(settings, stop: asyncio.Event | None = None) -> None:
    from pipeline.gateway.publisher import Publisher
    from pipeline.gateway.server import GatewayConfig, InFlight, build_gateway
    from pipeline.metrics import Metrics

    config = GatewayConfig.from_settings(settings)
    publisher = Publisher(
        settings.kafka_bootstrap,
        settings.topic_events,
        timeout=settings.gateway_publish_timeout,
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        max_request_size=settings.gateway_max_event_bytes * 2 + 65536,
    )
    stop = stop or asyncio.Event()
    draining = False
    inflight = InFlight()
    app = build_gateway(config, publisher, Metrics(), draining=lambda: draining, inflight=inflight)
    publisher.start()
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
        handle_signals=False,
        **SERVER_OPTIONS,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, settings.web_port)
    await site.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    log.info("gateway: listening on http://%s:%s", settings.web_host, settings.web_port)
    try:
        await stop.wait()
    finally:
        draining = True  # /readyz answers 503 from now on
        log.info(
            "gateway: draining %d request(s) (at most %ss)",
            inflight.count,
            settings.shutdown_timeout,
        )
        await site.stop()  # no new connections
        if not await inflight.wait_idle(settings.shutdown_timeout):
            log.warning("gateway: %d request(s) still running at the timeout", inflight.count)
        await runner.cleanup()  # idle keep-alive connections closed
        await publisher.stop()  # flushed
        log.info("gateway: stopped")


def run_gateway(settings) -> int:
    from pipeline.gateway.auth import parse_keys
    from pipeline.logs import configure_logging

    configure_logging(settings)
    if not parse_keys(settings.gateway_keys):
        log.warning("gateway: gateway_keys is empty: every ingest request will be refused (401)")
    from pipeline.runner import run_loop

    run_loop(lambda: serve(settings))  # uvloop when installed
    return 0
