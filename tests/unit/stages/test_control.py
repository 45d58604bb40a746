import pytest

from pipeline.control import CommandError, make_command, validate_command


def test_make_and_validate():
    cmd = make_command("resolve", "fp1", release="app@1.2")
    assert cmd["command"] == "resolve" and cmd["release"] == "app@1.2"
    assert len(cmd["command_id"]) == 32
    assert validate_command(cmd) == cmd
    merge = make_command("merge", "a", into="b")
    assert merge["into"] == "b"
    ignore = make_command("ignore", "a", until_count=5)
    assert ignore["until_count"] == 5


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"command": "delete"}, "command"),
        ({"command": "resolve", "fingerprint": ""}, "fingerprint"),
        ({"command": "merge", "fingerprint": "a"}, "into"),
        ({"command": "merge", "fingerprint": "a", "into": "a"}, "itself"),
        ({"command": "ignore", "fingerprint": "a", "until_count": 0}, "until_count"),
        ({"command": "unresolve", "fingerprint": "a", "release": "x"}, "unexpected"),
    ],
)
def test_invalid_commands_name_the_field(bad, message):
    bad = {"command_id": "c", "issued_at": 1.0, **bad}
    with pytest.raises(CommandError, match=message):
        validate_command(bad)


def test_every_command_carries_actor_reason_and_source():
    cmd = make_command("assign", "a", assignee="ann", actor="bob", reason="owner", source="api")
    assert (cmd["actor"], cmd["reason"], cmd["source"], cmd["assignee"]) == (
        "bob",
        "owner",
        "api",
        "ann",
    )
    old = validate_command(
        {"command": "resolve", "fingerprint": "a", "command_id": "c", "issued_at": 1}
    )
    assert (old["actor"], old["source"], old["reason"]) == ("unknown", "cli", "")
    assert make_command("assign", "a", assignee=None)["assignee"] is None
    assert make_command("assign", "a", assignee="")["assignee"] is None
    assert make_command("priority", "a", priority="auto")["priority"] == "auto"
    assert make_command("resolve", "a", in_release="x@2")["release"] == "x@2"
    assert make_command("resolve", "a", in_next_release=True)["in_next_release"] is True
    ignore = make_command(
        "ignore",
        "a",
        until_count=5,
        until_count_window=3600,
        until_users=3,
        for_seconds=60,
        until_escalating=True,
    )
    assert {k: ignore[k] for k in ("until_count", "until_count_window", "until_users")} == {
        "until_count": 5,
        "until_count_window": 3600,
        "until_users": 3,
    }
    assert make_command("unmerge", "a")["command"] == "unmerge"


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"command": "assign", "fingerprint": "a"}, "assignee"),
        ({"command": "assign", "fingerprint": "a", "assignee": 3}, "assignee"),
        ({"command": "priority", "fingerprint": "a", "priority": "urgent"}, "priority"),
        (
            {"command": "resolve", "fingerprint": "a", "in_release": "x", "in_next_release": True},
            "exclude",
        ),
        ({"command": "resolve", "fingerprint": "a", "in_next_release": "yes"}, "in_next_release"),
        ({"command": "ignore", "fingerprint": "a", "until_count_window": 600}, "until_count"),
        (
            {"command": "ignore", "fingerprint": "a", "until_count": 1, "until_count_window": 10},
            "between",
        ),
        ({"command": "ignore", "fingerprint": "a", "until_users": 0}, "until_users"),
        ({"command": "ignore", "fingerprint": "a", "for_seconds": -1}, "for_seconds"),
        ({"command": "resolve", "fingerprint": "a", "source": "email"}, "source"),
        ({"command": "resolve", "fingerprint": "a", "reason": "x" * 1001}, "reason"),
        ({"command": "resolve", "fingerprint": "a", "actor": 5}, "actor"),
        ({"command": "unmerge", "fingerprint": "a", "into": "b"}, "unexpected"),
    ],
)
def test_invalid_workflow_commands_name_the_field(bad, message):
    bad = {"command_id": "c", "issued_at": 1.0, **bad}
    with pytest.raises(CommandError, match=message):
        validate_command(bad)
