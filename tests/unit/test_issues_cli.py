"""`errorstream issues ...` arguments → commands (pure: no Kafka, no API)."""

from __future__ import annotations

import pytest

from pipeline.cli import build_parser
from pipeline.control import CommandError
from pipeline.issues_cli import command_from_args


def command(*argv: str) -> dict:
    return command_from_args(build_parser().parse_args(list(argv)))


def test_actions_become_commands_with_actor_reason_and_source(monkeypatch):
    monkeypatch.setenv("USER", "dana")
    monkeypatch.setenv("LOGNAME", "dana")
    cmd = command("issues", "resolve", "fp", "--in-release", "shop@2", "--reason", "fixed")
    assert (cmd["command"], cmd["release"], cmd["reason"], cmd["source"]) == (
        "resolve",
        "shop@2",
        "fixed",
        "cli",
    )
    assert cmd["actor"] == "dana"
    assert command("issues", "resolve", "fp", "--in-next-release")["in_next_release"] is True
    assert command("issues", "merge", "a", "b", "--actor", "eve")["into"] == "b"
    assert command("issues", "merge", "a", "b", "--actor", "eve")["actor"] == "eve"
    assert command("issues", "assign", "a", "ann")["assignee"] == "ann"
    assert command("issues", "assign", "a")["assignee"] is None
    assert command("issues", "priority", "a", "auto")["priority"] == "auto"
    assert command("issues", "unmerge", "a")["command"] == "unmerge"
    ignore = command("issues", "ignore", "a", "--until-count", "5", "--in", "1h")
    assert (ignore["until_count"], ignore["until_count_window"]) == (5, 3600)
    assert command("issues", "ignore", "a", "--for", "24h")["for_seconds"] == 86400
    assert command("issues", "ignore", "a", "--until-escalating")["until_escalating"] is True
    assert command("issues", "ignore", "a", "--until-users", "3")["until_users"] == 3


def test_the_earlier_spellings_still_work():
    assert command("issue", "resolve", "fp", "--release", "shop@1")["release"] == "shop@1"
    assert command("issue", "merge", "a", "--into", "b")["into"] == "b"
    assert command("issue", "ignore", "a", "--until-time", "1700000000")["until_time"] == 1.7e9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("issues", "merge", "a"), "target"),
        (("issues", "merge", "a", "b", "--into", "c"), "target"),
        (("issues", "ignore", "a", "--in", "1h"), "--until-count"),
        (("issues", "ignore", "a", "--for", "soon"), "--for"),
        (("issues", "ignore", "a", "--until-count", "0"), "until_count"),
    ],
)
def test_bad_arguments_name_what_is_wrong(argv, message):
    with pytest.raises(CommandError, match=message):
        command(*argv)
