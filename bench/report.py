"""The pure parts of ``bench/run_all.py``: figure lines out of a script's output, the targets
the issues state, and BENCHMARKS.md rendered from the results. No I/O here.

A figure line is one JSON object with exactly the keys ``bench``, ``figure``, ``value``,
``unit``, ``baseline``, ``ratio`` (``baseline`` / ``ratio`` null where a script has none).
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field

FIGURE_KEYS = ("bench", "figure", "value", "unit", "baseline", "ratio")


class FigureLineError(ValueError):
    """A line that is a JSON object but not a figure line (the reason says why)."""


def figure_from_line(line: str) -> dict | None:
    """The figure of one output line; None for a line that is not a JSON object (human text).

    Raises FigureLineError for a JSON object that is not in the figure shape."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    keys = set(data)
    if keys != set(FIGURE_KEYS):
        missing = sorted(set(FIGURE_KEYS) - keys)
        extra = sorted(keys - set(FIGURE_KEYS))
        raise FigureLineError(f"not a figure line: missing {missing}, extra {extra}")
    for key in ("bench", "figure", "unit"):
        if not isinstance(data[key], str) or not data[key]:
            raise FigureLineError(f"{key} must be a non-empty string, got {data[key]!r}")
    for key in ("value", "baseline", "ratio"):
        v = data[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise FigureLineError(f"{key} must be a number or null, got {v!r}")
    if data["value"] is None:
        raise FigureLineError("value is null")
    return data


def parse_figures(output: str) -> tuple[list[dict], list[str]]:
    """Every figure line of a script's stdout, in order, and one problem per line that is a
    JSON object but not a figure (``line N: reason``)."""
    figures, problems = [], []
    for n, line in enumerate(output.splitlines(), 1):
        try:
            fig = figure_from_line(line)
        except FigureLineError as exc:
            problems.append(f"line {n}: {exc}")
            continue
        if fig is not None:
            figures.append(fig)
    return figures, problems


@dataclass(frozen=True)
class Target:
    """A figure's target as an issue states it. ``figure`` may be an fnmatch pattern;
    ``field`` is the figure's ``value`` or its ``ratio`` to the same run's baseline."""

    bench: str
    figure: str
    op: str  # "<=" or ">="
    limit: float
    issue: str
    text: str
    field: str = "value"

    def matches(self, fig: dict) -> bool:
        return fig["bench"] == self.bench and fnmatch.fnmatchcase(fig["figure"], self.figure)

    def met(self, fig: dict) -> bool | None:
        """True / False; None when the figure has no number to compare (null or NaN)."""
        v = fig.get(self.field)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        if self.op == "<=":
            return v <= self.limit
        if self.op == ">=":
            return v >= self.limit
        raise ValueError(f"unknown operator {self.op!r}")

    def describe(self) -> str:
        what = "ratio" if self.field == "ratio" else ""
        return f"{what} {self.op} {self.limit:g} ({self.issue})".strip()


# Every target an issue states for a figure a bench script prints. Issues #12 (worker), #13
# (gateway), #14 (people's side), #15 (query speed), #17 (Sentry payloads on Kafka); the sink's
# 100,000 records/s and 5 s freshness come from the storage issue, quoted in docs/storage.md.
TARGETS: tuple[Target, ...] = (
    Target("stream_agents", "throughput_stored", ">=", 10_000, "#12", "10,000 events/s stored"),
    Target(
        "stream_agents",
        "alert_latency_p99",
        "<=",
        1.0,
        "#12",
        "new-issue alert p99 <= 1 s at 2,000 events/s, in each of three consecutive runs",
    ),
    Target(
        "sink",
        "sink_throughput",
        ">=",
        0.8,
        "#12",
        "sink at >= 0.8 of bare chDB inserts",
        field="ratio",
    ),
    Target(
        "sink", "sink_throughput", ">=", 100_000, "storage issue", "100,000 records/s into chDB"
    ),
    Target("sink", "freshness_p95", "<=", 5.0, "storage issue", "produce -> visible p95 <= 5 s"),
    Target(
        "gateway",
        "accepted_events_per_s",
        ">=",
        5_000,
        "#13",
        ">= 5,000 accepted events/s per gateway process",
    ),
    Target(
        "issue_actions",
        "action_visible_max_s",
        "<=",
        1.0,
        "#14",
        "an action's state visible in queries within a second",
    ),
    Target(
        "queries",
        "*_10000000rows",
        "<=",
        200.0,
        "#15",
        "every query under 200 ms on 10M events, in three consecutive runs",
    ),
    Target(
        "queries",
        "issue_detail_*_10000000rows",
        "<=",
        1.5,
        "#15",
        "issue detail within 1.5x its bare query",
        field="ratio",
    ),
    Target(
        "decode",
        "v1_decode_us_per_event",
        "<=",
        1.10,
        "#17",
        "schema-v1 decode cost within 10 % of the v1-only loop",
        field="ratio",
    ),
)


def targets_for(fig: dict, targets: tuple[Target, ...] = TARGETS) -> list[Target]:
    return [t for t in targets if t.matches(fig)]


@dataclass
class BenchResult:
    """One run of one bench script, as run_all saw it."""

    name: str
    run: int  # 1-based, of ``runs``
    runs: int
    command: list[str]
    env: dict[str, str]
    wall_s: float
    exit_code: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    figures: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    stderr_tail: str = ""

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 or not self.figures or bool(self.problems)

    def failure_reason(self) -> str:
        reasons = []
        if self.exit_code != 0:
            reasons.append(f"exit code {self.exit_code}")
        if not self.figures:
            reasons.append("no figure lines")
        reasons += self.problems
        return "; ".join(reasons)


def _num(v: float | int | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    a = abs(v)
    if a >= 100:
        return f"{v:,.1f}"
    if a >= 1:
        return f"{v:.3g}" if a < 10 else f"{v:.1f}"
    return f"{v:.3g}"


def _loads(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_figures_table(figures: list[dict], targets: tuple[Target, ...] = TARGETS) -> list[str]:
    lines = [
        "| figure | value | unit | baseline | ratio | target | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for fig in figures:
        matched = targets_for(fig, targets)
        target = "; ".join(t.describe() for t in matched) or "–"
        if matched:
            verdicts = [t.met(fig) for t in matched]
            met = (
                "n/a"
                if any(v is None for v in verdicts)
                else ("yes" if all(verdicts) else "**no**")
            )
        else:
            met = "–"
        lines.append(
            f"| {_cell(fig['figure'])} | {_num(fig['value'])} | {_cell(fig['unit'])} "
            f"| {_num(fig['baseline'])} | {_num(fig['ratio'])} | {target} | {met} |"
        )
    return lines


def render_markdown(
    machine: dict[str, str],
    results: list[BenchResult],
    *,
    smoke: bool,
    results_file: str,
    command: str,
    targets: tuple[Target, ...] = TARGETS,
    footer: list[str] | None = None,
) -> str:
    """BENCHMARKS.md: the machine, then per bench (and per run) the figures with their
    baselines, ratios and targets, the command, wall time, exit code and load averages."""
    title = "Benchmarks — SMOKE RUN (--quick)" if smoke else "Benchmarks"
    judged = () if smoke else targets  # a smoke run's sizes are not the targets' sizes
    out = [f"# {title}", ""]
    if smoke:
        out += [
            "**This is a smoke run with small sizes (`--quick`): it shows that every script "
            "runs and prints its figures. These numbers are not measurements of errorstream "
            "and no target applies to them.**",
            "",
        ]
    out += [
        f"Generated by `{command}`. Raw figure lines: `{results_file}`. Every figure comes "
        "with its baseline from the same run of the same script, and the ratio "
        "value / baseline.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    out += [f"| {k} | {_cell(v)} |" for k, v in machine.items()]
    failed = [r for r in results if r.failed]
    out += ["", "## Summary", ""]
    out += [
        "| bench | run | status | wall time | figures | targets met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        verdicts = [t.met(f) for f in r.figures for t in targets_for(f, judged)]
        known = [v for v in verdicts if v is not None]
        tm = f"{sum(known)} of {len(verdicts)}" if verdicts else "–"
        status = "**FAILED**" if r.failed else "ok"
        out.append(
            f"| {r.name} | {r.run} of {r.runs} | {status} | {r.wall_s:,.{0 if r.wall_s >= 10 else 1}f} s "
            f"| {len(r.figures)} | {tm} |"
        )
    if failed:
        out += [
            "",
            f"{len(failed)} run(s) failed: " + ", ".join(f"{r.name} (run {r.run})" for r in failed),
        ]
    for r in results:
        heading = r.name if r.runs == 1 else f"{r.name}, run {r.run} of {r.runs}"
        out += ["", f"## {heading}", ""]
        env = " ".join(f"{k}={v}" for k, v in sorted(r.env.items()))
        out += [
            f"Command: `{(env + ' ') if env else ''}{' '.join(r.command)}`  ",
            f"Wall time {r.wall_s:,.1f} s, exit code {r.exit_code}; load average (1 / 5 / 15 "
            f"min) before {_loads(r.load_before)}, after {_loads(r.load_after)}.",
            "",
        ]
        if r.failed:
            out += [f"**FAILED**: {_cell(r.failure_reason())}", ""]
            if r.stderr_tail:
                out += ["stderr (tail):", "", "```", r.stderr_tail.rstrip("\n"), "```", ""]
        if r.figures:
            out += render_figures_table(r.figures, judged)
    out += ["", "## Targets", "", "| bench | figure | target | issue | what the issue says |"]
    out += ["|---|---|---|---|---|"]
    for t in targets:
        what = f"ratio {t.op} {t.limit:g}" if t.field == "ratio" else f"{t.op} {t.limit:g}"
        out.append(f"| {t.bench} | `{t.figure}` | {what} | {t.issue} | {_cell(t.text)} |")
    if footer:
        out += ["", *footer]
    return "\n".join(out) + "\n"
