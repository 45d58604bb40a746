"""Run the worker: preflight (Kafka, topics, ClickHouse, migrations), then the faust worker
with four more services beside the agents — the decoder, the ClickHouse sink, the HTTP API
and the lag monitor.

Start order: API → lag monitor → decoder → sink → faust app (consumer, producer, tables,
agents). Stop order on SIGTERM/SIGINT (``PipelineWorker.on_stop`` runs before mode stops
children):

    1. readiness turns false ("stopping"), the API keeps answering
    2. the decoder finishes the batch in flight (envelopes delivered, offsets committed)
    3. the sink drains: its pending batch is inserted and its offsets committed, while the
       app's producer — which carries the sink's dead letters — is still up
       (mode's default would cancel the sink's task instead: no final flush)
    4. the faust app stops: the issues agent's delivered envelopes are committed
    5. the lag monitor and the API stop

The whole stop must finish within ``shutdown_timeout`` seconds; past it a watchdog thread
logs what happened and exits with code 3 (whatever was not committed is replayed).

Preflight failures print one line naming what and where, and the process exits 2.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from typing import Any

import faust
import orjson
from aiohttp import web
from mode import Service

from pipeline.api import build_api
from pipeline.app import Pipeline, create_app
from pipeline.decoder import Decoder
from pipeline.grouping.settings import grouping_config
from pipeline.grouping.watcher import RulesWatcher
from pipeline.kafka_local import KafkaUnavailable, wait_for_kafka_async
from pipeline.lag import LagMonitor
from pipeline.logs import configure_logging, dead_letter_context
from pipeline.metrics import Metrics
from pipeline.settings import Settings
from pipeline.sinks.clickhouse import ClickHouseSink
from pipeline.storage import Backend, StorageError, open_backend
from pipeline.storage.migrate import migrate
from pipeline.topics import ensure_topics

log = logging.getLogger("errorstream.worker")

EXIT_SHUTDOWN_TIMEOUT = 3


class PreflightError(RuntimeError):
    """Something the worker needs is missing or unreachable; the message says what and where."""


class DrainedService(Service):
    """Runs a loop with ``run()``/``stop()`` (the decoder, the ClickHouse sink); stopping waits
    for the loop's own drain (its batch in flight finished and committed)."""

    def __init__(self, runner: Any, name: str, drain_timeout: float, **kwargs: Any) -> None:
        self.runner = runner
        self.what = name
        self.drain_timeout = drain_timeout
        self._task: asyncio.Future | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        # Not a @Service.task: mode cancels those right after on_stop, before they drain.
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self.runner.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s crashed", self.what)
            await self.crash(exc)

    async def on_stop(self) -> None:
        self.runner.stop()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=self.drain_timeout)
        if done:
            log.info("%s stopped after its final drain", self.what)
        else:
            log.error(
                "%s did not drain within %.1fs; what it did not commit will be replayed",
                self.what,
                self.drain_timeout,
            )
            self._task.cancel()


class ApiService(Service):
    def __init__(self, app: web.Application, host: str, port: int, **kwargs: Any) -> None:
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


class PipelineWorker(faust.Worker):
    """faust.Worker that leaves logging to ``pipeline.logs``, shows no spinner, drains the
    sink before the app stops, and enforces ``shutdown_timeout``."""

    def __init__(
        self,
        app: faust.App,
        *services: Service,
        decoder: DrainedService,
        sink: DrainedService,
        shutdown_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            app,
            *services,
            decoder,
            sink,
            quiet=True,  # no banner on stdout
            override_logging=False,  # keep our root handler; no mode handlers or redirects
            redirect_stdouts=False,
            **kwargs,
        )
        self.spinner = None  # its cursor escape codes ("\x1b[?25l") would land in log files
        self.decoder_service = decoder
        self.sink_service = sink
        self.shutdown_timeout = shutdown_timeout
        self.stopping = False
        self._watchdog: threading.Timer | None = None

    def _schedule_shutdown(self, signal: Any) -> None:
        if self._watchdog is None:
            log.info("%s: draining (at most %.0fs)", signal.name, self.shutdown_timeout)
            self._watchdog = threading.Timer(self.shutdown_timeout, self._deadline_passed)
            self._watchdog.daemon = True
            self._watchdog.start()
        super()._schedule_shutdown(signal)

    def _deadline_passed(self) -> None:
        log.error(
            "shutdown took longer than shutdown_timeout=%.1fs; exiting now "
            "(events not committed yet will be processed again by the next owner)",
            self.shutdown_timeout,
        )
        logging.shutdown()
        os._exit(EXIT_SHUTDOWN_TIMEOUT)

    async def on_stop(self) -> None:
        self.stopping = True
        await self.decoder_service.stop()  # no new events in
        await self.sink_service.stop()  # before the app: its producer carries dead letters
        await super().on_stop()


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
        migrate(backend, settings.retention_days, cluster=settings.clickhouse_cluster)
    except StorageError as exc:
        raise PreflightError(f"ClickHouse at {where}: {exc}") from None
    return backend


def readiness_checks(pipeline: Pipeline, decoder: Decoder, sink: ClickHouseSink, worker_ref: list):
    """/readyz: partitions assigned, every table recovered (first recovery done and no
    rebalance recovery running), the sink's last insert worked, and not shutting down."""
    app = pipeline.app

    def checks() -> dict[str, bool]:
        try:
            assigned = bool(app.consumer.assignment())
        except Exception:  # not started yet
            assigned = False
        recovery = app.tables.recovery
        recovered = recovery.completed.is_set() and not recovery.in_recovery
        worker = worker_ref[0] if worker_ref else None
        return {
            "kafka": assigned,
            "decoder": decoder.running,
            "tables_recovered": recovered,
            "sink_writable": sink.healthy,
            "not_stopping": worker is not None and not worker.stopping,
        }

    return checks


def issues_view(pipeline: Pipeline):
    def view() -> list[dict]:
        return pipeline.issue_snapshots()

    return view


def logged_dead_letters(send):
    """Wrap the dead-letter callback: each record is also logged with its source offset."""
    dlq_log = logging.getLogger("errorstream.dlq")

    async def send_and_log(value: bytes) -> None:
        await send(value)
        try:
            context = dead_letter_context(orjson.loads(value))
        except (orjson.JSONDecodeError, AttributeError):
            context = {}
        dlq_log.warning("record sent to the dead-letter topic", extra=context)

    return send_and_log


def run_worker(settings: Settings) -> int:
    configure_logging(settings)
    # The sink builds rows in worker threads while the event loop runs the agents. With the
    # default 5 ms switch interval, every syscall of the loop thread can wait up to 5 ms for
    # the GIL behind a busy row-building thread (the "convoy effect"); 0.5 ms keeps the
    # agents' latency low at a small cost in thread switching.
    sys.setswitchinterval(0.0005)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(preflight_kafka(settings))
        backend = open_storage(settings)
    except PreflightError as exc:
        print(f"errorstream worker: {exc}", file=sys.stderr)
        return 2
    metrics = Metrics()
    pipeline = create_app(settings, metrics)
    try:
        watcher = (
            RulesWatcher(settings.grouping_rules_file) if settings.grouping_rules_file else None
        )
        grouping = grouping_config(settings, watcher.rules if watcher else None)  # read once
    except ValueError as exc:  # the file changed since the settings were checked
        print(f"errorstream worker: grouping: {exc}", file=sys.stderr)
        return 2
    decoder = Decoder(
        settings,
        metrics,
        grouping,
        watcher,
        wait_until_ready=pipeline.app.tables.recovery.completed.wait,
    )
    sink = ClickHouseSink(
        settings, backend, metrics, logged_dead_letters(pipeline.send_dead_letter)
    )
    worker_ref: list[PipelineWorker] = []
    api = build_api(
        backend,
        metrics,
        readiness_checks(pipeline, decoder, sink, worker_ref),
        api_token=settings.api_token,
        issues_view=issues_view(pipeline),
    )
    worker = PipelineWorker(
        pipeline.app,
        ApiService(api, settings.web_host, settings.web_port),
        LagMonitor(settings, metrics, pipeline.tables),
        decoder=DrainedService(decoder, "decoder", drain_timeout=settings.shutdown_timeout),
        sink=DrainedService(sink, "ClickHouse sink", drain_timeout=settings.shutdown_timeout),
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
        log.info("worker stopped after %.1fs (exit %s)", time.time() - started, code)
        return code
    finally:
        backend.close()
    return 0
