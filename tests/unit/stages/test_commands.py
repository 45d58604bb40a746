"""Issue identity and lifecycle commands as pure functions: list in, changes out."""

from pipeline.control import make_command
from pipeline.stages.commands import canonical, command_outcome, resolve_alias
from pipeline.stages.rules import StreamRules
from tests.unit.stages.helpers import T0, process_all, record


def states(*fps: str) -> dict:
    recs = [record(i, T0 + i, fp=fp) for i, fp in enumerate(fps)]
    return process_all(recs, StreamRules())[1]


def test_aliases_chain_and_stop_after_the_hop_limit():
    aliases = {"a": "b", "b": "c"}
    assert resolve_alias(aliases, "a") == "c"
    assert resolve_alias(aliases, "c") is None
    loop = {"x": "y", "y": "x"}  # a cycle never hangs
    assert resolve_alias(loop, "x") in {"x", "y"}


def test_canonical_prefers_an_alias_then_a_known_secondary():
    issues = states("old", "merged-into")
    assert canonical("new", ["old"], issues, {}) == ("old", issues["old"], "old")
    assert canonical("gone", [], issues, {"gone": "merged-into"}) == (
        "merged-into",
        issues["merged-into"],
        None,
    )
    assert canonical("fresh", ["unknown"], issues, {}) == ("fresh", None, None)


def test_merge_moves_counts_leaves_an_alias_and_reports_both_snapshots():
    issues = states("a", "a", "b")
    out = command_outcome(make_command("merge", "a", into="b"), 10**9, issues, {})
    assert out.aliases == {"a": "b"} and out.issues["a"]["issue"]["merged_into"] == "b"
    assert out.issues["b"]["issue"]["count"] == 3
    merged, gone = out.snapshots
    assert merged["fingerprint"] == "b" and gone["merged_into"] == "b"
    # another partition does not own it; a replay of an applied command changes nothing
    assert command_outcome(make_command("merge", "zz", into="b"), 10**9, issues, {}) is None
    after = {**issues, **out.issues}
    assert command_outcome(make_command("resolve", "b"), 0, after, {}) is None


def test_resolve_through_an_alias_changes_the_canonical_issue():
    issues = states("b")
    out = command_outcome(make_command("resolve", "a"), 10**9, issues, {"a": "b"})
    assert list(out.issues) == ["b"]
    assert out.issues["b"]["issue"]["status"] == "resolved"
    assert out.snapshots == [out.issues["b"]["issue"]]


def _with_partition(issues: dict, partitions: dict[str, int]) -> dict:
    return {fp: {**state, "p": partitions[fp]} for fp, state in issues.items()}


def test_cross_partition_merge_forwards_the_state_and_counts_once():
    from pipeline.stages.commands import merge_in_outcome

    # one process's table holds both partitions; a lives in 0, b in 1
    issues = _with_partition(states("a", "a", "b"), {"a": 0, "b": 1})
    merge = make_command("merge", "a", into="b", actor="ann", reason="dup")
    # partition 1 does not own a: nothing
    assert command_outcome(merge, 5, issues, {}, partition=1) is None
    out = command_outcome(merge, 5, issues, {}, partition=0)
    assert out.aliases == {"a": "b"} and out.issues["a"]["issue"]["merged_into"] == "b"
    assert [s["fingerprint"] for s in out.snapshots] == ["a"]
    assert out.audit["actor"] == "ann" and out.audit["reason"] == "dup"
    [(target, record, where)] = out.forward
    assert target == "b" and where == 1 and record["state"]["issue"]["count"] == 2
    # in partition 1: the counts arrive once, whatever the number of copies
    got = merge_in_outcome(record, 7, issues, out.aliases, partition=1)
    assert got.issues["b"]["issue"]["count"] == 3
    assert got.audit["details"]["merged"] == "a"
    after = {**issues, **{k: {**v, "p": 1} for k, v in got.issues.items()}}
    assert merge_in_outcome(record, 9, after, out.aliases, partition=1) is None  # replayed copy
    # a command for the merged fingerprint is forwarded to the target's partition
    aliases = out.aliases
    after = {**after, "a": {**out.issues["a"], "p": 0}}
    resolve = make_command("resolve", "a")
    fwd = command_outcome(resolve, 11, after, aliases, partition=0)
    [(target, forwarded, where)] = fwd.forward
    assert (target, forwarded["fingerprint"], forwarded["via"], where) == ("b", "b", "a", 1)
    applied = command_outcome(forwarded, 12, after, aliases, partition=1)
    assert applied.issues["b"]["issue"]["status"] == "resolved"


def test_unmerge_removes_the_alias_and_restarts_the_source_from_zero():
    issues = states("a", "a", "b")
    out = command_outcome(make_command("merge", "a", into="b"), 10**9, issues, {})
    merged = {**issues, **out.issues}
    undo = command_outcome(make_command("unmerge", "a"), 10**9 + 1, merged, out.aliases)
    assert undo.deleted == ["a"]
    revived = undo.issues["a"]["issue"]
    assert revived["count"] == 0 and "merged_into" not in revived
    assert revived["version"] > out.issues["a"]["issue"]["version"]
    assert undo.audit["details"] == {"from_issue": "b"}
    # b keeps the counts it absorbed: nothing is counted twice
    assert merged["b"]["issue"]["count"] == 3
    # unmerge of an issue that is not merged: nothing
    assert command_outcome(make_command("unmerge", "b"), 10**9 + 2, merged, out.aliases) is None


def test_assign_and_commands_apply_once_per_command_id():
    issues = states("a")
    cmd = make_command("assign", "a", assignee="ann")
    out = command_outcome(cmd, 10**9, issues, {})
    assert out.issues["a"]["issue"]["assignee"] == "ann"
    again = {**issues, **out.issues}
    assert command_outcome(cmd, 10**9 + 5, again, {}) is None  # the same command id
