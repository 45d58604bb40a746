"""Lifecycle commands and issue identity (pure): which issue key an event or a command
belongs to, and what a command changes.

    aliases   fingerprint → canonical fingerprint (merges, grouping transitions); chains are
              followed up to ``ALIAS_HOPS`` links
    canonical an event's state key: an alias wins; an unknown primary fingerprint joins an
              issue known under one of its secondary fingerprints (a new alias)
    command   resolve / ignore / unresolve / assign / priority change one issue; merge moves
              the source issue's counts into the target (here, or by a ``merge_in`` record
              forwarded to the target's partition), leaves an alias and a tombstone behind;
              unmerge removes the alias for new events

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


APPLIED_KEPT = 64  # command ids an issue remembers (forwarded copies are applied once)


@dataclass
class CommandOutcome:
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → new state
    deleted: list[str] = field(default_factory=list)  # alias keys to delete
    aliases: dict[str, str] = field(default_factory=dict)  # new alias links
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # issue_state records
    audit: dict[str, Any] | None = None  # the audit entry each snapshot carries
    # (target, record, its partition when known here, else None: the target key's partition)
    forward: list[tuple[str, dict[str, Any], int | None]] = field(default_factory=list)


def audit_entry(command: dict[str, Any], **details: Any) -> dict[str, Any]:
    from pipeline.control import command_details

    return {
        "command_id": command["command_id"],
        "at": command["issued_at"],
        "actor": command.get("actor") or "unknown",
        "action": command["command"],
        "reason": command.get("reason") or "",
        "source": command.get("source") or "cli",
        "details": {**command_details(command), **details},
    }


def _applied(state: dict[str, Any], command_id: str) -> bool:
    return command_id in (state.get("absorbed") or ())


def _remember(state: dict[str, Any], command_id: str) -> dict[str, Any]:
    state["absorbed"] = [*(state.get("absorbed") or ())[-(APPLIED_KEPT - 1) :], command_id]
    return state


def tombstone(state: dict[str, Any], into: str, offset: int) -> dict[str, Any]:
    """The state a merged-away issue keeps in its own partition (for ``unmerge``): its
    snapshot with ``merged_into``; events reach the target through the alias."""
    issue = {**state["issue"], "merged_into": into, "version": state["issue"]["version"] + 1}
    return {**state, "issue": issue, "o": offset}


def owned(state: dict[str, Any] | None, partition: int | None) -> bool:
    """Whether ``state`` lives in ``partition`` (``p``: the partition whose changelog holds
    it; one process's tables hold every partition it is assigned). A state written before
    ``p`` existed, or no partition given, counts as local."""
    return state is not None and (partition is None or state.get("p", partition) == partition)


def _elsewhere(state: dict[str, Any] | None) -> int | None:
    return None if state is None else state.get("p")


def command_outcome(
    command: dict[str, Any],
    position: int,
    issues: Any,
    aliases: Any,
    partition: int | None = None,
):
    """What a validated command changes in ``partition``; None when another partition
    owns the issue, or the command is a replay of one already applied.

    A command for a fingerprint merged into an issue of another partition is forwarded
    there (``forward``, with the target's fingerprint); a merge whose target is in another
    partition leaves the alias and a tombstone here and forwards the source's state
    (``merge_in_outcome`` applies it there)."""
    original = command["fingerprint"]
    if command["command"] == "unmerge":
        return unmerge_outcome(command, position, issues, aliases, partition)
    fp = resolve_alias(aliases, original) or original
    state = issues.get(fp)
    if not owned(state, partition):
        hops = command.get("hops", 0)
        if fp != original and hops < ALIAS_HOPS:  # merged into an issue elsewhere
            forwarded = {**command, "fingerprint": fp, "via": original, "hops": hops + 1}
            return CommandOutcome(forward=[(fp, forwarded, _elsewhere(state))])
        return None
    if not should_apply(state, position) or _applied(state, command["command_id"]):
        return None
    if state["issue"].get("merged_into"):
        return None  # a tombstone: its events and commands follow the alias
    out = CommandOutcome(
        audit=audit_entry(command, **({"via": command["via"]} if "via" in command else {}))
    )
    if command["command"] == "merge":
        into = resolve_alias(aliases, command["into"]) or command["into"]
        if into == fp:
            return None
        gone = tombstone(state, into, position)
        out.issues[fp] = _remember(gone, command["command_id"])
        out.aliases[fp] = into
        target = issues.get(into)
        if owned(target, partition) and not target["issue"].get("merged_into"):
            merged = _remember(merge_states(target, state, position), command["command_id"])
            out.issues[into] = merged
            out.snapshots += [merged["issue"], gone["issue"]]
        else:  # the target lives in another partition: its owner adds the counts
            out.snapshots.append(gone["issue"])
            out.forward.append((into, merge_in(command, fp, into, state), _elsewhere(target)))
    else:
        new = _remember(apply_command(state, command, position), command["command_id"])
        out.issues[fp] = new
        out.snapshots.append(new["issue"])
    return out


def merge_in(command: dict[str, Any], source: str, into: str, state: dict[str, Any]):
    """The record that carries a merged issue's state to its target's partition."""
    return {"command": command, "source": source, "into": into, "state": state}


def merge_in_outcome(
    record: dict[str, Any],
    position: int,
    issues: Any,
    aliases: Any,
    partition: int | None = None,
):
    """Apply a forwarded merge in the target's partition: once per command id (a replay of
    the source partition forwards it again at another offset). A target that was merged on
    again is forwarded on; an unknown target takes the source's state."""
    command, into = record["command"], record["into"]
    target_fp = resolve_alias(aliases, into) or into
    target = issues.get(target_fp)
    hops = record.get("hops", 0)
    if not owned(target, partition) and hops < ALIAS_HOPS:
        if target is not None or target_fp != into:  # it lives (or moved) elsewhere
            forwarded = {**record, "into": target_fp, "hops": hops + 1}
            return CommandOutcome(forward=[(target_fp, forwarded, _elsewhere(target))])
    if not owned(target, partition):
        target = None
    if target is not None and (
        not should_apply(target, position) or _applied(target, command["command_id"])
    ):
        return None
    source = record["state"]
    if target is None:
        issue = {**source["issue"], "fingerprint": target_fp}
        issue.pop("merged_into", None)
        merged = {**source, "issue": issue, "o": position}
        merged["issue"]["version"] += 1
    else:
        merged = merge_states(target, source, position)
    merged = _remember(merged, command["command_id"])
    out = CommandOutcome(audit=audit_entry(command, merged=record["source"]))
    out.issues[target_fp] = merged
    out.snapshots.append(merged["issue"])
    return out


def unmerge_outcome(
    command: dict[str, Any],
    position: int,
    issues: Any,
    aliases: Any,
    partition: int | None = None,
):
    """Undo a merge for new events: the alias goes, the tombstone becomes an ongoing issue
    again with zero counts (the events counted before stay in the target's totals: counts
    are never subtracted, so nothing is counted twice)."""
    fp = command["fingerprint"]
    into = aliases.get(fp)
    state = issues.get(fp)
    if into is None or not owned(state, partition) or not should_apply(state, position):
        return None
    if _applied(state, command["command_id"]):
        return None
    from pipeline.stages import hll
    from pipeline.stages.windows import new_ring

    issue = {k: v for k, v in state["issue"].items() if k != "merged_into"}
    issue.update(status="ongoing", count=0, users=0, version=issue["version"] + 1)
    revived = {
        **state,
        "issue": issue,
        "hll": hll.empty(),
        "ring": new_ring(),
        "hr": new_ring(),
        "fc": None,
        "uw": {},
        "ign": None,
        "o": position,
    }
    out = CommandOutcome(audit=audit_entry(command, from_issue=into))
    out.issues[fp] = _remember(revived, command["command_id"])
    out.deleted.append(fp)
    out.snapshots.append(revived["issue"])
    return out
