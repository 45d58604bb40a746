import io
import json
import subprocess
import sys
from pathlib import Path

from pipeline.grouping.cli import main, run

from .samples import python_event

REPO = Path(__file__).resolve().parents[3]


def _run(argv, stdin_text):
    import argparse

    from pipeline.grouping.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fingerprint", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = run(args, io.StringIO(stdin_text), out, err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_prints_one_json_line_per_event():
    lines = json.dumps(python_event()) + "\n\n" + json.dumps({"service": "s", "message": "m 1"})
    code, results, err = _run([], lines)
    assert code == 0 and err == ""
    assert [r["grouping_variant"] for r in results] == ["in_app_stacktrace", "message"]
    assert set(results[0]) == {"fingerprint", "grouping_variant", "title", "culprit", "category"}
    assert results[1]["title"] == "m <int>"


def test_bad_lines_are_reported_with_their_number_and_the_rest_continue():
    code, results, err = _run([], '{"message": "a"}\n{broken\n[1, 2]\n{"message": "b"}\n')
    assert code == 1
    assert len(results) == 2
    assert "line 2: invalid JSON" in err and "line 3: expected a JSON object" in err


def test_sentry_format_maps_payloads():
    payload = {
        "logentry": {"formatted": "Order 17 failed"},
        "exception": [{"type": "KeyError", "value": "'sku'"}],
    }
    code, results, _ = _run(["--format", "sentry"], json.dumps(payload))
    assert code == 0
    assert results[0]["title"] == "KeyError: 'sku'"
    assert results[0]["grouping_variant"] == "exception_message"


def test_rules_option_and_bad_rules_file(tmp_path):
    rules = tmp_path / "r.toml"
    rules.write_text('[[rules]]\nmatch = { message = "*disk*" }\nfingerprint = ["disk"]\n')
    code, results, _ = _run(["--rules", str(rules)], '{"message": "disk full"}')
    assert code == 0 and results[0]["grouping_variant"] == "rule"
    rules.write_text("[[rules]]\nmatch = 3\n")
    code, results, err = _run(["--rules", str(rules)], '{"message": "disk full"}')
    assert code == 2 and results == [] and f"{rules}:1:" in err


def test_module_entry_point():
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.grouping.cli", "fingerprint", "--grouping-version", "v1"],
        input='{"service": "s", "message": "x 1"}\n',
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["title"] == "x <int>"


def test_main_parses_its_own_arguments(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"message": "hello"}\n'))
    assert main(["fingerprint"]) == 0
    assert json.loads(capsys.readouterr().out)["grouping_variant"] == "message"


def test_default_version_is_v2_and_v1_is_still_selectable():
    # an event v2 groups like v1: the same output either way
    lines = json.dumps(python_event())
    assert _run([], lines)[1] == _run(["--grouping-version", "v1"], lines)[1]
    # an event with nothing to group on: v1's shared fallback, v2's own id
    bare = [{"service": "s", "event_id": c * 32, "message": ""} for c in "ab"]
    text = "\n".join(map(json.dumps, bare))
    v1 = [r["fingerprint"] for r in _run(["--grouping-version", "v1"], text)[1]]
    v2 = _run([], text)[1]
    assert v1[0] == v1[1]
    assert v2[0]["fingerprint"] != v2[1]["fingerprint"]
    assert [r["grouping_variant"] for r in v2] == ["event_id", "event_id"]
