"""The runner contract every worker process follows, and the host of the plain-asyncio roles.

A *runner* is one role's loop (``pipeline/decoder.py`` ``Decoder``, ``pipeline/roles.py``
``SinkRunner``; the agent role wraps the faust worker the same way, ``AgentRunner``):

    async run()            the loop; returns after stop() once its work in flight is
                           committed (the decoder's batch, the sink's inserts) — the drain
    stop()                 asks run() to finish; idempotent, called on the event loop
    checks() -> {name: bool}
                           readiness: every check true means the role does its job now

``host(runner, ...)`` runs one runner as a process: SIGTERM/SIGINT call ``stop()``; the drain
must finish within ``shutdown_timeout`` seconds, past which a watchdog thread exits with
code 3 (whatever was not committed is replayed by the next owner); an HTTP app (the role's
/healthz /readyz /metrics, or the sink's whole query API) is served while the loop runs.

Under ``errorstream worker`` (``pipeline/supervisor.py``) a child also dies with its
supervisor: ``die_with_parent`` asks the kernel for SIGKILL when the parent goes
(Linux ``PR_SET_PDEATHSIG``) and, everywhere, watches the parent pid from a thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import threading
import time
from typing import Any, Protocol

from aiohttp import web

log = logging.getLogger("errorstream.runner")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (the ``pipeline`` extra has it), else
    asyncio's: every process spends a good part of each event in the loop's I/O and
    callbacks (the Kafka and HTTP sockets)."""
    try:
        import uvloop
    except ImportError:
        log.info("uvloop not installed, running on asyncio's own event loop")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_loop(main: Any) -> Any:
    """``asyncio.run(main())`` on ``new_event_loop()``."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main())


EXIT_CRASHED = 1
EXIT_CONFIG = 2  # bad config or preflight: a restart would fail the same way
EXIT_SHUTDOWN_TIMEOUT = 3


class Runner(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...

    def checks(self) -> dict[str, bool]: ...


class HttpServer:
    """An aiohttp app on host:port for as long as the process runs."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()
        log.info("HTTP on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def arm_watchdog(timeout: float, what: str) -> threading.Timer:
    """Exit with ``EXIT_SHUTDOWN_TIMEOUT`` unless cancelled within ``timeout`` seconds."""

    def deadline_passed() -> None:
        log.error(
            "%s: stopping took longer than shutdown_timeout=%.1fs; exiting now "
            "(what was not committed is processed again by the next owner)",
            what,
            timeout,
        )
        logging.shutdown()
        os._exit(EXIT_SHUTDOWN_TIMEOUT)

    timer = threading.Timer(timeout, deadline_passed)
    timer.daemon = True
    timer.start()
    return timer


async def host(
    runner: Runner,
    what: str,
    shutdown_timeout: float,
    http: HttpServer | None = None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Run ``runner`` until it returns (after SIGTERM/SIGINT, or by itself). ``before`` and
    ``after`` are coroutine functions run around it (e.g. a producer's start and stop)."""
    loop = asyncio.get_running_loop()
    watchdog: list[threading.Timer] = []

    def on_signal(signum: int) -> None:
        if not watchdog:
            log.info(
                "%s: %s, draining (at most %.0fs)",
                what,
                signal.Signals(signum).name,
                shutdown_timeout,
            )
            watchdog.append(arm_watchdog(shutdown_timeout, what))
        runner.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    code = 0
    try:
        if http is not None:
            try:
                await http.start()
            except OSError as exc:
                log.error("%s: cannot serve HTTP on %s:%s: %s", what, http.host, http.port, exc)
                return EXIT_CONFIG
        if before is not None:
            await before()
        started = time.monotonic()
        try:
            await runner.run()
            log.info(
                "%s stopped after its final drain (ran %.1fs)", what, time.monotonic() - started
            )
        except Exception:
            log.exception("%s crashed", what)
            code = EXIT_CRASHED
        finally:
            if after is not None:
                await after()
    finally:
        if http is not None:
            await http.stop()
        for timer in watchdog:
            timer.cancel()
    return code


def die_with_parent(parent_pid: int) -> None:
    """This process ends when ``parent_pid`` does (a SIGKILLed supervisor leaves no child)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the thread below still notices
    if os.getppid() != parent_pid:
        os._exit(EXIT_CRASHED)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(EXIT_CRASHED)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
