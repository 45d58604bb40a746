"""`errorstream notify` as a process: SIGTERM sends the held digests, commits, exits 0, and a
restart delivers nothing twice; a crash with a digest held loses nothing (the held alerts'
offsets were never committed, so the next process delivers them)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from pipeline.kafka_local import free_ports
from tests.integration.notify_harness import (
    HttpReceiver,
    alert,
    committed,
    eventually,
    produce,
)

pytestmark = pytest.mark.integration


class NotifyProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.ops = f"http://127.0.0.1:{env['ERRORSTREAM_NOTIFY_WEB_PORT']}"

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.ops + path, timeout=aiohttp.ClientTimeout(5)) as r:
                return r.status, await r.text()

    async def start(self, timeout: float = 60) -> NotifyProcess:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ERRORSTREAM_")}
        log = open(self.log_path, "ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pipeline.cli",
            "notify",
            env={**clean, **self.env},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"notifier exited {self.proc.returncode}:\n{self.log()}")
            try:
                if (await self.get("/readyz"))[0] == 200:
                    return self
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
        await self.kill()
        raise RuntimeError(f"notifier not ready after {timeout}s:\n{self.log()}")

    async def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def kill(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return await asyncio.wait_for(self.proc.wait(), 10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def notify_env(bootstrap: str, routes_file: Path) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    (port,) = free_ports(1)
    return {
        "ERRORSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "ERRORSTREAM_APP_ID": f"es-notify-{tag}",
        "ERRORSTREAM_TOPIC_ALERTS": f"t-{tag}-alerts",
        "ERRORSTREAM_TOPIC_NOTIFY_DLQ": f"t-{tag}-notify-dlq",
        "ERRORSTREAM_PARTITIONS": "2",
        "ERRORSTREAM_NOTIFY_ROUTES_FILE": str(routes_file),
        "ERRORSTREAM_NOTIFY_WEB_PORT": str(port),
        "ERRORSTREAM_NOTIFY_HOOK_SECRET": "restart-secret",
        "ERRORSTREAM_LOG_FORMAT": "plain",
        "ERRORSTREAM_SHUTDOWN_TIMEOUT": "20",
    }


def write_routes(tmp_path: Path, url: str, window: float) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(
        "[[routes]]\n"
        'name = "hook"\n'
        'channel = "webhook"\n'
        f'url = "{url}"\n'
        'secret_env = "ERRORSTREAM_NOTIFY_HOOK_SECRET"\n'
        f"digest_window = {window}\n"
    )
    return path


def delivered_ids(http: HttpReceiver) -> list[list[str]]:
    return [[a["alert_id"] for a in r.json()["alerts"]] for r in http.requests]


async def test_sigterm_sends_held_digest_commits_and_restart_delivers_nothing_twice(
    kafka_bootstrap, tmp_path
):
    http = await HttpReceiver().start()
    env = notify_env(kafka_bootstrap, write_routes(tmp_path, http.url("/hook"), window=30))
    topic, group = env["ERRORSTREAM_TOPIC_ALERTS"], env["ERRORSTREAM_APP_ID"] + "-notify"
    a1, a2, a3, a4 = (alert(n) for n in range(1, 5))
    first = await NotifyProcess(env, tmp_path / "notify-1.log").start()
    second = None
    try:
        await produce(kafka_bootstrap, topic, [a1])
        assert await eventually(lambda: len(http.requests) == 1)
        await produce(kafka_bootstrap, topic, [a2, a3])  # held: the window is 30 s
        await asyncio.sleep(1.5)
        assert len(http.requests) == 1
        status, text = await first.get("/metrics")
        assert status == 200
        assert "errorstream_notify_pending_alerts 2.0" in text
        assert await committed(kafka_bootstrap, group, topic) == {0: 1}
        stop_started = time.monotonic()
        assert await first.terminate() == 0, first.log()
        assert time.monotonic() - stop_started < 10  # the digest went out now, not at 30 s
        assert delivered_ids(http) == [[a1["alert_id"]], [a2["alert_id"], a3["alert_id"]]]
        assert await committed(kafka_bootstrap, group, topic) == {0: 3}

        second = await NotifyProcess(env, tmp_path / "notify-2.log").start()
        await produce(kafka_bootstrap, topic, [a4])
        assert await eventually(lambda: len(http.requests) == 3)
        await asyncio.sleep(1.5)  # a replay of a1..a3 would arrive by now
        assert delivered_ids(http) == [
            [a1["alert_id"]],
            [a2["alert_id"], a3["alert_id"]],
            [a4["alert_id"]],
        ]
        assert await second.terminate() == 0, second.log()
        assert await committed(kafka_bootstrap, group, topic) == {0: 4}
    finally:
        for process in (first, second):
            if process is not None:
                await process.kill()
        await http.stop()


async def test_crash_with_a_held_digest_loses_nothing(kafka_bootstrap, tmp_path):
    http = await HttpReceiver().start()
    env = notify_env(kafka_bootstrap, write_routes(tmp_path, http.url("/hook"), window=30))
    topic, group = env["ERRORSTREAM_TOPIC_ALERTS"], env["ERRORSTREAM_APP_ID"] + "-notify"
    a1, a2, a3 = (alert(n) for n in range(1, 4))
    first = await NotifyProcess(env, tmp_path / "notify-1.log").start()
    second = None
    try:
        await produce(kafka_bootstrap, topic, [a1, a2, a3])
        assert await eventually(lambda: len(http.requests) == 1)
        await asyncio.sleep(1.5)
        assert await committed(kafka_bootstrap, group, topic) == {0: 1}  # a2, a3 held
        await first.kill()  # no drain: the held digest is lost with the process
        assert delivered_ids(http) == [[a1["alert_id"]]]

        second = await NotifyProcess(env, tmp_path / "notify-2.log").start()
        # a2 and a3 were never committed: the new process reads them again; its route is
        # quiet, so a2 goes out at once and a3 waits for the window (or the SIGTERM below)
        assert await eventually(lambda: len(http.requests) == 2, timeout=30), second.log()
        assert await second.terminate() == 0, second.log()
        assert delivered_ids(http) == [[a1["alert_id"]], [a2["alert_id"]], [a3["alert_id"]]]
        assert await committed(kafka_bootstrap, group, topic) == {0: 3}
    finally:
        for process in (first, second):
            if process is not None:
                await process.kill()
        await http.stop()
