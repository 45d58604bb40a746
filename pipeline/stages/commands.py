"""Lifecycle commands and issue identity (pure): which issue key an event or a command
belongs to, and what a command changes.

    aliases   fingerprint → canonical fingerprint (merges, grouping transitions); chains are
              followed up to ``ALIAS_HOPS`` links
    canonical an event's state key: an alias wins; an unknown primary fingerprint joins an
              issue known under one of its secondary fingerprints (a new alias)
    command   resolve / ignore / unresolve change one issue; merge moves the source issue's
              counts into the target, leaves an alias behind and reports both snapshots

Reads go through anything with ``get`` (the tables, or the agent's write-back view of them);
the agent applies the returned writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.stages.dedup import should_apply
from pipeline.stages.issues import apply_command, merge_states

ALIAS_HOPS = 8


def resolve_alias(aliases: Any, fingerprint: str, hops: int = ALIAS_HOPS) -> str | None:
    """Follow ``fingerprint → canonical`` links (merges can chain); None when not aliased."""
    found = None
    for _ in range(hops):
        nxt = aliases.get(fingerprint)
        if nxt is None:
            break
        found = fingerprint = nxt
    return found


def canonical(
    fingerprint: str, secondaries: Iterable[str], issues: Any, aliases: Any
) -> tuple[str, Any, str | None]:
    """(state key, its state or None, the key a new alias ``fingerprint → key`` must point
    to, or None)."""
    target = resolve_alias(aliases, fingerprint)
    if target is not None:
        return target, issues.get(target), None
    state = issues.get(fingerprint)
    if state is None:
        for secondary in secondaries or ():
            sec = resolve_alias(aliases, secondary) or secondary
            known = issues.get(sec)
            if known is not None:
                return sec, known, sec
    return fingerprint, state, None


@dataclass
class CommandOutcome:
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → new state
    deleted: list[str] = field(default_factory=list)  # issue keys to delete
    aliases: dict[str, str] = field(default_factory=dict)  # new alias links
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # issue_state records


def command_outcome(command: dict[str, Any], position: int, issues: Any, aliases: Any):
    """What a validated command changes in this partition; None when another partition
    owns the issue, or the command is a replay of one already applied."""
    fp = resolve_alias(aliases, command["fingerprint"]) or command["fingerprint"]
    state = issues.get(fp)
    if state is None or not should_apply(state, position):
        return None
    out = CommandOutcome()
    if command["command"] == "merge":
        into = resolve_alias(aliases, command["into"]) or command["into"]
        target = issues.get(into)
        if target is None or into == fp:
            return None
        merged = merge_states(target, state, position)
        gone = {**state["issue"], "merged_into": into, "version": state["issue"]["version"] + 1}
        out.issues[into] = merged
        out.aliases[fp] = into
        out.deleted.append(fp)
        out.snapshots += [merged["issue"], gone]
    else:
        new = apply_command(state, command, position)
        out.issues[fp] = new
        out.snapshots.append(new["issue"])
    return out
