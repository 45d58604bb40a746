"""Run every benchmark in bench/ on this machine, one at a time, and write BENCHMARKS.md.

Each script runs as a subprocess with the options the issues' targets name (BENCHES below);
run_all keeps each script's figure lines (``{"bench", "figure", "value", "unit", "baseline",
"ratio"}``), the exact command, wall time, exit code and /proc/loadavg before and after, then
writes BENCHMARKS.md (machine, one table per bench with baselines, ratios and targets) and the
raw figure lines to bench/results/<date>.jsonl. A script that fails (exit code, no figures,
a malformed figure line) is reported as failed with its stderr tail, never skipped.

    python bench/run_all.py [--only NAME ...] [--skip NAME ...] [--quick] [--out FILE]
                            [--queries-dir DIR]
    errorstream bench ...        (the same)

``--quick``: small sizes, a smoke test of every script (a few minutes); it writes
BENCHMARKS-smoke.md by default, whose header says it is a smoke run. bench_queries keeps its
10M-event data set in --queries-dir (default ~/.cache/errorstream/bench-queries-10000000) and
reuses it on the next run (``--reuse``), so only the first run_all generates it.
The soak (bench/soak.py) is not a benchmark and is not run here: see SOAK.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import BenchResult, parse_figures, render_markdown  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
QUERY_ROWS = 10_000_000
STDERR_TAIL = 3000  # characters of a failed script's stderr kept in the report


@dataclass(frozen=True)
class Bench:
    name: str  # the "bench" key of its figure lines
    script: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    quick_env: dict[str, str] = field(default_factory=dict)
    runs: int = 1  # consecutive runs at full size (a target stated per run)
    # seconds at full size, one run, on the 2-core machine (with its own broker): measured for
    # grouping, decode, sdk_capture, sdk_memory; the others from their sizes and quick runs
    estimate_s: int = 60


# Full-size options are those of the issues' targets and the docs that quote the figures:
# docs/stream-agents.md, docs/storage.md, docs/gateway.md, docs/issues.md, docs/scaling.md,
# docs/grouping.md, docs/ingest-formats.md, producers/README.md.
BENCHES: tuple[Bench, ...] = (
    Bench("grouping", "bench_grouping.py", (), ("--events", "500", "--repeat", "1"), estimate_s=10),
    Bench(
        "decode",
        "bench_decode.py",
        (),
        ("--events", "500", "--repeat", "2"),
        estimate_s=35,
    ),
    Bench("sdk_capture", "bench_sdk_capture.py", (), ("--n", "1000"), estimate_s=5),
    Bench(
        "sdk_memory",
        "bench_sdk_memory.py",
        (),
        ("--n", "20000", "--queue-size", "1000", "--warm", "5000"),
        estimate_s=30,
    ),
    Bench("sdk_publish", "bench_sdk_publish.py", (), ("--n", "2000"), estimate_s=40),
    Bench(
        "gateway",
        "bench_gateway.py",
        ("--requests", "20000"),
        ("--requests", "300", "--concurrency", "16"),
        estimate_s=60,
    ),
    Bench(
        "stream_agents",
        "bench_stream_agents.py",
        ("--events", "100000", "--background-rate", "2000"),
        ("--events", "2000", "--background-rate", "200"),
        runs=3,
        estimate_s=150,
    ),
    Bench(
        "exactly_once",
        "bench_exactly_once.py",
        ("--messages", "20000", "--rounds", "2"),
        ("--messages", "1000", "--rounds", "1"),
        estimate_s=240,
    ),
    Bench(
        "sink",
        "bench_sink.py",
        ("--rows", "200000"),
        ("--rows", "5000", "--probes", "4"),
        estimate_s=120,
    ),
    Bench(
        "issue_actions",
        "bench_issue_actions.py",
        ("--actions", "30"),
        ("--actions", "3"),
        estimate_s=40,
    ),
    Bench(
        "worker_scaling",
        "bench_worker_scaling.py",
        ("--events", "20000", "--workers", "1,2"),
        ("--events", "1000", "--workers", "1,2"),
        estimate_s=60,
    ),
    Bench(
        "queries",
        "bench_queries.py",
        ("--rows", str(QUERY_ROWS)),
        ("--rows", "100000", "--runs", "1"),
        runs=3,
        estimate_s=60,  # a run on the kept data set; generating it once adds QUERY_GENERATE_S
    ),
)
QUERY_GENERATE_S = 300  # 10M events; 1M took 24 s here
NAMES = tuple(b.name for b in BENCHES)


def estimate_full_s(benches: tuple[Bench, ...] = BENCHES, queries_kept: bool = False) -> int:
    total = sum(b.estimate_s * b.runs for b in benches)
    if any(b.name == "queries" for b in benches) and not queries_kept:
        total += QUERY_GENERATE_S
    return total


def queries_args(bench: Bench, directory: Path) -> tuple[str, ...]:
    """bench_queries at full size: keep the generated folder the first time, reuse it after
    (``--reuse`` takes the row count from the folder's note)."""
    if (directory / "bench.json").is_file():
        return ("--reuse", str(directory))
    # a folder without its note is a generation that did not finish: start it again
    shutil.rmtree(directory / "clickhouse", ignore_errors=True)
    return (*bench.args, "--keep", str(directory))


def loadavg() -> tuple[float, float, float]:
    fields = Path("/proc/loadavg").read_text().split()
    return float(fields[0]), float(fields[1]), float(fields[2])


def run_script(
    bench: Bench, args: tuple[str, ...], env: dict[str, str], run: int, runs: int
) -> BenchResult:
    command = [sys.executable, str(BENCH_DIR / bench.script), *args]
    shown = [
        os.path.relpath(sys.executable, ROOT)
        if sys.executable.startswith(str(ROOT))
        else sys.executable,
        f"bench/{bench.script}",
        *args,
    ]
    print(f"== {bench.name} (run {run} of {runs}): {' '.join(shown)}", file=sys.stderr, flush=True)
    load_before = loadavg()
    started = time.perf_counter()
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    load_after = loadavg()
    figures, problems = parse_figures(proc.stdout)
    foreign = [
        f for f in figures if f["bench"] != bench.name and not f["bench"].startswith(bench.name)
    ]
    if foreign:
        problems.append(f"{len(foreign)} figure line(s) name another bench: {foreign[0]['bench']}")
    result = BenchResult(
        name=bench.name,
        run=run,
        runs=runs,
        command=shown,
        env=env,
        wall_s=wall,
        exit_code=proc.returncode,
        load_before=load_before,
        load_after=load_after,
        figures=figures,
        problems=problems,
        stderr_tail=proc.stderr[-STDERR_TAIL:],
    )
    status = "FAILED: " + result.failure_reason() if result.failed else "ok"
    print(
        f"   {wall:,.1f} s, {len(figures)} figures, load {load_before[0]:.2f} -> "
        f"{load_after[0]:.2f}: {status}",
        file=sys.stderr,
        flush=True,
    )
    return result


def _output(command: list[str]) -> str:
    try:
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_description() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    except OSError:
        pass
    try:
        import chdb

        chdb_version = chdb.__version__
    except ImportError:
        chdb_version = "not installed"
    from pipeline.kafka_local.config import DEFAULT_VERSION

    commit = _output(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if _output(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    return {
        "CPU": cpu or platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "RAM": f"{mem_kib / 2**20:.1f} GiB" if mem_kib else "unknown",
        "OS": os_name,
        "Python": platform.python_version(),
        "Kafka": f"{os.environ.get('ERRORSTREAM_KAFKA_VERSION', DEFAULT_VERSION)} "
        "(local single-node KRaft broker, started by each script)",
        "chDB": chdb_version,
        "git commit": commit,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=NAMES, help="run only these")
    parser.add_argument("--skip", nargs="+", metavar="NAME", choices=NAMES, default=[])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke test of every script"
    )
    parser.add_argument(
        "--out", help="the report (default BENCHMARKS.md; BENCHMARKS-smoke.md with --quick)"
    )
    parser.add_argument(
        "--results-dir", default=str(BENCH_DIR / "results"), help="where <date>.jsonl goes"
    )
    parser.add_argument(
        "--queries-dir",
        default=str(Path.home() / ".cache" / "errorstream" / f"bench-queries-{QUERY_ROWS}"),
        help="bench_queries' kept 10M-event data set (generated once, then --reuse)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="benches (estimated seconds per run x runs): "
        + ", ".join(f"{b.name} {b.estimate_s}x{b.runs}" for b in BENCHES)
        + ". Estimated full run on the 2-core machine: "
        f"~{estimate_full_s(queries_kept=True) / 60:.0f} min with the queries data set kept, "
        f"~{estimate_full_s() / 60:.0f} min the first time (generating 10M events); "
        "--quick: a few minutes.",
    )
    add_arguments(parser)
    return parser


def command_options(args: argparse.Namespace) -> list[str]:
    """The options of this run, as a command line that repeats it."""
    out = []
    if args.only:
        out += ["--only", *args.only]
    if args.skip:
        out += ["--skip", *args.skip]
    if args.quick:
        out.append("--quick")
    if args.out:
        out += ["--out", args.out]
    return out


def run(args: argparse.Namespace) -> int:
    benches = [b for b in BENCHES if (not args.only or b.name in args.only)]
    benches = [b for b in benches if b.name not in args.skip]
    if not benches:
        print("run_all: nothing to run", file=sys.stderr)
        return 2
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    out = Path(args.out or ("BENCHMARKS-smoke.md" if args.quick else "BENCHMARKS.md"))
    results_dir = Path(args.results_dir)
    results_file = results_dir / (f"{today}-smoke.jsonl" if args.quick else f"{today}.jsonl")
    machine = machine_description()
    results: list[BenchResult] = []
    for bench in benches:
        runs = 1 if args.quick else bench.runs
        for i in range(1, runs + 1):
            if args.quick:
                a, env = bench.quick_args, bench.quick_env
            elif bench.name == "queries":
                a, env = queries_args(bench, Path(args.queries_dir)), bench.env
            else:
                a, env = bench.args, bench.env
            results.append(run_script(bench, a, env, i, runs))
    results_dir.mkdir(parents=True, exist_ok=True)
    with results_file.open("a") as f:
        for r in results:
            for fig in r.figures:
                f.write(json.dumps(fig) + "\n")
    command = " ".join(["python bench/run_all.py", *command_options(args)])
    footer = [
        "## Not here",
        "",
        "The soak-and-faults scenario (`bench/soak.py`) is not a benchmark: see SOAK.md.",
    ]
    try:
        shown = results_file.relative_to(ROOT)
    except ValueError:
        shown = results_file
    out.write_text(
        render_markdown(
            machine,
            results,
            smoke=args.quick,
            results_file=str(shown),
            command=command,
            footer=footer,
        )
    )
    failed = [r for r in results if r.failed]
    print(
        f"run_all: {len(results) - len(failed)} of {len(results)} runs ok; wrote {out} and "
        f"{results_file}",
        file=sys.stderr,
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
