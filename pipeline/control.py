"""Issue commands: resolve / ignore / unresolve / merge / unmerge / assign / priority, sent on
``settings.topic_control``.

Pure part: ``make_command`` and ``validate_command`` (a plain dict in, a normalized dict or a
``CommandError`` naming the field out). I/O part: ``send_command`` (a producer of its own,
for the CLI ``errorstream issues ...`` in ``pipeline/issues_cli.py``) and
``CommandPublisher`` (the API's producer).

The control agent broadcasts each command to every partition of the by-fingerprint topic
(key = fingerprint); the partition that owns the issue applies it, the others ignore it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

ACTIONS = ("resolve", "ignore", "unresolve", "merge", "unmerge", "assign", "priority")
SOURCES = ("cli", "api", "dashboard")
PRIORITIES = ("high", "medium", "low", "auto")
MAX_TEXT = 1000  # characters of a reason, an actor, an assignee or a release
MAX_IGNORE_WINDOW = 7 * 86400  # seconds: the hourly history an issue keeps
COMMON = ("actor", "reason", "source")
FIELDS: dict[str, tuple[str, ...]] = {
    "resolve": ("release", "in_release", "in_next_release", "at"),
    "ignore": (
        "until_count",
        "until_count_window",
        "until_users",
        "for_seconds",
        "until_time",
        "until_escalating",
    ),
    "unresolve": (),
    "merge": ("into",),
    "unmerge": (),
    "assign": ("assignee",),
    "priority": ("priority",),
}


class CommandError(ValueError):
    """An invalid command; the message names the field."""


def make_command(action: str, fingerprint: str, **fields: Any) -> dict[str, Any]:
    """A new command (fresh ``command_id``, ``issued_at`` now), validated. ``None`` fields
    are left out, except ``assignee`` (None unassigns)."""
    command = {
        "command": action,
        "fingerprint": fingerprint,
        "command_id": uuid.uuid4().hex,
        "issued_at": time.time(),
        **{k: v for k, v in fields.items() if v is not None or k == "assignee"},
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


def _text(command, key, required=False):
    value = command.get(key)
    if value is None:
        if required:
            raise CommandError(f"`{key}` is required")
        return None
    if not isinstance(value, str):
        raise CommandError(f"`{key}` must be a string")
    if len(value) > MAX_TEXT:
        raise CommandError(f"`{key}` is longer than {MAX_TEXT} characters")
    return value


def _flag(command, key) -> bool:
    value = command.get(key, False)
    if not isinstance(value, bool):
        raise CommandError(f"`{key}` must be true or false")
    return value


def validate_command(command: Any) -> dict[str, Any]:
    """The command, normalized; raises CommandError naming the first bad field.

    Every command carries who (``actor``), why (``reason``, optional) and from where
    (``source``: cli, api or dashboard); a command from before these fields gets actor
    ``unknown`` and source ``cli``."""
    if not isinstance(command, dict):
        raise CommandError("a command is a JSON object")
    action = command.get("command")
    if action not in ACTIONS:
        raise CommandError(f"`command` must be one of {', '.join(ACTIONS)}, got {action!r}")
    fp = command.get("fingerprint")
    if not isinstance(fp, str) or not fp or len(fp) > 200:
        raise CommandError("`fingerprint` must be a non-empty string")
    if not isinstance(command.get("command_id"), str) or not command["command_id"]:
        raise CommandError("`command_id` must be a non-empty string")
    _number(command, "issued_at", int | float)
    if command.get("issued_at") is None:
        raise CommandError("`issued_at` is required (epoch seconds)")
    out = {k: command[k] for k in ("command", "fingerprint", "command_id", "issued_at")}
    allowed = FIELDS[action]
    extra = set(command) - set(out) - set(allowed) - set(COMMON)
    if extra:
        raise CommandError(f"unexpected field(s) for {action}: {', '.join(sorted(extra))}")
    out["actor"] = _text(command, "actor") or "unknown"
    out["reason"] = _text(command, "reason") or ""
    source = command.get("source", "cli")
    if source not in SOURCES:
        raise CommandError(f"`source` must be one of {', '.join(SOURCES)}")
    out["source"] = source
    if action == "resolve":
        release = _text(command, "in_release") or _text(command, "release")
        if command.get("in_release") is not None and command.get("release") is not None:
            raise CommandError("give `in_release` or `release`, not both")
        if release is not None and not release:
            raise CommandError("`in_release` must be a non-empty string")
        if _flag(command, "in_next_release"):
            if release:
                raise CommandError("`in_release` and `in_next_release` exclude each other")
            out["in_next_release"] = True
        if release:
            out["release"] = release
        if (at := _number(command, "at", int | float)) is not None:
            out["at"] = at
    elif action == "ignore":
        for key in ("until_count", "until_users"):
            if (value := _number(command, key, int)) is not None:
                out[key] = value
        for key in ("for_seconds", "until_time"):
            if (value := _number(command, key, int | float)) is not None:
                out[key] = value
        if (window := _number(command, "until_count_window", int)) is not None:
            if "until_count" not in out:
                raise CommandError("`until_count_window` needs `until_count`")
            if window < 60 or window > MAX_IGNORE_WINDOW:
                raise CommandError(
                    f"`until_count_window` must be between 60 and {MAX_IGNORE_WINDOW} seconds"
                )
            out["until_count_window"] = window
        if _flag(command, "until_escalating"):
            out["until_escalating"] = True
    elif action in ("merge",):
        into = command.get("into")
        if not isinstance(into, str) or not into or len(into) > 200:
            raise CommandError("`into` (the fingerprint to merge into) is required")
        if into == fp:
            raise CommandError("cannot merge an issue into itself")
        out["into"] = into
    elif action == "assign":
        if "assignee" not in command:
            raise CommandError("`assignee` is required (empty or null unassigns)")
        out["assignee"] = _text(command, "assignee") or None
    elif action == "priority":
        priority = command.get("priority")
        if priority not in PRIORITIES:
            raise CommandError(f"`priority` must be one of {', '.join(PRIORITIES)}")
        out["priority"] = priority
    return out


def command_details(command: dict[str, Any]) -> dict[str, Any]:
    """What an audit entry shows besides who, when, why and from where."""
    skip = {"command", "fingerprint", "command_id", "issued_at", "hops", *COMMON}
    return {k: v for k, v in command.items() if k not in skip}


def encode_command(command: dict[str, Any]) -> bytes:
    return orjson.dumps(validate_command(command))


async def send_command(settings: Any, command: dict[str, Any], timeout: float = 10.0) -> None:
    """Validate and publish one command on the control topic (key = fingerprint), with a
    producer of its own (the CLI)."""
    from aiokafka import AIOKafkaProducer

    from pipeline.kafka_clients import client_config

    producer = AIOKafkaProducer(**client_config(settings, "control"), acks="all")
    await asyncio.wait_for(producer.start(), timeout)
    try:
        await CommandPublisher(settings.topic_control, producer).publish(command, timeout)
    finally:
        await producer.stop()


class CommandPublisher:
    """Publishes commands through a started aiokafka producer (the API's)."""

    def __init__(self, topic: str, producer: Any) -> None:
        self.topic, self.producer = topic, producer

    async def publish(self, command: dict[str, Any], timeout: float = 10.0) -> None:
        if self.producer is None:
            raise ConnectionError("no Kafka producer: Kafka was not reachable at start")
        payload = encode_command(command)
        key = command["fingerprint"].encode()
        await asyncio.wait_for(self.producer.send_and_wait(self.topic, payload, key=key), timeout)
