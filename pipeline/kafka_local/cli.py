"""``errorstream kafka up|down|status`` (also ``python -m pipeline.kafka_local up|down|status``).

Exit codes: 0 ok; 2 error (one line on stderr, no traceback); 3 ``status`` of a stopped broker.
Every option defaults to an environment variable, then to the built-in default.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .broker import KafkaBroker
from .config import DEFAULT_CONTROLLER_PORT, DEFAULT_HEAP, DEFAULT_PORT, DEFAULT_VERSION
from .download import default_cache_dir
from .errors import KafkaLocalError

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_NOT_RUNNING = 3

DEFAULT_HOME = "~/.local/share/errorstream/kafka"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {value}")
    return value


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _common_options() -> argparse.ArgumentParser:
    # Defaults are strings so argparse runs them through `type` too: a bad env var is a usage error.
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--version",
        default=_env("ERRORSTREAM_KAFKA_VERSION", DEFAULT_VERSION),
        help="Apache Kafka version (env ERRORSTREAM_KAFKA_VERSION; default %(default)s)",
    )
    p.add_argument(
        "--port",
        type=_port,
        default=_env("ERRORSTREAM_KAFKA_PORT", str(DEFAULT_PORT)),
        help="client port on 127.0.0.1 (env ERRORSTREAM_KAFKA_PORT; default %(default)s)",
    )
    p.add_argument(
        "--controller-port",
        type=_port,
        default=_env("ERRORSTREAM_KAFKA_CONTROLLER_PORT", str(DEFAULT_CONTROLLER_PORT)),
        help="KRaft controller port (env ERRORSTREAM_KAFKA_CONTROLLER_PORT; default %(default)s)",
    )
    p.add_argument(
        "--home",
        type=_path,
        default=_env("ERRORSTREAM_KAFKA_HOME", DEFAULT_HOME),
        help="broker config, data, pid and log (env ERRORSTREAM_KAFKA_HOME; default %(default)s)",
    )
    p.add_argument(
        "--cache-dir",
        type=_path,
        default=_env("ERRORSTREAM_KAFKA_CACHE_DIR", str(default_cache_dir())),
        help="where the Kafka jars are cached (env ERRORSTREAM_KAFKA_CACHE_DIR; default %(default)s)",
    )
    return p


def _broker(args: argparse.Namespace) -> KafkaBroker:
    return KafkaBroker(
        home=args.home,
        port=args.port,
        controller_port=args.controller_port,
        version=args.version,
        heap=getattr(args, "heap", DEFAULT_HEAP),
        cache_dir=args.cache_dir,
    )


def cmd_up(args: argparse.Namespace) -> int:
    broker = _broker(args)
    already = broker.running_pid()
    try:
        pid = broker.start()
        broker.wait_ready(args.timeout)
    except KafkaLocalError:
        if already is None:
            broker.stop()  # do not leave a half-started JVM behind
        raise
    except KeyboardInterrupt:
        if already is None:
            broker.stop()
        print("interrupted; broker stopped", file=sys.stderr)
        return 130
    st = broker.status()
    word = "already running" if already is not None else "ready"
    version = broker.running_version() or args.version
    print(f"Kafka {version} {word} on {st.bootstrap} (pid {pid}, log: {st.log})")
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    broker = _broker(args)
    pid = broker.running_pid()
    if broker.stop(args.timeout):
        print(f"Kafka stopped (pid {pid})")
    else:
        print(f"Kafka is not running (home: {broker.home})")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    st = _broker(args).status()
    if st.running:
        print(f"Kafka running on {st.bootstrap} (pid {st.pid}, home: {st.home}, log: {st.log})")
        return EXIT_OK
    print(f"Kafka not running (home: {st.home})")
    return EXIT_NOT_RUNNING


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Expected failures become one line on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (KafkaLocalError, ValueError, OSError) as exc:
            print(f"errorstream kafka: error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return run


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add ``up``/``down``/``status`` to ``parser``; each sets ``func(args) -> exit code``."""
    common = _common_options()
    sub = parser.add_subparsers(dest="kafka_command", required=True, metavar="{up,down,status}")
    up = sub.add_parser("up", parents=[common], help="start the broker and wait until ready")
    up.add_argument("--timeout", type=float, default=60.0, help="readiness deadline, seconds")
    up.add_argument("--heap", default=DEFAULT_HEAP, help="JVM heap (-Xms/-Xmx), e.g. 512m")
    up.set_defaults(func=_guarded(cmd_up))
    down = sub.add_parser("down", parents=[common], help="stop the broker (SIGTERM, then SIGKILL)")
    down.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    down.set_defaults(func=_guarded(cmd_down))
    status = sub.add_parser("status", parents=[common], help="exit 0 if running, 3 if not")
    status.set_defaults(func=_guarded(cmd_status))


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``kafka`` to a parent CLI's ``add_subparsers()`` result; dispatch with ``args.func``."""
    kafka = subparsers.add_parser(
        "kafka",
        help="run a local single-node Kafka broker (no Docker)",
        description="A real single-node KRaft Kafka broker: jars from Maven Central, one JVM.",
    )
    add_commands(kafka)
    return kafka


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.kafka_local",
        description="A real single-node KRaft Kafka broker: jars from Maven Central, one JVM.",
    )
    add_commands(parser)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
