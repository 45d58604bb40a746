"""Events/s of 1 vs 2 worker processes on a local broker (real Kafka, real chDB per worker).

For each worker count: start the workers (one consumer group, own data dir and port each),
wait until all are ready, produce N events as fast as the producer goes, and time until the
workers' /metrics say every event was processed by the issues stage and inserted by the sinks.

    .venv/bin/python bench/bench_worker_scaling.py [--events 20000] [--workers 1,2]

Ends with one JSON line per worker count (events/s until stored; the first count is the
baseline of the others, so ``ratio`` is the scaling).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.kafka_local import default_cache_dir, free_ports, start_on_free_ports  # noqa: E402
from pipeline.progress import Progress  # noqa: E402
from tests.integration.harness import WorkerProcess, pipeline_env  # noqa: E402
from tests.integration.test_pipeline_e2e import make_events, produce  # noqa: E402

STALL_TIMEOUT = 300.0  # seconds: a run that has not finished by then is reported, not waited on


def scrape_total(worker: WorkerProcess, name: str) -> float:
    with urllib.request.urlopen(f"{worker.api}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def run(bootstrap: str, n_workers: int, payloads: list[bytes], root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    env = pipeline_env(
        bootstrap,
        root / "data-0",
        partitions=4,
        log_format="json",
        fingerprint_limit_per_minute=1_000_000,  # store every body: stored == produced
    )
    workers = []
    for i in range(n_workers):
        port, ch_port = free_ports(2)
        wenv = {
            **env,
            "ERRORSTREAM_WEB_PORT": str(port),
            "ERRORSTREAM_CLICKHOUSE_HTTP_PORT": str(ch_port),
            "ERRORSTREAM_DATA_DIR": str(root / f"data-{i}"),
        }
        workers.append(WorkerProcess(wenv, root / f"worker-{i}.log"))
    try:
        for w in workers:
            w.start()

        # every worker ready means the group is stable with partitions on each of them
        def ready(w: WorkerProcess) -> bool:
            try:
                return w.get("/readyz")["ready"]
            except urllib.error.HTTPError:  # 503 while a rebalance moves partitions
                return False

        while not all(ready(w) for w in workers):
            time.sleep(0.2)
        started = time.monotonic()
        asyncio.run(produce(bootstrap, env["ERRORSTREAM_TOPIC_EVENTS"], payloads))
        produced_s = time.monotonic() - started
        n = len(payloads)
        with Progress(f"{n_workers} worker(s)", total=n, unit="event", interval=2.0) as bar:
            processed = 0.0
            while processed < n:
                if time.monotonic() - started > STALL_TIMEOUT:
                    raise SystemExit(
                        f"{n_workers} worker(s): {processed:.0f}/{n} processed after {STALL_TIMEOUT}s"
                    )
                processed = sum(
                    scrape_total(w, "errorstream_issues_events_processed_total") for w in workers
                )
                bar.set(processed)
                time.sleep(0.1)
            processed_s = time.monotonic() - started
            stored = 0.0
            while stored < n:
                if time.monotonic() - started > STALL_TIMEOUT:
                    raise SystemExit(
                        f"{n_workers} worker(s): {stored:.0f}/{n} stored after {STALL_TIMEOUT}s"
                    )
                stored = sum(
                    scrape_total(w, 'errorstream_sink_rows_inserted_total{table="events"}')
                    for w in workers
                )
                time.sleep(0.1)
        stored_s = time.monotonic() - started
        return {
            "bench": "worker_scaling",
            "workers": n_workers,
            "partitions": 4,
            "events": n,
            "produce_s": round(produced_s, 2),
            "processed_s": round(processed_s, 2),
            "stored_s": round(stored_s, 2),
            "events_per_s": round(n / stored_s, 1),
            "cpus": os.cpu_count(),
        }
    finally:
        for w in workers:
            w.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    payloads = [orjson.dumps(e) for e in make_events(args.events)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        root = Path(tmp)
        broker = start_on_free_ports(
            root / "kafka", cache_dir=default_cache_dir(), ready_timeout=90
        )
        try:
            for k in (int(x) for x in args.workers.split(",")):
                results.append(run(broker.bootstrap, k, payloads, root / f"run-{k}"))
                r = results[-1]
                print(
                    f"{k} worker(s): {r['events']} events, produced in {r['produce_s']} s, "
                    f"processed {r['processed_s']} s, stored {r['stored_s']} s: "
                    f"{r['events_per_s']:,.0f} events/s ({r['cpus']} CPUs)",
                    flush=True,
                )
            base = results[0]["events_per_s"]
            for r in results:  # the first worker count is the baseline of the others
                k, rate = r["workers"], r["events_per_s"]
                line = {
                    "bench": "worker_scaling",
                    "figure": f"events_per_s_{k}_workers",
                    "value": rate,
                    "unit": "events/s",
                    "baseline": base if r is not results[0] else None,
                    "ratio": round(rate / base, 3) if r is not results[0] and base else None,
                }
                print(json.dumps(line), flush=True)
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
