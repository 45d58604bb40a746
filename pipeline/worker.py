"""What every worker process shares: preflight (Kafka and topics, ClickHouse and migrations),
and the agent role's faust worker.

The agent process runs the faust app (``pipeline/app.py``: the issues and control agents and
their tables) with the lag monitor and, when ``ops_port`` is set, its own /healthz /readyz
/metrics and the live issue state (``/api/state/issues``). Stop order on SIGTERM/SIGINT:

    1. readiness turns false ("stopping")
    2. the faust app stops: the issues agent's delivered envelopes are committed
    3. the lag monitor and the HTTP server stop

The whole stop must finish within ``shutdown_timeout`` seconds; past it a watchdog thread
logs what happened and exits with code 3 (whatever was not committed is replayed).

Preflight failures print one line naming what and where, and the process exits 2.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import faust
import orjson
from aiohttp import web
from mode import Service

from pipeline.app import Pipeline
from pipeline.kafka_clients import client_config
from pipeline.kafka_local import KafkaUnavailable, wait_for_kafka_async
from pipeline.logs import dead_letter_context
from pipeline.runner import arm_watchdog
from pipeline.settings import Settings
from pipeline.storage import Backend, StorageError, open_backend
from pipeline.storage.migrate import migrate
from pipeline.topics import ensure_topics

log = logging.getLogger("errorstream.worker")

__all__ = ["AgentWorker", "PreflightError", "preflight_kafka"]


class PreflightError(RuntimeError):
    """Something the worker needs is missing or unreachable; the message says what and where."""


class ApiService(Service):
    """An aiohttp app served while the faust worker runs."""

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
        log.info("agent HTTP on http://%s:%s", self.host, self.port)

    async def on_stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class AgentWorker(faust.Worker):
    """faust.Worker that leaves logging to ``pipeline.logs``, shows no spinner, and enforces
    ``shutdown_timeout``."""

    def __init__(
        self, app: faust.App, *services: Service, shutdown_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(
            app,
            *services,
            quiet=True,  # no banner on stdout
            override_logging=False,  # keep our root handler; no mode handlers or redirects
            redirect_stdouts=False,
            **kwargs,
        )
        self.spinner = None  # its cursor escape codes ("\x1b[?25l") would land in log files
        self.shutdown_timeout = shutdown_timeout
        self.stopping = False
        self._watchdog: threading.Timer | None = None

    def _schedule_shutdown(self, signal: Any) -> None:
        self.stopping = True
        if self._watchdog is None:
            log.info("%s: draining (at most %.0fs)", signal.name, self.shutdown_timeout)
            self._watchdog = arm_watchdog(self.shutdown_timeout, "agent")
        super()._schedule_shutdown(signal)

    async def on_stop(self) -> None:
        self.stopping = True
        await super().on_stop()


def agent_checks(pipeline: Pipeline, worker_ref: list):
    """/readyz of the agent: partitions assigned, every table recovered (first recovery done
    and no rebalance recovery running), and not shutting down."""
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
            "tables_recovered": recovered,
            "not_stopping": worker is not None and not worker.stopping,
        }

    return checks


async def preflight_kafka(settings: Settings) -> None:
    try:
        await wait_for_kafka_async(
            settings.kafka_bootstrap,
            settings.kafka_ready_timeout,
            client=client_config(settings, "preflight"),
        )
    except KafkaUnavailable as exc:
        if "connection refused" in str(exc) or settings.kafka_security_protocol == "PLAINTEXT":
            hint = "start one with `errorstream kafka up`"
        else:  # the port answers: a handshake or credentials problem
            hint = (
                f"the port answers: check kafka_security_protocol="
                f"{settings.kafka_security_protocol}, the SASL credentials "
                f"(kafka_sasl_username={settings.kafka_sasl_username!r}) and kafka_ssl_cafile"
            )
        raise PreflightError(
            f"{exc} (kafka_bootstrap={settings.kafka_bootstrap}; {hint})"
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
