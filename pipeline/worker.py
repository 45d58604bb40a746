"""Run the worker: preflight (Kafka, topics, ClickHouse, migrations), then the faust worker
with two more services beside the agents — the ClickHouse sink and the HTTP API.

Preflight failures print one line naming what and where, and the process exits 2.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import faust
from aiohttp import web
from mode import Service

from pipeline.api import build_api
from pipeline.app import Pipeline, create_app
from pipeline.grouping import GroupingConfig
from pipeline.kafka_local import KafkaUnavailable, wait_for_kafka_async
from pipeline.logs import configure_logging
from pipeline.metrics import Metrics
from pipeline.settings import Settings
from pipeline.sinks.clickhouse import ClickHouseSink
from pipeline.storage import Backend, StorageError, open_backend
from pipeline.storage.migrate import migrate
from pipeline.topics import ensure_topics

log = logging.getLogger("errorstream.worker")


class PreflightError(RuntimeError):
    """Something the worker needs is missing or unreachable; the message says what and where."""


class SinkService(Service):
    """Runs the ClickHouse sink inside the worker; stopping it flushes and commits."""

    def __init__(self, sink: ClickHouseSink, **kwargs) -> None:
        self.sink = sink
        super().__init__(**kwargs)

    @Service.task
    async def _run(self) -> None:
        await self.sink.run()

    async def on_stop(self) -> None:
        self.sink.stop()


class ApiService(Service):
    def __init__(self, app: web.Application, host: str, port: int, **kwargs) -> None:
        self.web_app = app
        self.host, self.port = host, port
        self.runner: web.AppRunner | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.runner = web.AppRunner(self.web_app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            raise PreflightError(f"cannot serve HTTP on {self.host}:{self.port}: {exc}") from exc
        log.info("HTTP API on http://%s:%s", self.host, self.port)

    async def on_stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def preflight_kafka(settings: Settings) -> None:
    try:
        await wait_for_kafka_async(settings.kafka_bootstrap, settings.kafka_ready_timeout)
    except KafkaUnavailable as exc:
        raise PreflightError(
            f"{exc} (kafka_bootstrap={settings.kafka_bootstrap}; start one with "
            "`errorstream kafka up`)"
        ) from None
    await ensure_topics(settings)


def open_storage(settings: Settings) -> Backend:
    where = settings.clickhouse_url and "the configured server" or settings.chdb_path
    try:
        backend = open_backend(settings)
        migrate(backend, settings.retention_days)
    except StorageError as exc:
        raise PreflightError(f"ClickHouse at {where}: {exc}") from None
    return backend


def readiness_checks(pipeline: Pipeline, sink: ClickHouseSink):
    app = pipeline.app

    def checks() -> dict[str, bool]:
        try:
            assigned = bool(app.consumer.assignment())
        except Exception:  # not started yet
            assigned = False
        recovered = app.tables.recovery.completed.is_set()
        return {"kafka": assigned, "tables_recovered": recovered, "sink_writable": sink.healthy}

    return checks


def issues_view(pipeline: Pipeline):
    def view() -> list[dict]:
        return pipeline.issue_snapshots()

    return view


def run_worker(settings: Settings) -> int:
    configure_logging(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(preflight_kafka(settings))
        backend = open_storage(settings)
    except PreflightError as exc:
        print(f"errorstream worker: {exc}", file=sys.stderr)
        return 2
    metrics = Metrics()
    grouping = GroupingConfig(version=settings.grouping_version)
    pipeline = create_app(settings, metrics, grouping)
    sink = ClickHouseSink(settings, backend, metrics, pipeline.send_dead_letter)
    api = build_api(
        backend,
        metrics,
        readiness_checks(pipeline, sink),
        api_token=settings.api_token,
        issues_view=issues_view(pipeline),
    )
    worker = faust.Worker(
        pipeline.app,
        SinkService(sink),
        ApiService(api, settings.web_host, settings.web_port),
        loglevel=settings.log_level,
        loop=loop,
        quiet=True,
    )
    started = time.time()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        log.info("worker stopped after %.1fs (exit %s)", time.time() - started, code)
        return code
    finally:
        backend.close()
    return 0
