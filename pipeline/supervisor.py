"""``errorstream worker``: one process per role, started and supervised.

One Python process is bound to one core by the GIL, and decoding, the issues agent and the
sink's row building each cost tens of microseconds per event; as three processes they use
every core the machine has. The supervisor:

    preflight (Kafka reachable, topics exist)             one line and exit 2 on failure
    start     sink (owns chDB, migrations, query API on web_port)
              agent (faust app; ops HTTP on a free loopback port)
              decoder (ops HTTP on a free loopback port; waits for the agent's recovery)
    watch     a child that exits unasked is logged with its exit code and restarted after
              a backoff (0.5 s doubling to ``restart_backoff_max``, reset after 30 s of
              running); exit code 2 (bad config, preflight) stops everything with code 2
    stop      SIGTERM/SIGINT: decoder → agent → sink, each drained (SIGTERM, then at most
              shutdown_timeout + 5 s before SIGKILL), so nothing upstream produces into a
              stage that has already stopped

Nothing is lost or counted twice across a child's crash: each role commits its input offsets
only after its output is acknowledged, so a restarted child replays its uncommitted tail; the
agent drops replayed events by event_id (dedup window) and the sink's tables collapse
replayed rows (docs/stream-agents.md, "Exactly-once counting").

Metrics: every child writes to one multi-process folder (``<data_dir>/metrics``, cleared at
start); the sink's /metrics aggregates them. Children run in sessions of their own (a
terminal's Ctrl-C or a process-group SIGTERM reaches the supervisor only, which stops them
in order) and die with the supervisor (``runner.die_with_parent``).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.runner import EXIT_CONFIG

log = logging.getLogger("errorstream.supervisor")

START_ORDER = ("sink", "agent", "decoder")
STOP_ORDER = ("decoder", "agent", "sink")
STABLE_AFTER = 30.0  # seconds of running after which a restart backoff starts over


@dataclass
class Child:
    role: str
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    failures: int = 0  # consecutive quick exits, for the backoff
    restart_at: float | None = None
    restarts: int = 0
    history: list[int] = field(default_factory=list)  # exit codes, newest last


def backoff(failures: int, cap: float) -> float:
    return min(cap, 0.5 * 2 ** max(0, failures - 1))


def child_env(role: str, ports: dict[str, int], base: dict[str, str]) -> dict[str, str]:
    """The environment of one child: its ops port and where its peers are."""
    peers = {r: f"http://127.0.0.1:{p}" for r, p in ports.items() if r != role}
    if role == "decoder":
        peers = {"agent": peers["agent"]}  # it waits for the agent's recovery
    env = dict(base)
    env["ERRORSTREAM_PEER_URLS"] = ",".join(f"{r}={u}" for r, u in peers.items())
    if role in ports:
        env["ERRORSTREAM_OPS_PORT"] = str(ports[role])
        env["ERRORSTREAM_OPS_HOST"] = "127.0.0.1"
    return env


def run_supervisor(settings, config_file: str | None = None) -> int:
    import asyncio

    # before prometheus_client is imported: every process's values go to files in one folder
    metrics_dir = Path(settings.data_dir) / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    from prometheus_client import multiprocess

    from pipeline.kafka_local import free_ports
    from pipeline.logs import configure_logging
    from pipeline.metrics import Metrics
    from pipeline.worker import PreflightError, preflight_kafka

    configure_logging(settings)
    try:
        asyncio.run(preflight_kafka(settings))
    except PreflightError as exc:
        print(f"errorstream worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    metrics = Metrics()

    decoder_port, agent_port = free_ports(2)
    ports = {"decoder": decoder_port, "agent": agent_port}
    base = {k: v for k, v in os.environ.items()}
    children = {role: Child(role, child_env(role, ports, base)) for role in START_ORDER}
    command = [sys.executable, "-m", "pipeline.cli"]
    if config_file:
        command += ["--config", config_file]
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if not stopping:
            log.info("%s: stopping decoder, agent, sink in turn", signal.Signals(signum).name)
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def start(child: Child) -> None:
        child.proc = subprocess.Popen(
            [*command, "worker", "--role", child.role, "--supervised-by", str(os.getpid())],
            env=child.env,
            start_new_session=True,
        )
        child.started = time.monotonic()
        child.restart_at = None
        metrics.child_up.labels(child.role).set(1)
        log.info("%s started (pid %d)", child.role, child.proc.pid)

    for role in START_ORDER:
        start(children[role])

    code = 0
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for child in children.values():
            if child.proc is None:
                if child.restart_at is not None and now >= child.restart_at and not stopping:
                    child.restarts += 1
                    metrics.child_restarts.labels(child.role).inc()
                    start(child)
                continue
            rc = child.proc.poll()
            if rc is None:
                continue
            multiprocess.mark_process_dead(child.proc.pid)
            metrics.child_up.labels(child.role).set(0)
            child.history.append(rc)
            child.proc = None
            if rc == EXIT_CONFIG:
                log.error(
                    "%s exited with code 2 (configuration or preflight): stopping", child.role
                )
                code = EXIT_CONFIG
                stopping.append(0)
                break
            ran = now - child.started
            child.failures = 1 if ran >= STABLE_AFTER else child.failures + 1
            wait = backoff(child.failures, settings.restart_backoff_max)
            log.error(
                "%s exited unasked with %s after %.1fs; restarting in %.1fs",
                child.role,
                f"signal {-rc}" if rc < 0 else f"code {rc}",
                ran,
                wait,
            )
            child.restart_at = now + wait

    for role in STOP_ORDER:
        child = children[role]
        if child.proc is None:
            continue
        rc = stop_child(child, settings.shutdown_timeout + 5)
        multiprocess.mark_process_dead(child.proc.pid)
        log.info("%s stopped (exit %s)", role, rc)
        if rc != 0 and code == 0:
            code = rc if rc > 0 else 1
    return code


def stop_child(child: Child, timeout: float) -> int:
    assert child.proc is not None
    try:
        child.proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return child.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.error("%s did not stop within %.0fs: killed", child.role, timeout)
        child.proc.kill()
        return child.proc.wait(10)
