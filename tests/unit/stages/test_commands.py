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
