"""Seconds from an issue action's 202 until `GET /api/issues/{fp}` shows it, on the real
worker (local broker, decoder, agent, sink with chDB) — the "visible within a second" target.

    .venv/bin/python bench/bench_issue_actions.py [--actions 30] [--batch-time 0.5]

Produces a few issues, then for each action (assign, alternating assignees) POSTs it and
polls the issue every 20 ms until the change shows. Prints the load average before and after
and one JSON line per figure: p50 / p90 / max seconds (no baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.kafka_local import default_cache_dir, start_on_free_ports  # noqa: E402
from tests.integration.harness import WorkerProcess, pipeline_env  # noqa: E402
from tests.integration.test_issue_workflow import (  # noqa: E402
    act,
    event,
    fingerprint,
    produce,
    wait_counts,
    wait_visible,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=30)
    parser.add_argument("--batch-time", type=float, default=0.5, help="sink_max_batch_time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as tmp:
        root = Path(tmp)
        broker = start_on_free_ports(
            root / "kafka", cache_dir=default_cache_dir(), ready_timeout=90
        )
        try:
            env = pipeline_env(
                broker.bootstrap, root / "data", partitions=2, sink_max_batch_time=args.batch_time
            )
            worker = WorkerProcess(env, root / "worker.log").start()
            try:
                e = event("BenchError", ["bench", "actions"])
                fp = fingerprint(e)
                produce(env, [e])
                wait_counts(worker, {fp: 1})
                load_before = os.getloadavg()[0]
                took = []
                for i in range(args.actions):
                    who = f"user{i}"
                    _, at = act(worker, fp, action="assign", assignee=who)
                    took.append(wait_visible(worker, fp, lambda d, w=who: d["assignee"] == w, at))
                load_after = os.getloadavg()[0]
            finally:
                worker.stop()
        finally:
            broker.stop()
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    print(f"{len(took)} actions, sink_max_batch_time {args.batch_time}")
    for figure, value in (
        ("action_visible_p50_s", percentile(took, 0.5)),
        ("action_visible_p90_s", percentile(took, 0.9)),
        ("action_visible_max_s", max(took)),
    ):
        line = {
            "bench": "issue_actions",
            "figure": figure,
            "value": round(value, 3),
            "unit": "s",
            "baseline": None,
            "ratio": None,
        }
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
