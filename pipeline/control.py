"""Lifecycle commands: resolve / ignore / unresolve / merge, sent on ``settings.topic_control``.

Pure part: ``make_command`` and ``validate_command`` (a plain dict in, a normalized dict or a
``CommandError`` naming the field out). I/O part: ``send_command`` (aiokafka) and the CLI
``errorstream issue resolve|ignore|unresolve|merge FP ...`` (``register(subparsers)``).

The control agent broadcasts each command to every partition of the by-fingerprint topic
(key = fingerprint); the partition that owns the issue applies it, the others ignore it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from typing import Any

import orjson

ACTIONS = ("resolve", "ignore", "unresolve", "merge")


class CommandError(ValueError):
    """An invalid command; the message names the field."""


def make_command(action: str, fingerprint: str, **fields: Any) -> dict[str, Any]:
    command = {
        "command": action,
        "fingerprint": fingerprint,
        "command_id": uuid.uuid4().hex,
        "issued_at": time.time(),
        **{k: v for k, v in fields.items() if v is not None},
    }
    return validate_command(command)


def _number(command, key, kind):
    value = command.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise CommandError(f"`{key}` must be a {'number' if kind is not int else 'whole number'}")
    if value < 0 or (kind is int and value < 1):
        raise CommandError(f"`{key}` must be positive")
    return value


def validate_command(command: Any) -> dict[str, Any]:
    """The command, normalized; raises CommandError naming the first bad field."""
    if not isinstance(command, dict):
        raise CommandError("a command is a JSON object")
    action = command.get("command")
    if action not in ACTIONS:
        raise CommandError(f"`command` must be one of {', '.join(ACTIONS)}, got {action!r}")
    fp = command.get("fingerprint")
    if not isinstance(fp, str) or not fp:
        raise CommandError("`fingerprint` must be a non-empty string")
    if not isinstance(command.get("command_id"), str) or not command["command_id"]:
        raise CommandError("`command_id` must be a non-empty string")
    _number(command, "issued_at", int | float)
    if command.get("issued_at") is None:
        raise CommandError("`issued_at` is required (epoch seconds)")
    out = {k: command[k] for k in ("command", "fingerprint", "command_id", "issued_at")}
    allowed: dict[str, tuple] = {
        "resolve": ("release", "at"),
        "ignore": ("until_count", "until_time"),
        "unresolve": (),
        "merge": ("into",),
    }[action]
    extra = set(command) - set(out) - set(allowed)
    if extra:
        raise CommandError(f"unexpected field(s) for {action}: {', '.join(sorted(extra))}")
    if "release" in command and command["release"] is not None:
        if not isinstance(command["release"], str) or not command["release"]:
            raise CommandError("`release` must be a non-empty string")
        out["release"] = command["release"]
    for key, kind in (("at", int | float), ("until_time", int | float), ("until_count", int)):
        if key in allowed and (value := _number(command, key, kind)) is not None:
            out[key] = value
    if action == "merge":
        into = command.get("into")
        if not isinstance(into, str) or not into:
            raise CommandError("`into` (the fingerprint to merge into) is required")
        if into == fp:
            raise CommandError("cannot merge an issue into itself")
        out["into"] = into
    return out


def encode_command(command: dict[str, Any]) -> bytes:
    return orjson.dumps(validate_command(command))


async def send_command(settings: Any, command: dict[str, Any], timeout: float = 10.0) -> None:
    """Validate and publish one command on the control topic (key = fingerprint)."""
    from aiokafka import AIOKafkaProducer

    payload = encode_command(command)
    from pipeline.kafka_clients import client_config

    producer = AIOKafkaProducer(**client_config(settings, "control"), acks="all")
    await asyncio.wait_for(producer.start(), timeout)
    try:
        key = command["fingerprint"].encode()
        await asyncio.wait_for(
            producer.send_and_wait(settings.topic_control, payload, key=key), timeout
        )
    finally:
        await producer.stop()


# --- CLI -------------------------------------------------------------------------------------
def _cmd_issue(args: argparse.Namespace) -> int:
    from pipeline.settings import ConfigError, load_settings

    try:
        settings = load_settings(config_file=getattr(args, "config", None))
        fields: dict[str, Any] = {}
        if args.action == "resolve":
            fields = {"release": args.release}
        elif args.action == "ignore":
            fields = {"until_count": args.until_count, "until_time": args.until_time}
        elif args.action == "merge":
            fields = {"into": args.into}
        command = make_command(args.action, args.fingerprint, **fields)
        asyncio.run(send_command(settings, command))
    except (CommandError, ConfigError) as exc:
        print(f"errorstream issue: {exc}", file=sys.stderr)
        return 2
    except (TimeoutError, OSError) as exc:
        print(f"errorstream issue: cannot reach Kafka ({exc})", file=sys.stderr)
        return 2
    print(orjson.dumps(command).decode())
    return 0


def register(subparsers: Any) -> None:
    """Add ``errorstream issue resolve|ignore|unresolve|merge`` to a subparsers object."""
    issue = subparsers.add_parser(
        "issue", help="change an issue: resolve, ignore, unresolve, merge"
    )
    actions = issue.add_subparsers(dest="action", required=True)
    resolve = actions.add_parser("resolve", help="mark resolved (optionally in a release)")
    resolve.add_argument("fingerprint")
    resolve.add_argument("--release", help="events from older releases do not reopen it")
    ignore = actions.add_parser("ignore", help="silence alerts, optionally until N events/a time")
    ignore.add_argument("fingerprint")
    ignore.add_argument("--until-count", type=int, help="until this many more events")
    ignore.add_argument("--until-time", type=float, help="until this event time (epoch seconds)")
    unresolve = actions.add_parser("unresolve", help="back to ongoing")
    unresolve.add_argument("fingerprint")
    merge = actions.add_parser("merge", help="fold FINGERPRINT into --into TARGET")
    merge.add_argument("fingerprint")
    merge.add_argument("--into", required=True)
    issue.set_defaults(func=_cmd_issue)
