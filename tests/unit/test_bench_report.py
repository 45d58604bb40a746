"""bench/report.py: figure lines out of mixed output, target checks, BENCHMARKS.md rendering."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from report import (  # noqa: E402
    TARGETS,
    BenchResult,
    FigureLineError,
    Target,
    figure_from_line,
    parse_figures,
    render_markdown,
    targets_for,
)


def fig(bench="sink", figure="sink_throughput", value=30_000.0, unit="rows/s", baseline=None):
    ratio = round(value / baseline, 3) if baseline else None
    return {
        "bench": bench,
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
    }


def test_parse_figures_takes_figure_lines_out_of_mixed_output():
    a = fig(value=1.5, baseline=3.0)
    b = fig(figure="freshness_p95", value=0.8, unit="s")
    output = "\n".join(
        [
            "200,000 records, 1,180 B each on average",
            "statuses {200: 3000}",
            "{not json at all",
            json.dumps(a),
            "   " + json.dumps(b) + "  ",
            "[1, 2]",
            "",
        ]
    )
    figures, problems = parse_figures(output)
    assert figures == [a, b]
    assert problems == []


def test_a_json_object_of_another_shape_is_a_problem_naming_its_line():
    output = "hello\n" + json.dumps({"p50_s": 0.2, "p90_s": 0.3}) + "\n" + json.dumps(fig())
    figures, problems = parse_figures(output)
    assert figures == [fig()]
    assert len(problems) == 1
    assert problems[0].startswith("line 2: not a figure line")
    assert "'bench'" in problems[0] and "p50_s" in problems[0]


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"value": None}, "value is null"),
        ({"value": "12"}, "value must be a number"),
        ({"baseline": True}, "baseline must be a number"),
        ({"figure": ""}, "figure must be a non-empty string"),
        ({"unit": 3}, "unit must be a non-empty string"),
    ],
)
def test_figure_line_types_are_checked(change, reason):
    with pytest.raises(FigureLineError, match=reason):
        figure_from_line(json.dumps({**fig(), **change}))


def test_nan_from_a_script_is_kept_and_has_no_verdict():
    line = '{"bench": "stream_agents", "figure": "alert_latency_p99", "value": NaN, "unit": "s", "baseline": 1.0, "ratio": NaN}'
    f = figure_from_line(line)
    (target,) = targets_for(f)
    assert target.met(f) is None


def test_targets_compare_value_or_ratio():
    t = Target("sink", "sink_throughput", ">=", 0.8, "#12", "x", field="ratio")
    assert t.met(fig(value=50.0, baseline=60.0)) is True
    assert t.met(fig(value=40.0, baseline=60.0)) is False
    assert t.met(fig(value=40.0)) is None  # no baseline, no ratio
    low = Target("queries", "*_10000000rows", "<=", 200.0, "#15", "x")
    assert low.met(fig("queries", "top50_30d_10000000rows", 199.9, "ms")) is True
    assert low.met(fig("queries", "top50_30d_10000000rows", 200.1, "ms")) is False
    assert not low.matches(fig("queries", "top50_30d_100000rows", 10.0, "ms"))


def test_every_target_names_an_issue_and_a_known_operator():
    for t in TARGETS:
        assert t.op in ("<=", ">=") and t.issue and t.text
        assert t.field in ("value", "ratio")


def test_the_sink_throughput_has_both_of_its_targets():
    f = fig(value=30_000.0, baseline=40_000.0)
    matched = targets_for(f)
    assert {(t.field, t.limit) for t in matched} == {("ratio", 0.8), ("value", 100_000)}
    assert [t.met(f) for t in matched] == [False, False]


def result(**kw):
    base = dict(
        name="sink",
        run=1,
        runs=1,
        command=[".venv/bin/python", "bench/bench_sink.py", "--rows", "200000"],
        env={},
        wall_s=61.2,
        exit_code=0,
        load_before=(1.0, 1.5, 2.0),
        load_after=(2.25, 1.75, 2.0),
        figures=[
            fig(value=50_000.0, baseline=60_000.0),
            fig(figure="freshness_p95", value=0.9, unit="s"),
        ],
    )
    return BenchResult(**{**base, **kw})


MACHINE = {"CPU": "AMD EPYC", "cores": "2", "git commit": "abc1234"}


def test_markdown_has_machine_figures_targets_command_and_load():
    md = render_markdown(
        MACHINE, [result()], smoke=False, results_file="bench/results/d.jsonl", command="c"
    )
    assert md.startswith("# Benchmarks\n")
    assert "SMOKE" not in md
    assert "| CPU | AMD EPYC |" in md
    assert "| git commit | abc1234 |" in md
    assert "`.venv/bin/python bench/bench_sink.py --rows 200000`" in md
    assert "before 1.00 / 1.50 / 2.00, after 2.25 / 1.75 / 2.00" in md
    row = next(line for line in md.splitlines() if line.startswith("| sink_throughput |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["sink_throughput", "50,000", "rows/s", "60,000", "0.833"]
    assert "ratio >= 0.8 (#12)" in cells[5] and ">= 100000 (storage issue)" in cells[5]
    assert cells[6] == "**no**"  # 0.833 meets one, 50,000 < 100,000 misses the other
    fresh = next(line for line in md.splitlines() if line.startswith("| freshness_p95 |"))
    assert fresh.rstrip().endswith("| yes |")
    assert "| sink | 1 of 1 | ok | 61 s | 2 | 2 of 3 |" in md


def test_a_failed_run_is_reported_with_its_stderr_tail():
    failed = result(exit_code=1, figures=[], stderr_tail="Traceback ...\nKafkaError: down\n")
    md = render_markdown(MACHINE, [failed], smoke=False, results_file="r", command="c")
    assert "| sink | 1 of 1 | **FAILED** |" in md
    assert "**FAILED**: exit code 1; no figure lines" in md
    assert "KafkaError: down" in md
    assert "1 run(s) failed: sink (run 1)" in md


def test_a_run_with_a_malformed_line_fails_even_with_exit_code_zero():
    r = result(problems=["line 3: not a figure line: missing ['bench'], extra ['x']"])
    assert r.failed
    assert "line 3" in r.failure_reason()


def test_a_smoke_run_says_so_in_its_header():
    md = render_markdown(MACHINE, [result()], smoke=True, results_file="r", command="c --quick")
    assert md.startswith("# Benchmarks — SMOKE RUN (--quick)\n")
    assert "not measurements of errorstream" in md
    row = next(line for line in md.splitlines() if line.startswith("| sink_throughput |"))
    assert row.rstrip().endswith("| – | – |")  # no target verdict on smoke sizes
    assert "| sink | 1 of 1 | ok | 61 s | 2 | – |" in md


def test_consecutive_runs_get_one_section_each():
    runs = [result(name="stream_agents", run=i, runs=3, figures=[]) for i in (1, 2, 3)]
    md = render_markdown(MACHINE, runs, smoke=False, results_file="r", command="c")
    for i in (1, 2, 3):
        assert f"## stream_agents, run {i} of 3" in md


def test_queries_keep_the_data_set_the_first_time_and_reuse_it_after(tmp_path):
    import run_all

    bench = next(b for b in run_all.BENCHES if b.name == "queries")
    (tmp_path / "clickhouse").mkdir()  # an unfinished generation: no note
    assert run_all.queries_args(bench, tmp_path) == (
        "--rows",
        "10000000",
        "--keep",
        str(tmp_path),
    )
    assert not (tmp_path / "clickhouse").exists()
    (tmp_path / "bench.json").write_text('{"rows": 10000000, "end": 0}')
    assert run_all.queries_args(bench, tmp_path) == ("--reuse", str(tmp_path))


def test_full_run_estimate_stays_within_half_an_hour():
    import run_all

    assert run_all.estimate_full_s() <= 30 * 60
    stream = next(b for b in run_all.BENCHES if b.name == "stream_agents")
    assert stream.runs == 3 and stream.args == ("--events", "100000", "--background-rate", "2000")
