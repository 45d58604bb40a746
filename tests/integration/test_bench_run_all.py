"""bench/run_all.py for real: a quick run of two cheap benches writes their figures into the
report and the raw lines file; every bench script answers --help without running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "bench").glob("bench_*.py"))

pytestmark = pytest.mark.integration


def test_quick_run_of_two_benches_writes_their_figures(tmp_path):
    out, results = tmp_path / "BENCH.md", tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run_all.py"),
            "--quick",
            "--only",
            "grouping",
            "sdk_capture",
            "--out",
            str(out),
            "--results-dir",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    md = out.read_text()
    assert md.startswith("# Benchmarks — SMOKE RUN (--quick)")
    assert "| cores |" in md and "| chDB |" in md and "| git commit |" in md
    for section in ("## grouping", "## sdk_capture"):
        assert section in md
    assert "## decode" not in md  # not asked for
    (jsonl,) = results.glob("*-smoke.jsonl")
    figures = [json.loads(line) for line in jsonl.read_text().splitlines()]
    names = {(f["bench"], f["figure"]) for f in figures}
    assert names == {
        ("grouping", "events_per_s"),
        ("grouping", "events_per_s_cold_cache"),
        ("grouping", "events_per_s_no_message_cache"),
        ("sdk_capture", "capture_exception_median_us"),
        ("sdk_capture", "capture_exception_p99_us"),
    }
    for f in figures:  # each figure is in the report with its value
        row = next(line for line in md.splitlines() if line.startswith(f"| {f['figure']} |"))
        assert f["value"] > 0
        assert f"| {f['unit']} |" in row
    assert "bench/bench_grouping.py --events 500 --repeat 1`" in md
    assert "load average (1 / 5 / 15 min) before" in md


def test_a_failing_bench_is_reported_not_skipped(tmp_path):
    """An option the script does not know makes it exit 2: the report says FAILED with its
    stderr, and run_all exits 1."""
    sys.path.insert(0, str(ROOT / "bench"))
    import run_all

    bench = next(b for b in run_all.BENCHES if b.name == "sdk_capture")
    result = run_all.run_script(bench, ("--no-such-option",), {}, 1, 1)
    assert result.failed and result.exit_code == 2
    assert "no-such-option" in result.stderr_tail


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_bench_script_answers_help(script):
    proc = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")


def test_run_all_knows_every_bench_script():
    sys.path.insert(0, str(ROOT / "bench"))
    import run_all

    assert sorted(b.script for b in run_all.BENCHES) == [p.name for p in SCRIPTS]
