"""The internal record contract: every record the worker's processes hand each other, built
and read only here. JSON Schemas: ``schemas/processed.v1.json``, ``schemas/issue_state.v1.json``,
``schemas/command.v1.json`` (tests/unit/test_record_contract.py checks these constructors
against them).

    by-fingerprint line   FACTS \\t REST      (decoder → agent)
    processed line        one JSON object    (agent → sink): the event with ``_meta``
    issue_state line      {"_kind": "issue_state", "issue": {...}, "audit": {...}?}
    command line          {"_command": {...}} (control agent → every by-fingerprint partition;
                          an agent → the partition of a merge target, for a merged issue)
    merge_in line         {"_merge_in": {"command", "source", "into", "state"}} (the source
                          issue's partition → the target's: a cross-partition merge)
    forwarded event       a by-fingerprint line whose ``_meta.fingerprint`` is the merge
                          target and ``_meta.forwarded`` the hop count (source → target)

Why a by-fingerprint line has two parts: the issues agent needs a few facts per event
(``FACT_FIELDS``, a trimmed sample for a new issue's display, and ``_meta``: fingerprint,
time, title, culprit, category), never the stack trace, breadcrumbs, request or contexts.
The decoder writes those facts as a small JSON object and the rest of the event as a second
one, after a tab (orjson never writes a raw tab or newline). The agent parses only the
facts; when admission control stores the body, the processed line is the agent's facts
(with the final ``_meta``) spliced with the untouched REST bytes into one JSON object — the
body is parsed by the decoder (validation) and by the sink (rows), never by the agent. A
line without a tab (from a decoder before this contract) is a whole record and still read.
"""

from __future__ import annotations

from typing import Any

import orjson

COMMAND_MARKER = "_command"
MERGE_IN_MARKER = "_merge_in"
SAMPLE = "_sample"  # facts only: what a new issue's latest-event sample shows
SAMPLE_TEXT = 300
FACT_FIELDS = (
    "event_id",
    "timestamp",
    "service",
    "level",
    "release",
    "environment",
    "user",
    "tags",
)
SEPARATOR = b"\t"


def sample_of(event: dict[str, Any]) -> list[str | None]:
    """The latest-event sample of an issue: [the outermost exception, the message], trimmed."""
    values = (event.get("exception") or {}).get("values") or []
    last = values[-1] if values else None
    msg = event.get("message")
    if isinstance(msg, dict):
        msg = msg.get("formatted") or msg.get("message")
    return [
        f"{last.get('type', '')}: {last.get('value', '')}"[:SAMPLE_TEXT] if last else None,
        str(msg)[:SAMPLE_TEXT] if msg else None,
    ]


def by_fingerprint_line(event: dict[str, Any], meta: dict[str, Any]) -> bytes:
    """FACTS \\t REST of a decoded event (``event`` is consumed: its fact fields move out)."""
    event.pop("_meta", None)
    facts = {k: event.pop(k) for k in FACT_FIELDS if k in event}
    facts[SAMPLE] = sample_of(event)
    facts["_meta"] = meta
    return orjson.dumps(facts) + SEPARATOR + orjson.dumps(event)


def read_by_fingerprint_line(line: bytes) -> tuple[dict[str, Any], bytes | None]:
    """(the record the agent works on, the REST bytes or None for a whole record)."""
    head, sep, rest = line.partition(SEPARATOR)
    return orjson.loads(head), (rest if sep else None)


def processed_line(record: dict[str, Any], rest: bytes | None) -> bytes:
    """One processed record: ``record`` (facts or a lean record, with ``_meta``) spliced with
    the event's REST bytes when the body is stored (``rest`` is None otherwise)."""
    record.pop(SAMPLE, None)
    head = orjson.dumps(record)
    if rest is None or rest == b"{}":
        return head
    return head[:-1] + b"," + rest[1:]


def issue_state_line(issue: dict[str, Any], audit: dict[str, Any] | None = None) -> bytes:
    """An issue snapshot after a command; ``audit`` (who, when, why, from where, what) is
    the entry the sink writes to ``issue_audit``."""
    record: dict[str, Any] = {"_kind": "issue_state", "issue": issue}
    if audit is not None:
        record["audit"] = audit
    return orjson.dumps(record)


def merge_in_line(record: dict[str, Any]) -> bytes:
    return orjson.dumps({MERGE_IN_MARKER: record})


def forwarded_line(record: dict[str, Any], rest: bytes | None, target: str) -> bytes:
    """An event of a merged fingerprint, re-keyed to its merge target for the target's
    partition (the facts keep everything else; REST goes on untouched)."""
    meta = record["_meta"]
    meta["fingerprint"] = target
    meta["forwarded"] = meta.get("forwarded", 0) + 1
    head = orjson.dumps(record)
    return head if rest is None else head + SEPARATOR + rest


def command_line(command: dict[str, Any]) -> bytes:
    return orjson.dumps({COMMAND_MARKER: command})
