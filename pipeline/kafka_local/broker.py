"""One single-node KRaft Kafka broker as a background JVM, owned through a home directory.

``home`` holds everything about one broker::

    server.properties, log4j(2).properties   regenerated on every start
    cluster-id                               chosen once, used to format data/
    data/                                    the log dir (formatted once)
    broker.pid                               pid of the JVM (its own process group)
    broker.log                               the JVM's stdout+stderr

Lifecycle: ``start()`` → ``wait_ready()`` → ``stop()``; ``status()`` at any time, from any process.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from .config import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_HEAP,
    DEFAULT_PORT,
    DEFAULT_VERSION,
    HOST,
    BrokerConfig,
    is_valid_cluster_id,
    jvm_flags,
    logging_config,
    logging_jvm_flag,
    new_cluster_id,
    parse_properties,
    render_server_properties,
)
from .download import ensure_kafka, require_java
from .errors import BrokerStartError, KafkaLocalError, KafkaUnavailable, PortInUse
from .readiness import wait_for_kafka

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int
    home: Path
    log: Path

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a listener could bind ``host:port`` now (SO_REUSEADDR, as the JVM binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct ports the OS considers free right now (bound together, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0) but is gone for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


class KafkaBroker:
    def __init__(
        self,
        home: Path,
        port: int = DEFAULT_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        version: str = DEFAULT_VERSION,
        heap: str = DEFAULT_HEAP,
        cache_dir: Path | None = None,
        sasl_users: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.version = version
        self.heap = heap
        self.cache_dir = cache_dir
        self.config = BrokerConfig(
            data_dir=self.home / "data",
            port=port,
            controller_port=controller_port,
            sasl_users=sasl_users,
        )
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.config.port

    @property
    def controller_port(self) -> int:
        return self.config.controller_port

    @property
    def bootstrap(self) -> str:
        return self.config.bootstrap

    @property
    def properties_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_path(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_path(self) -> Path:
        return self.home / "broker.log"

    @property
    def version_path(self) -> Path:
        return self.home / "kafka-version"

    def running_version(self) -> str | None:
        """The Kafka version this home's broker was last started with."""
        try:
            return self.version_path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    # -- state -------------------------------------------------------------------------------
    def _pid_from_file(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _is_our_broker(self, pid: int) -> bool:
        if not _pid_alive(pid):
            return False
        try:  # guard against pid reuse: the process must be a broker on *this* home
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return True  # no /proc: trust the pid file
        return MAIN_CLASS.encode() in cmdline and str(self.properties_path).encode() in cmdline

    def running_pid(self) -> int | None:
        """Pid of this home's broker JVM if it is running, else None."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        pid = self._pid_from_file()
        return pid if pid is not None and self._is_our_broker(pid) else None

    def _written_ports(self) -> tuple[int, int]:
        """(port, controller port) from the server.properties of the last start, else configured."""
        port, cport = self.port, self.controller_port
        if self.properties_path.exists():
            listeners = parse_properties(self.properties_path.read_text()).get("listeners", "")
            for listener in listeners.split(","):
                name, _, address = listener.partition("://")
                if name == "PLAINTEXT":
                    port = int(address.rsplit(":", 1)[1])
                elif name == "CONTROLLER":
                    cport = int(address.rsplit(":", 1)[1])
        return port, cport

    def status(self) -> BrokerStatus:
        pid = self.running_pid()
        port = self._written_ports()[0] if pid is not None else self.port
        return BrokerStatus(
            running=pid is not None, pid=pid, port=port, home=self.home, log=self.log_path
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> int:
        """Start the JVM unless this home's broker already runs; return its pid.

        Does not wait for readiness (see ``wait_ready``). Raises PortInUse, KafkaSetupError,
        BrokerStartError.
        """
        if (pid := self.running_pid()) is not None:
            # Idempotent: adopt the running broker, on the ports it was started with.
            port, cport = self._written_ports()
            self.config = replace(self.config, port=port, controller_port=cport)
            return pid
        self.pid_path.unlink(missing_ok=True)  # stale: its process is gone or is not ours
        for name, port in (("port", self.port), ("controller port", self.controller_port)):
            if not port_is_free(port):
                raise PortInUse(
                    f"{name} {HOST}:{port} is already in use by another process "
                    f"(another Kafka? see `ss -ltnp 'sport = :{port}'`); choose another with "
                    f"--{'port' if name == 'port' else 'controller-port'}"
                )
        lib = ensure_kafka(self.version, self.cache_dir)
        java = require_java()
        self.home.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(render_server_properties(self.config))
        log_name, log_text, _ = logging_config(self.version)
        log_config = self.home / log_name
        log_config.write_text(log_text)
        base = [java, *jvm_flags(self.heap), logging_jvm_flag(self.version, log_config)]
        classpath = ["-cp", f"{lib}/*"]
        self._format_storage(base, classpath)

        with open(self.log_path, "ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(
                f"\n==== {stamp} starting Kafka {self.version} on {self.bootstrap}\n".encode()
            )
            log.flush()
            self._proc = subprocess.Popen(
                [*base, *classpath, MAIN_CLASS, str(self.properties_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,  # own process group: stop() signals it as a whole
            )
        self.pid_path.write_text(f"{self._proc.pid}\n")
        self.version_path.write_text(f"{self.version}\n")
        return self._proc.pid

    def _cluster_id(self) -> str:
        path = self.home / "cluster-id"
        if path.exists() and is_valid_cluster_id(cid := path.read_text().strip()):
            return cid
        cid = new_cluster_id()
        path.write_text(cid + "\n")
        return cid

    def _format_storage(self, base: list[str], classpath: list[str]) -> None:
        if (self.config.data_dir / "meta.properties").exists():
            return
        cmd = [
            *base,
            *classpath,
            STORAGE_TOOL,
            "format",
            "-t",
            self._cluster_id(),
            "-c",
            str(self.properties_path),
            "--ignore-formatted",
        ]
        result = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=self.home
        )
        with open(self.log_path, "a") as log:
            log.write(f"==== formatting {self.config.data_dir}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip()
            last = output.splitlines()[-1] if output else "no output"
            raise BrokerStartError(
                f"formatting {self.config.data_dir} failed (exit {result.returncode}): {last}",
                output,
            )

    def client_options(self) -> dict[str, str]:
        """aiokafka options a client needs for this broker (SASL with its first user)."""
        if not self.config.sasl_users:
            return {}
        user, password = self.config.sasl_users[0]
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": user,
            "sasl_plain_password": password,
        }

    def wait_ready(self, timeout: float = 60) -> float:
        """Block until a metadata round-trip succeeds; return the seconds waited.

        Fails early (BrokerStartError, with ``log_tail``) if the JVM exits meanwhile.
        """
        started = time.monotonic()

        def alive() -> str | None:
            if self.running_pid() is not None:
                return None
            code = self._proc.poll() if self._proc is not None else None
            return f"the JVM exited{'' if code is None else f' with code {code}'}"

        try:
            wait_for_kafka(self.bootstrap, timeout, alive=alive, client=self.client_options())
        except KafkaUnavailable as exc:
            raise BrokerStartError(
                f"Kafka {self.version} did not become ready: {exc} (log: {self.log_path})",
                self.log_tail(),
            ) from None
        return time.monotonic() - started

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM the broker's process group, SIGKILL after ``timeout`` s. True if it was running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        self._signal_group(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            self._signal_group(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 10):
                raise KafkaLocalError(f"Kafka JVM (pid {pid}) survived SIGKILL")
        self.pid_path.unlink(missing_ok=True)
        self._proc = None
        return True

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # start_new_session made the JVM its group's leader
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)  # our child: reap it so no zombie is left
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.1)
        return not _pid_alive(pid)


def start_on_free_ports(
    home: Path,
    *,
    version: str = DEFAULT_VERSION,
    cache_dir: Path | None = None,
    ready_timeout: float = 90,
    attempts: int = 3,
    sasl_users: tuple[tuple[str, str], ...] = (),
) -> KafkaBroker:
    """Start a throwaway broker in ``home`` on fresh free ports and wait until it is ready.

    Retries with new ports when one was taken between finding and binding it (a race with
    other processes). The caller owns stopping it.
    """
    for attempt in range(1, attempts + 1):
        port, controller_port = free_ports(2)
        broker = KafkaBroker(
            home,
            port,
            controller_port,
            version=version,
            cache_dir=cache_dir,
            sasl_users=sasl_users,
        )
        try:
            broker.start()
            broker.wait_ready(ready_timeout)
            return broker
        except PortInUse:
            if attempt == attempts:
                raise
        except BaseException as exc:
            broker.stop()  # never leave a JVM behind, whatever went wrong
            port_race = "Address already in use" in broker.log_tail(200)
            if not isinstance(exc, BrokerStartError) or not port_race or attempt == attempts:
                raise
    raise AssertionError("unreachable")
