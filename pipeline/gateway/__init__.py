"""``errorstream gateway``: the HTTP ingest gateway (Sentry-compatible). See docs/gateway.md.

    SDK ──HTTP──▶ server.py (aiohttp: CORS, body caps, auth.py, limits.py, compression.py)
                     │ ingest.py: envelope.py parse → pipeline.sentry conversion → scrub.py
                     │           → schema v1 check (pipeline.stages.decode)
                     ▼
                publisher.py ──acks=all──▶ topic_events ──▶ the worker (pipeline/app.py)
                     │
                  reply 200 {"id": ...} only after Kafka acknowledged; 503 + Retry-After if not

SIGTERM: /readyz turns 503, the listener closes, requests in flight finish (at most
``shutdown_timeout`` seconds), the producer flushes, the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

log = logging.getLogger("errorstream.gateway")


async def serve(settings, stop: asyncio.Event | None = None) -> None:
    from pipeline.gateway.publisher import Publisher
    from pipeline.gateway.server import GatewayConfig, build_gateway
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
    app = build_gateway(config, publisher, Metrics(), draining=lambda: draining)
    publisher.start()
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=settings.shutdown_timeout, handle_signals=False
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
        draining = True
        log.info("gateway: draining (at most %ss)", settings.shutdown_timeout)
        await runner.cleanup()  # stop listening, let requests in flight finish
        await publisher.stop()
        log.info("gateway: stopped")


def run_gateway(settings) -> int:
    from pipeline.gateway.auth import parse_keys
    from pipeline.logs import configure_logging

    configure_logging(settings)
    if not parse_keys(settings.gateway_keys):
        log.warning("gateway: gateway_keys is empty: every ingest request will be refused (401)")
    asyncio.run(serve(settings))
    return 0
