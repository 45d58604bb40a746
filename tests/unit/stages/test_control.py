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
