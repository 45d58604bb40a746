"""Run the real worker (`errorstream worker`) as a child process for a test.

Each test gets its own app id, topics, data folder and HTTP port, so tests never share state.
The worker is stopped with SIGTERM (then SIGKILL) and its output is kept for failing tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

from pipeline.kafka_local import free_ports


def pipeline_env(bootstrap: str, data_dir: Path, **extra: Any) -> dict[str, str]:
    """ERRORSTREAM_* variables for an isolated pipeline: unique app id and topic names."""
    tag = uuid.uuid4().hex[:8]
    port, clickhouse_http_port = free_ports(2)
    env = {
        "ERRORSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "ERRORSTREAM_APP_ID": f"es-test-{tag}",
        "ERRORSTREAM_TOPIC_EVENTS": f"t-{tag}-events",
        "ERRORSTREAM_TOPIC_BY_FINGERPRINT": f"t-{tag}-by-fp",
        "ERRORSTREAM_TOPIC_PROCESSED": f"t-{tag}-processed",
        "ERRORSTREAM_TOPIC_ALERTS": f"t-{tag}-alerts",
        "ERRORSTREAM_TOPIC_DLQ": f"t-{tag}-dlq",
        "ERRORSTREAM_TOPIC_CONTROL": f"t-{tag}-control",
        "ERRORSTREAM_DATA_DIR": str(data_dir),
        "ERRORSTREAM_WEB_PORT": str(port),
        "ERRORSTREAM_CLICKHOUSE_HTTP_PORT": str(clickhouse_http_port),
        "ERRORSTREAM_PARTITIONS": "2",
        "ERRORSTREAM_LOG_FORMAT": "plain",
        "ERRORSTREAM_SINK_MAX_BATCH_TIME": "0.2",
    }
    env.update({f"ERRORSTREAM_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.api = f"http://127.0.0.1:{env['ERRORSTREAM_WEB_PORT']}"

    def start(self, ready_timeout: float = 90.0) -> WorkerProcess:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ERRORSTREAM_")}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"],
            env={**clean, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/readyz")["ready"]:
                    return self
            except (OSError, urllib.error.HTTPError, ValueError):
                pass
            time.sleep(0.25)
        self.kill()  # the caller never gets this object to stop: do not leave it running
        raise RuntimeError(f"worker not ready after {ready_timeout}s:\n{self.log()}")

    def get(self, path: str, **params: Any) -> Any:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with urllib.request.urlopen(f"{self.api}{path}?{query}", timeout=10) as response:
            return orjson.loads(response.read())

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.25):
        """Poll ``predicate()`` until it returns a truthy value; returns it (or the last)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except (OSError, urllib.error.HTTPError, KeyError):
                value = None
            if value:
                return value
            time.sleep(interval)
        return value

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def kill(self) -> int | None:
        """SIGKILL, no draining: what a crashed worker leaves behind."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(10)

    def child_pid(self, role: str) -> int | None:
        """The pid of this worker's child process of ``role`` (``errorstream worker`` runs
        one process per role), read from /proc."""
        assert self.proc is not None
        want = ["--role", role, "--supervised-by", str(self.proc.pid)]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if any(args[i : i + 4] == want for i in range(len(args))):
                return int(entry.name)
        return None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""
