"""``errorstream``: one console script, one subcommand per job.

errorstream worker [--role R]         run the pipeline (decoder, agent, sink processes; HTTP API)
errorstream demo                      Kafka + worker + demo producer, end to end
errorstream kafka up|down|status      a local single-node broker
errorstream migrate                   apply ClickHouse migrations
errorstream query timeline ...        per-bucket counts (via the worker's API, or a server)
errorstream query top|issue|breakdown|alerts|mttr|export ...   the other analytics
errorstream api                       the query API standalone, against clickhouse_url
errorstream clickhouse-http           the read-only ClickHouse HTTP interface on the chDB folder
errorstream gateway                   the Sentry-compatible HTTP ingest gateway
errorstream notify                    alerts → webhooks, Slack, e-mail (digests, retries, DLQ)
errorstream fingerprint               group JSON-lines events from stdin
errorstream config show|check FILE    the effective settings / validate a file
errorstream bench [--quick] ...       every benchmark in bench/, then BENCHMARKS.md (a checkout)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson


def _settings(args: argparse.Namespace, **overrides: Any):
    from pipeline.settings import load_settings

    return load_settings(config_file=getattr(args, "config", None), overrides=overrides)


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.settings import check_api_bind

    settings = _settings(args)
    if args.role in ("all", "sink"):  # the sink process serves the API and the dashboard
        check_api_bind(settings)
    if args.role == "all":
        from pipeline.supervisor import run_supervisor

        return run_supervisor(settings, getattr(args, "config", None))
    from pipeline.logs import configure_logging
    from pipeline.roles import ROLE_MAIN
    from pipeline.runner import die_with_parent

    if args.supervised_by:
        die_with_parent(args.supervised_by)
    configure_logging(settings)
    if args.role == "sink" and settings.sink_nice:
        os.nice(settings.sink_nice)  # alerts before storage when the CPU is short
    return ROLE_MAIN[args.role](settings.for_role(args.role))


def cmd_migrate(args: argparse.Namespace) -> int:
    from pipeline.progress import Progress
    from pipeline.storage import StorageError, open_backend
    from pipeline.storage.migrate import migrate

    settings = _settings(args)
    try:
        backend = open_backend(settings)
        with Progress("migrate", unit="migration", interval=0.0) as bar:
            applied = migrate(
                backend,
                settings.retention_days,
                progress=lambda m: bar.advance(1, note=f"applied {m.version:04d}_{m.name}"),
                cluster=settings.clickhouse_cluster,
            )
    except StorageError as exc:
        print(f"errorstream migrate: {exc}", file=sys.stderr)
        return 2
    print(f"{len(applied)} migration(s) applied; schema is up to date ({backend.name})")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from pipeline.settings import load_settings

    if args.action == "check":
        load_settings(env={}, config_file=args.file)
        print(f"{args.file}: OK")
        return 0
    settings = _settings(args)
    if args.json:
        print_json(settings.masked())
        return 0
    for section, values in settings.sections().items():  # the processes that get each one:
        print(f"[{section}]")  # pipeline.settings.ROLE_SECTIONS
        for key, value in values.items():
            print(f"{key} = {value!r}")
        print()
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from pipeline.query_client import run_query

    return run_query(args, _settings(args))


def cmd_api(args: argparse.Namespace) -> int:
    from pipeline.api import run_standalone
    from pipeline.settings import check_api_bind

    settings = _settings(args)
    check_api_bind(settings)
    return run_standalone(settings)


def cmd_notify(args: argparse.Namespace) -> int:
    from pipeline.notify.notifier import run_notify

    return run_notify(_settings(args).for_role("notify"))


def cmd_clickhouse_http(args: argparse.Namespace) -> int:
    from pipeline.chhttp import run_standalone

    overrides = {"clickhouse_http_host": args.host, "clickhouse_http_port": args.port}
    return run_standalone(_settings(args, **overrides))


def cmd_gateway(args: argparse.Namespace) -> int:
    from pipeline.gateway import run_gateway

    return run_gateway(_settings(args).for_role("gateway"))


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(args, _settings(args))


def _bench_module():
    """bench/run_all.py of the source checkout this package runs from (not in the wheel)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "run_all.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("errorstream_bench_run_all", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cmd_bench(args: argparse.Namespace) -> int:
    if getattr(args, "bench_module", None) is None:
        print("errorstream bench: needs a source checkout (bench/run_all.py)", file=sys.stderr)
        return 2
    return args.bench_module.run(args)


def build_parser(load_bench: bool = False) -> argparse.ArgumentParser:
    """``load_bench``: load bench/run_all.py for the options of ``errorstream bench`` (only
    when that is the command: it is a file of the checkout, not a module of the package)."""
    parser = argparse.ArgumentParser(
        prog="errorstream", description="Error tracking on Kafka and ClickHouse."
    )
    parser.add_argument("--config", help="settings file (TOML or YAML); env ERRORSTREAM_CONFIG")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run the pipeline worker")
    p.add_argument(
        "--role",
        choices=("all", "decoder", "agent", "sink"),
        default="all",
        help="one role only (scale each by its own partitions); all: one process of each, "
        'supervised (docs/stream-agents.md, "Processes")',
    )
    p.add_argument("--supervised-by", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("migrate", help="apply ClickHouse schema migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("config", help="show the effective settings or check a file")
    p.add_argument("action", choices=["show", "check"])
    p.add_argument("file", nargs="?", help="with check: the file to validate")
    p.add_argument("--json", action="store_true", help="with show: one JSON object")
    p.set_defaults(func=cmd_config)

    from pipeline.query_client import register as register_query

    register_query(sub, cmd_query)

    p = sub.add_parser("api", help="serve the query API against the ClickHouse server")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser(
        "notify", help="deliver alerts to webhooks, Slack and e-mail (notify_routes_file)"
    )
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser(
        "clickhouse-http",
        help="serve the read-only ClickHouse HTTP interface on the embedded store",
    )
    p.add_argument("--host", help="bind address (default: clickhouse_http_host)")
    p.add_argument("--port", type=int, help="port (default: clickhouse_http_port)")
    p.set_defaults(func=cmd_clickhouse_http)

    p = sub.add_parser(
        "gateway", help="serve the Sentry-compatible ingest gateway on web_host:web_port"
    )
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("demo", help="run Kafka, the worker and a demo producer end to end")
    p.add_argument(
        "--events", type=int, default=0, help="stop after N events (0: run until Ctrl-C)"
    )
    p.add_argument("--rate", type=float, default=50.0, help="demo events per second")
    p.add_argument("--no-kafka", action="store_true", help="use the broker at kafka_bootstrap")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="run every benchmark in bench/ and write BENCHMARKS.md")
    bench = _bench_module() if load_bench else None
    if bench is not None:
        bench.add_arguments(p)
    p.set_defaults(func=cmd_bench, bench_module=bench)

    from pipeline.issues_cli import register as register_issue

    register_issue(sub)
    from pipeline.loadgen import register as register_loadgen

    register_loadgen(sub)
    from pipeline.kafka_local import register as register_kafka

    register_kafka(sub)
    try:
        from pipeline.grouping.cli import register as register_fingerprint

        register_fingerprint(sub)
    except ImportError:  # pragma: no cover - the grouping CLI ships with the grouping engine
        pass
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        import faust  # noqa: F401
    except ImportError:
        print(
            "errorstream: the pipeline needs its extra: pip install 'errorstream[pipeline]'",
            file=sys.stderr,
        )
        return 2
    from pipeline.settings import ConfigError

    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    parser = build_parser(load_bench=bool(words) and words[0] == "bench")
    args = parser.parse_args(argv)
    if args.command == "config" and args.action == "check" and not args.file:
        parser.error("config check needs a FILE")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"errorstream: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")


if __name__ == "__main__":
    sys.exit(main())
