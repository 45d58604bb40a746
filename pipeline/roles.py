"""The three roles of the worker, each one process (``errorstream worker --role R``):

    decoder   ingest topic → decode, validate, fingerprint → by-fingerprint envelopes
              (plain consumer group <app_id>-decode; pipeline/decoder.py)
    agent     by-fingerprint + control → issue state, alerts → processed envelopes
              (the faust app, pipeline/app.py; pipeline/worker.py)
    sink      processed + alerts → ClickHouse (consumer group <app_id>-sink), with its own
              producer for dead letters; owns the chDB folder and serves the query API,
              /healthz /readyz /metrics (every process's values) on web_port, and the
              read-only ClickHouse HTTP interface on clickhouse_http_port

The topics between them already separate the stages, so each role scales by its own
partitions: run more processes of one role with the same app_id. ``errorstream worker``
without ``--role`` starts and supervises one of each (``pipeline/supervisor.py``).

Every role follows the runner contract of ``pipeline/runner.py`` (run / stop / checks).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from pipeline.kafka_clients import client_config
from pipeline.runner import EXIT_CONFIG, HttpServer, host, new_event_loop, run_loop
from pipeline.settings import Settings, peer_urls

log = logging.getLogger("errorstream.roles")

PEER_TIMEOUT = 1.0  # seconds one peer's /readyz or live state may take


class Peers:
    """The other processes of this worker, over HTTP on loopback (``peer_urls``)."""

    def __init__(self, settings: Settings) -> None:
        self.urls = peer_urls(settings.peer_urls)
        self.session: aiohttp.ClientSession | None = None

    async def get(self, role: str, path: str, timeout: float = PEER_TIMEOUT) -> tuple[int, Any]:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        limit = aiohttp.ClientTimeout(total=timeout)
        async with self.session.get(self.urls[role] + path, timeout=limit) as response:
            return response.status, await response.json(content_type=None)

    async def ready(self, role: str) -> dict[str, bool] | None:
        """The role's readiness checks, or None when it does not answer."""
        try:
            _, body = await self.get(role, "/readyz")
            return {k: bool(v) for k, v in body["checks"].items()}
        except (TimeoutError, aiohttp.ClientError, OSError, KeyError, ValueError):
            return None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


# -- decoder ------------------------------------------------------------------------------
def run_decoder(settings: Settings) -> int:
    from pipeline.decoder import Decoder
    from pipeline.grouping.settings import grouping_config
    from pipeline.grouping.watcher import RulesWatcher
    from pipeline.health import build_ops_app
    from pipeline.metrics import Metrics
    from pipeline.worker import PreflightError, preflight_kafka

    try:
        watcher = (
            RulesWatcher(settings.grouping_rules_file) if settings.grouping_rules_file else None
        )
        grouping = grouping_config(settings, watcher.rules if watcher else None)
    except ValueError as exc:  # the file changed since the settings were checked
        print(f"errorstream worker: grouping: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    peers = Peers(settings)

    async def agent_recovered() -> None:
        """Until the agent's tables are recovered (when this worker has an agent)."""
        while True:
            checks = await peers.ready("agent")
            if checks and checks.get("tables_recovered"):
                return
            await asyncio.sleep(0.2)

    async def main() -> int:
        try:
            await preflight_kafka(settings)
        except PreflightError as exc:
            print(f"errorstream worker: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        metrics = Metrics()
        decoder = Decoder(
            settings,
            metrics,
            grouping,
            watcher,
            wait_until_ready=agent_recovered if "agent" in peers.urls else None,
        )
        http = _ops_server(settings, build_ops_app(metrics.registry, decoder.checks))
        try:
            return await host(decoder, "decoder", settings.shutdown_timeout, http)
        finally:
            await peers.close()

    return run_loop(main)


# -- sink ---------------------------------------------------------------------------------
class SinkRunner:
    """The ClickHouse sink with a producer of its own for dead letters: ``send_and_wait``
    returns once the broker has the dead letter, and the sink commits a batch only after
    its dead letters returned, so no offset passes an undelivered dead letter."""

    def __init__(self, settings: Settings, backend: Any, metrics: Any) -> None:
        from pipeline.sinks.clickhouse import ClickHouseSink, send_dead_letter_with
        from pipeline.worker import logged_dead_letters

        self.settings = settings
        self.producer = AIOKafkaProducer(
            **client_config(settings, "sink"),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=1024 * 1024,
        )
        send = logged_dead_letters(send_dead_letter_with(self.producer, settings.topic_dlq))
        self.sink = ClickHouseSink(settings, backend, metrics, send)
        self.stopping = False

    async def run(self) -> None:
        await self.producer.start()
        try:
            await self.sink.run()  # the final drain's dead letters go out before the stop
        finally:
            await self.producer.stop()

    def stop(self) -> None:
        self.stopping = True
        self.sink.stop()

    def checks(self) -> dict[str, bool]:
        return {**self.sink.checks(), "not_stopping": not self.stopping}


def run_sink(settings: Settings) -> int:
    from pipeline.api import build_api
    from pipeline.chhttp import ClickHouseHttpService
    from pipeline.control import CommandPublisher
    from pipeline.metrics import Metrics
    from pipeline.worker import PreflightError, open_storage, preflight_kafka

    # Rows are built in a thread while the loop serves the consumer and the API; with the
    # default 5 ms switch interval every syscall of the loop thread can wait that long for
    # the GIL behind the row-building thread (the "convoy effect").
    sys.setswitchinterval(0.0005)

    async def main() -> int:
        try:
            await preflight_kafka(settings)
            backend = await asyncio.to_thread(open_storage, settings)
        except PreflightError as exc:
            print(f"errorstream worker: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        metrics = Metrics()
        runner = SinkRunner(settings, backend, metrics)
        peers = Peers(settings)

        async def readiness() -> dict[str, bool]:
            checks = runner.checks()
            for role in peers.urls:
                theirs = await peers.ready(role)
                checks[role] = theirs is not None and all(theirs.values())
                for name, ok in (theirs or {}).items():
                    checks.setdefault(name, ok)
            return checks

        async def live_issues() -> list[dict]:
            try:
                _, body = await peers.get("agent", "/api/state/issues", timeout=10.0)
                return body["issues"]
            except (TimeoutError, aiohttp.ClientError, OSError, KeyError, ValueError) as exc:
                raise web.HTTPServiceUnavailable(
                    text=orjson.dumps(
                        {"error": f"the agent process did not answer: {exc!r}"}
                    ).decode(),
                    content_type="application/json",
                ) from None

        api = build_api(
            backend,
            metrics,
            readiness,
            issues_view=live_issues if "agent" in peers.urls else None,
            # issue actions go out through the sink's producer (started by the runner)
            publisher=CommandPublisher(settings.topic_control, runner.producer),
            settings=settings,
        )
        http = HttpServer(api, settings.web_host, settings.web_port)
        # the read-only ClickHouse HTTP interface: only this process can open the chDB folder
        chhttp = (
            ClickHouseHttpService(backend, settings, metrics)
            if ClickHouseHttpService.enabled(backend, settings)
            else None
        )
        try:
            if chhttp is not None:
                try:
                    await chhttp.start()
                except OSError as exc:
                    print(
                        "errorstream worker: cannot serve the ClickHouse HTTP interface on "
                        f"{settings.clickhouse_http_host}:{settings.clickhouse_http_port}: {exc} "
                        "(clickhouse_http_port; 0 turns it off)",
                        file=sys.stderr,
                    )
                    return EXIT_CONFIG
            return await host(runner, "ClickHouse sink", settings.shutdown_timeout, http)
        finally:
            if chhttp is not None:
                await chhttp.stop()
            await peers.close()
            backend.close()

    return run_loop(main)


# -- agent --------------------------------------------------------------------------------
def run_agent(settings: Settings) -> int:
    from pipeline.app import create_app
    from pipeline.health import build_ops_app
    from pipeline.lag import LagMonitor
    from pipeline.metrics import Metrics
    from pipeline.worker import (
        AgentWorker,
        ApiService,
        PreflightError,
        agent_checks,
        preflight_kafka,
    )

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(preflight_kafka(settings))
    except PreflightError as exc:
        print(f"errorstream worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    metrics = Metrics()
    pipeline = create_app(settings, metrics)
    worker_ref: list[AgentWorker] = []
    services: list[Any] = [LagMonitor(settings, metrics, pipeline.tables)]
    if settings.ops_port:
        ops = build_ops_app(metrics.registry, agent_checks(pipeline, worker_ref))

        async def live_issues(request: web.Request) -> web.Response:
            return web.json_response({"issues": pipeline.issue_snapshots()})

        ops.router.add_get("/api/state/issues", live_issues)
        services.append(ApiService(ops, settings.ops_host, settings.ops_port))
    worker = AgentWorker(
        pipeline.app,
        *services,
        shutdown_timeout=settings.shutdown_timeout,
        loglevel=settings.log_level,
        loop=loop,
    )
    worker_ref.append(worker)
    started = time.time()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        log.info("agent stopped after %.1fs (exit %s)", time.time() - started, code)
        return code
    return 0


def _ops_server(settings: Settings, app: Any) -> HttpServer | None:
    return HttpServer(app, settings.ops_host, settings.ops_port) if settings.ops_port else None


ROLE_MAIN = {"decoder": run_decoder, "agent": run_agent, "sink": run_sink}
