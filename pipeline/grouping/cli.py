"""``errorstream fingerprint``: group JSON-lines events from stdin, one JSON result per line.

    $ errorstream fingerprint --rules deploy/grouping-rules.example.toml < events.jsonl
    {"fingerprint": "…", "grouping_variant": "in_app_stacktrace", "title": "…", ...}

``--format sentry`` accepts raw Sentry event payloads, converted exactly as the ingest gateway
converts them (``pipeline.sentry``: exception lists, chains, top-level and thread stack traces,
legacy interface names, ``logentry`` ...). A line that is not a JSON object is reported on stderr with its line
number; the rest are still processed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from pipeline.grouping.config import DEFAULT_VERSION, GroupingConfig
from pipeline.grouping.engine import group_event
from pipeline.grouping.rules import RulesError, load_rules
from pipeline.grouping.versions import registered_versions
from pipeline.sentry import to_event_v1

OUTPUT_FIELDS = ("fingerprint", "grouping_variant", "title", "culprit", "category")


def from_sentry_payload(event: dict[str, Any]) -> dict[str, Any]:
    """A Sentry event payload as the gateway converts it (``pipeline.sentry.to_event_v1``);
    the service is the payload's own ``service``, else ``unknown``."""
    service = event.get("service")
    return to_event_v1(
        event,
        service=service if isinstance(service, str) and service else "unknown",
        received_at=time.time(),
    )


def run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    try:
        rules = load_rules(args.rules) if args.rules else None
        config = GroupingConfig(version=args.grouping_version, rules=rules)
    except (RulesError, ValueError) as exc:
        print(f"errorstream fingerprint: {exc}", file=stderr)
        return 2
    failed = 0
    for number, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            failed += 1
            print(f"line {number}: invalid JSON: {exc}", file=stderr)
            continue
        if not isinstance(event, dict):
            failed += 1
            print(f"line {number}: expected a JSON object, got {type(event).__name__}", file=stderr)
            continue
        if args.format == "sentry":
            event = from_sentry_payload(event)
        grouped = group_event(event, config)
        result = grouped.to_dict()
        output = {name: result[name] for name in OUTPUT_FIELDS}
        if args.debug:
            output["components"] = list(grouped.components)
        stdout.write(json.dumps(output, ensure_ascii=False) + "\n")
    return 1 if failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", metavar="FILE", help="server-side grouping rules (TOML/YAML)")
    parser.add_argument(
        "--grouping-version",
        default=DEFAULT_VERSION,
        choices=registered_versions(),
        help=f"grouping algorithm version (default {DEFAULT_VERSION})",
    )
    parser.add_argument(
        "--format",
        choices=("native", "sentry"),
        default="native",
        help="input payload shape: errorstream events (native) or Sentry event payloads",
    )
    parser.add_argument("--debug", action="store_true", help="also print the hashed components")


def _main(args: argparse.Namespace) -> int:
    return run(args, sys.stdin, sys.stdout, sys.stderr)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``fingerprint`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "fingerprint",
        help="group JSON-lines events from stdin and print fingerprint, title, category",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="errorstream")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
