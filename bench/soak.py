"""Soak and faults: steady load through raw Kafka and the gateway while the pipeline is hurt,
then an exact reconciliation of what was accepted against what ClickHouse and the
dead-letter topic hold.

    python bench/soak.py --duration 540 --rate 400 --out SOAK.md --json bench/results/soak.json

What runs (all real processes): a local Kafka broker of its own (``pipeline.kafka_local``), the
worker (``errorstream worker``: decoder, agent and sink children, embedded chDB) and the
gateway (``errorstream gateway``). Two ``errorstream loadgen`` plans run in this process, one
to the ingest topic (acks=all) and one through the gateway, each recording which event was
acknowledged. At fixed points of the run, in turn:

    kill -9 decoder / agent / sink child   the supervisor restarts it
    broker restart                         SIGTERM, then the same data dir and ports again
    ClickHouse unavailable                 ``chattr +i`` on the data directories of every
                                           table of the database (in the chDB folder): an
                                           insert cannot create its part (even as root), the
                                           sink's insert fails and is retried with backoff;
                                           ``chattr -i`` ends it
    gateway rate limit                     a burst on a second DSN key until 429s come back
    bad gateway requests                   invalid JSON, an unknown key, a wrong project,
                                           an oversized body (400 / 401 / 403 / 413)

loadgen's own malformed slice goes to the ingest topic throughout. At the end the report
(markdown + JSON) reconciles: every accepted message is a stored event, a collapsed duplicate
or a dead letter with its reason; per-issue counts in ClickHouse equal what was sent; each
expected alert fired once; peak RSS per process. Stdout gets the verdict line, then one figure
line per process's peak RSS (baseline: the bound, `rss_limit_mb`) and the load average. The
exit code is 1 when a check fails (the failed checks are named on stderr), 2 when the run could
not be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.kafka_local import (  # noqa: E402
    KafkaBroker,
    default_cache_dir,
    start_on_free_ports,
)
from pipeline.loadgen import (  # noqa: E402
    Flood,
    GatewaySender,
    Item,
    KafkaSender,
    LoadPlan,
    Profile,
    Spike,
    Tally,
    to_sentry,
)
from pipeline.loadgen import run as run_loadgen  # noqa: E402
from tests.integration.gateway_harness import (  # noqa: E402
    KEY,
    KEY_ROTATED,
    GatewayProcess,
    gateway_env,
    topic_records,
)
from tests.integration.harness import WorkerProcess, pipeline_env  # noqa: E402

ROLES = ("decoder", "agent", "sink")
KAFKA_SEED, GATEWAY_SEED, BURST_SEED = 11, 12, 13  # event_ids start with the seed: no clashes


@dataclass(frozen=True)
class SoakConfig:
    duration: float = 540.0  # seconds of load
    rate: float = 400.0  # events/s in all (raw Kafka + gateway)
    gateway_share: float = 0.2  # of the rate, through the gateway
    clickhouse_down: float = 60.0  # seconds
    burst_requests: int = 1500  # rate-limit phase: requests on the second key past its burst
    spike_at: float = 0.0  # earliest start; 0 = 62% of the run (aligned: see spike_start)
    spike_length: float = 40.0
    spike_rank: int = 20
    spike_factor: float = 30.0
    spike_baseline_windows: int = 2
    flood_at: float = 0.0  # 0 = 70% of the run
    flood_length: float = 15.0
    flood_rate: float = 60.0
    drain_timeout: float = 240.0
    rss_limit_mb: float = 2048.0

    @classmethod
    def short(cls) -> SoakConfig:
        """The test-suite variant: the same phases, a few seconds each."""
        return cls(
            duration=150.0,
            rate=150.0,
            clickhouse_down=15.0,
            burst_requests=600,
            spike_at=105.0,
            spike_length=20.0,
            # a third of a minute at 50x: ~17x the bug's minute, against the 5x the rule
            # needs of a baseline minute that held it at a higher rank (new bugs push it down)
            spike_factor=50.0,
            spike_baseline_windows=1,
            flood_at=100.0,
            flood_length=8.0,
            flood_rate=40.0,
            drain_timeout=120.0,
        )

    def fault_times(self) -> dict[str, float]:
        d = self.duration
        if d >= 300:
            return {
                "kill_decoder": 0.08 * d,
                "kill_agent": 0.16 * d,
                "kill_sink": 0.24 * d,
                "broker_restart": 0.32 * d,
                "clickhouse_unavailable": 0.42 * d,
                "gateway_rate_limit": 0.76 * d,
                "gateway_bad_requests": 0.80 * d,
            }
        return {  # the short variant: phases back to back, the spike after them
            "kill_decoder": 8.0,
            "kill_agent": 22.0,
            "kill_sink": 36.0,
            "broker_restart": 50.0,
            "clickhouse_unavailable": 72.0,
            "gateway_rate_limit": 95.0,
            "gateway_bad_requests": 100.0,
        }


def spike_start(
    start: float, earliest: float, length: float, duration: float, margin: float = 2.0
) -> float:
    """Seconds from ``start`` (epoch seconds, the plan's clock) at or after ``earliest`` where
    a spike of ``length`` seconds lies inside one wall-clock minute, ``margin`` seconds from
    either edge. The soak runs the spike rule with one-minute windows: a spike that straddles
    a minute boundary splits its events across two windows, and the second window's baseline
    (the first) already holds part of the spike, so it may rightly not fire. Raises
    ValueError when no such start leaves the spike inside the run."""
    if length + 2 * margin > 60:
        raise ValueError(f"a spike of {length:g} s does not fit in one minute")
    offset = (start + earliest) % 60
    if offset < margin:
        wait = margin - offset
    elif offset <= 60 - length - margin:
        wait = 0.0
    else:
        wait = 60 - offset + margin
    at = earliest + wait
    if at + length > duration:
        raise ValueError(
            f"the spike ({length:g} s from {earliest:g} s or later, inside one minute) "
            f"does not fit in a {duration:g} s run"
        )
    return at


def worker_settings(cfg: SoakConfig) -> dict[str, Any]:
    """The worker's settings for the soak (ERRORSTREAM_<NAME> variables)."""
    return {
        "fingerprint_limit_per_minute": 10**9,  # every body stored: stored == accepted
        "service_limit_per_minute": 10**9,
        "partitions": 2,  # service-level alerts are decided per partition: reconcile reads it
        "spike_window_minutes": 1,
        "spike_baseline_windows": cfg.spike_baseline_windows,
        "sink_retry_max_backoff": 2.0,
        "log_format": "plain",
    }


def kafka_profile(cfg: SoakConfig, start: float) -> Profile:
    """The raw-Kafka share of the load, with the planned spike (placed by ``spike_start`` for
    a plan clock starting at ``start``) and the planned flood."""
    spike_at = spike_start(
        start, cfg.spike_at or 0.62 * cfg.duration, cfg.spike_length, cfg.duration
    )
    return Profile(
        rate=cfg.rate * (1 - cfg.gateway_share),
        duration=cfg.duration,
        malformed_fraction=0.005,
        spikes=(Spike(spike_at, cfg.spike_length, cfg.spike_factor, cfg.spike_rank),),
        floods=(Flood(cfg.flood_at or 0.70 * cfg.duration, cfg.flood_length, cfg.flood_rate),),
        seed=KAFKA_SEED,
    )


def gateway_profile(cfg: SoakConfig) -> Profile:
    return Profile(
        rate=cfg.rate * cfg.gateway_share,
        duration=cfg.duration,
        malformed_fraction=0,
        seed=GATEWAY_SEED,
    )


# --- recording senders ------------------------------------------------------------------------
@dataclass
class Ledger:
    """What was sent and what was acknowledged, per event_id (thread-safe enough: each sender
    appends from its own thread, and the report reads after both joined)."""

    bug_of: dict[str, tuple[int, int]] = field(default_factory=dict)  # event_id → (seed, bug)
    acked: list[tuple[str, str]] = field(default_factory=list)  # (kind, event_id or "")
    refused: list[tuple[str, str, int]] = field(default_factory=list)  # kind, event_id, status
    statuses: collections.Counter = field(default_factory=collections.Counter)  # by path:status

    def note(self, seed: int, item: Item) -> str:
        if item.event is None:
            return ""
        event_id = item.event["event_id"]
        if item.bug is not None:
            self.bug_of[event_id] = (seed, item.bug.id)
        return event_id


class RecordingKafkaSender(KafkaSender):
    def __init__(self, settings: Any, ledger: Ledger, seed: int) -> None:
        super().__init__(settings)
        self.ledger, self.seed = ledger, seed
        self.items: list[tuple[str, str]] = []

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        from pipeline.kafka_clients import client_config

        # a broker restart takes seconds: the producer retries within the request timeout
        self.producer = AIOKafkaProducer(
            **client_config(self.settings, "loadgen"),
            acks="all",
            linger_ms=5,
            request_timeout_ms=120_000,
            retry_backoff_ms=250,
        )
        await self.producer.start()

    async def send(self, item: Item, tally: Tally) -> None:
        self.items.append((item.kind, self.ledger.note(self.seed, item)))
        await super().send(item, tally)

    async def settle(self, tally: Tally) -> None:
        results = await asyncio.gather(*self.pending, return_exceptions=True)
        done, self.items = self.items[: len(results)], self.items[len(results) :]
        for (kind, event_id), result in zip(done, results, strict=True):
            if isinstance(result, Exception):
                tally.failed += 1
                self.ledger.refused.append((kind, event_id, 0))
            else:
                self.ledger.acked.append((kind, event_id))
        self.pending.clear()


class RecordingGatewaySender(GatewaySender):
    def __init__(self, url: str, key: str, ledger: Ledger, seed: int, label: str) -> None:
        super().__init__(url, "1", key)
        self.ledger, self.seed, self.label = ledger, seed, label

    async def send(self, item: Item, tally: Tally) -> None:
        event_id = self.ledger.note(self.seed, item)
        body = item.raw if item.event is None else orjson.dumps(to_sentry(item.event))
        await self.slots.acquire()
        task = asyncio.ensure_future(self._post_one(body, item.kind, event_id, tally))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post_one(self, body: bytes, kind: str, event_id: str, tally: Tally) -> None:
        status = 0
        try:
            async with self.session.post(self.endpoint, data=body, headers=self.headers) as r:
                await r.read()
                status = r.status
        except Exception:
            status = 0
        finally:
            self.slots.release()
        self.ledger.statuses[f"{self.label}:{status}"] += 1
        if status == 200:
            tally.add(kind)
            self.ledger.acked.append((kind, event_id))
        else:
            tally.failed += 1
            self.ledger.refused.append((kind, event_id, status))


# --- processes and probes ---------------------------------------------------------------------
def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class ClickHouseSql:
    """SQL over the worker's read-only ClickHouse HTTP interface (the sink owns chDB)."""

    def __init__(self, port: str) -> None:
        self.url = f"http://127.0.0.1:{port}/"

    def rows(self, sql: str) -> list[dict]:
        query = urllib.parse.urlencode({"query": sql + " FORMAT JSONEachRow"})
        status, body = http(f"{self.url}?{query}")
        if status != 200:
            raise RuntimeError(f"ClickHouse HTTP {status}: {body[:300]!r}")
        return [orjson.loads(line) for line in body.splitlines() if line]


def metric_totals(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum of each sample of ``names`` by its full label set (``name{a="b"}``)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in names:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                key = f"{s.name}{{{labels}}}" if labels else s.name
                out[key] = out.get(key, 0.0) + s.value
    return out


def scrape(url: str, names: tuple[str, ...]) -> dict[str, float]:
    try:
        status, body = http(f"{url}/metrics")
    except OSError:
        return {}
    return metric_totals(body.decode(), names) if status == 200 else {}


WORKER_METRICS = (
    "errorstream_ingest_events_accepted_total",
    "errorstream_ingest_events_invalid_total",
    "errorstream_issues_events_processed_total",
    "errorstream_issues_events_deduplicated_total",
    "errorstream_issues_events_sampled_total",
    "errorstream_issues_events_shed_total",
    "errorstream_issues_events_late_total",
    "errorstream_alerts_emitted_total",
    "errorstream_sink_rows_inserted_total",
    "errorstream_sink_insert_failures_total",
    "errorstream_sink_insert_retries_total",
    "errorstream_sink_rows_rejected_total",
    "errorstream_worker_child_restarts_total",
)
GATEWAY_METRICS = (
    "errorstream_gateway_requests_total",
    "errorstream_gateway_rejects_total",
    "errorstream_gateway_events_published_total",
)


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


class RssSampler(threading.Thread):
    """Peak RSS (``VmHWM`` of /proc/<pid>/status, sampled every second) of every process,
    per role and over all incarnations of a restarted child."""

    def __init__(self, pids: Any) -> None:
        super().__init__(daemon=True)
        self.pids = pids  # callable → {name: pid}
        self.peak: dict[str, int] = {}
        self.seen: dict[str, set[int]] = collections.defaultdict(set)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(1.0)

    def sample(self) -> None:
        for name, pid in self.pids().items():
            if pid is None:
                continue
            status = proc_status(pid)
            if status:
                self.seen[name].add(pid)
                self.peak[name] = max(self.peak.get(name, 0), status.get("VmHWM", 0))


def chattr(paths: list[str], flag: str) -> None:
    subprocess.run(["chattr", flag, *paths], check=True, capture_output=True)


# --- the scenario -------------------------------------------------------------------------------
class Soak:
    def __init__(self, root: Path, config: SoakConfig, log=print) -> None:
        self.root, self.cfg, self.log = root, config, log
        self.ledger = Ledger()
        self.timeline: list[dict[str, Any]] = []
        self.plans: dict[str, LoadPlan] = {}
        self.load_errors: list[str] = []
        self.broker: KafkaBroker | None = None
        self.worker: WorkerProcess | None = None
        self.gateway: GatewayProcess | None = None
        self.locked: list[str] = []

    # -- set up -----------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.cfg
        self.root.mkdir(parents=True, exist_ok=True)
        self.broker = start_on_free_ports(self.root / "kafka", cache_dir=default_cache_dir())
        bootstrap = self.broker.bootstrap
        self.env = pipeline_env(bootstrap, self.root / "data", **worker_settings(cfg))
        self.worker = WorkerProcess(self.env, self.root / "worker.log").start(ready_timeout=120)
        gateway_rate = cfg.rate * cfg.gateway_share
        self.gateway_burst = int(max(2000.0, 40 * gateway_rate))
        self.gw_env = gateway_env(
            bootstrap,
            topic_events=self.env["ERRORSTREAM_TOPIC_EVENTS"],
            gateway_rate_limit=max(20.0, 2 * gateway_rate),
            # the steady stream catches up in one go after the broker restart (its requests
            # wait for Kafka meanwhile): the burst absorbs that, the burst phase exceeds it
            gateway_rate_burst=self.gateway_burst,
            gateway_max_body_bytes=256 * 1024,
            gateway_publish_timeout=30,
        )
        self.gateway = GatewayProcess(self.gw_env, self.root / "gateway.log").start()
        self.sql = ClickHouseSql(self.env["ERRORSTREAM_CLICKHOUSE_HTTP_PORT"])
        self.rss = RssSampler(self.pids)
        self.rss.start()

    def pids(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        if self.worker and self.worker.proc and self.worker.proc.poll() is None:
            out["worker (supervisor)"] = self.worker.proc.pid
            for role in ROLES:
                out[role] = self.worker.child_pid(role)
        if self.gateway and self.gateway.proc and self.gateway.proc.poll() is None:
            out["gateway"] = self.gateway.proc.pid
        if self.broker:
            out["kafka broker"] = self.broker.running_pid()
        out["soak (loadgen)"] = os.getpid()
        return out

    def stop(self) -> None:
        if self.locked:
            chattr(self.locked, "-i")
            self.locked = []
        if getattr(self, "rss", None):
            self.rss.stopping.set()
        for proc in (self.gateway, self.worker):
            if proc is not None:
                proc.stop()
        if self.broker is not None:
            self.broker.stop()

    # -- load --------------------------------------------------------------------------------
    def load_threads(self) -> list[threading.Thread]:
        from pipeline.settings import load_settings

        cfg = self.cfg
        start = time.time()  # the plans' clock: event timestamps are start + seconds
        kafka_plan = LoadPlan(kafka_profile(cfg, start), start)
        # malformed bodies through the gateway are the bad-requests phase (named statuses)
        gateway_plan = LoadPlan(gateway_profile(cfg), start)
        self.plans = {"kafka": kafka_plan, "gateway": gateway_plan}
        settings = load_settings(env={k: v for k, v in self.env.items()})
        kafka_sender = RecordingKafkaSender(settings, self.ledger, KAFKA_SEED)
        gw_sender = RecordingGatewaySender(
            self.gateway.url, KEY, self.ledger, GATEWAY_SEED, "steady"
        )

        def runner(name: str, plan: LoadPlan, sender: Any) -> threading.Thread:
            def target() -> None:
                try:
                    tally = asyncio.run(run_loadgen(plan, sender, progress=False))
                    self.tallies[name] = tally
                except Exception as exc:  # reported as a failed check, not swallowed
                    self.load_errors.append(f"{name}: {type(exc).__name__}: {exc}")

            return threading.Thread(target=target, name=f"loadgen-{name}", daemon=True)

        self.tallies: dict[str, Tally] = {}
        return [
            runner("kafka", kafka_plan, kafka_sender),
            runner("gateway", gateway_plan, gw_sender),
        ]

    # -- faults ------------------------------------------------------------------------------
    def restarts(self, role: str) -> float:
        totals = scrape(self.worker.api, ("errorstream_worker_child_restarts_total",))
        return totals.get(f'errorstream_worker_child_restarts_total{{role="{role}"}}', 0.0)

    def wait_ready(self, timeout: float = 120.0) -> bool:
        return bool(self.worker.wait_for(lambda: self.worker.get("/readyz")["ready"], timeout))

    def kill_child(self, role: str) -> dict[str, Any]:
        victim = self.worker.child_pid(role)
        if victim is None:
            return {"error": f"no {role} child found"}
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()

        def replaced() -> int | None:
            pid = self.worker.child_pid(role)
            return pid if pid not in (None, victim) else None

        new = self.worker.wait_for(replaced, timeout=60)
        ready = self.wait_ready()
        return {
            "killed_pid": victim,
            "new_pid": new,
            "ready_again": ready,
            "recovered_s": round(time.monotonic() - killed, 1),
        }

    def restart_broker(self) -> dict[str, Any]:
        started = time.monotonic()
        self.broker.stop()
        stopped = time.monotonic()
        self.broker.start()
        self.broker.wait_ready(90)
        up = time.monotonic()
        ready = self.wait_ready(180)
        return {
            "stop_s": round(stopped - started, 1),
            "down_s": round(up - started, 1),
            "port": self.broker.port,
            "worker_ready_again": ready,
            "recovered_s": round(time.monotonic() - started, 1),
        }

    def clickhouse_unavailable(self) -> dict[str, Any]:
        tables = self.sql.rows(
            "SELECT name, data_paths FROM system.tables WHERE database = 'errorstream' "
            "AND engine LIKE '%MergeTree%'"
        )
        paths = [p for t in tables for p in t["data_paths"] if Path(p).is_dir()]
        retries = "errorstream_sink_insert_retries_total"
        before = scrape(self.worker.api, (retries,)).get(retries, 0.0)
        chattr(paths, "+i")
        self.locked = paths
        started = time.monotonic()
        not_ready = 0
        while time.monotonic() - started < self.cfg.clickhouse_down:
            try:
                self.worker.get("/readyz")
            except urllib.error.HTTPError as exc:
                not_ready += exc.code == 503
            except OSError:
                pass
            time.sleep(1.0)
        during = scrape(self.worker.api, (retries,)).get(retries, 0.0)
        chattr(paths, "-i")
        self.locked = []
        ready = self.wait_ready()
        return {
            "mechanism": "chattr +i on the data directories of the MergeTree tables",
            "tables": len(tables),
            "directories": len(paths),
            "down_s": round(time.monotonic() - started, 1),
            "sink_retries_during": during - before,
            "readyz_503_samples": not_ready,
            "ready_again": ready,
        }

    def gateway_rate_limit(self) -> dict[str, Any]:
        plan = LoadPlan(
            Profile(
                rate=1000, duration=10, duplicate_fraction=0, malformed_fraction=0, seed=BURST_SEED
            )
        )
        items: list[Item] = []
        t = 0.0
        wanted = self.gateway_burst + self.cfg.burst_requests  # past the bucket: 429s
        while len(items) < wanted:
            items.extend(i for i in plan.items(t, t + 0.5) if i.event is not None)
            t += 0.5
        items = items[:wanted]
        self.plans["burst"] = plan  # type: ignore[assignment]
        sender = RecordingGatewaySender(
            self.gateway.url, KEY_ROTATED, self.ledger, BURST_SEED, "burst"
        )
        tally = Tally()

        async def blast() -> None:
            await sender.start()
            for item in items:
                await sender.send(item, tally)
            await sender.stop(tally)

        started = time.monotonic()
        asyncio.run(blast())
        statuses = {
            k.split(":")[1]: v for k, v in self.ledger.statuses.items() if k.startswith("burst:")
        }
        return {
            "requests": len(items),
            "seconds": round(time.monotonic() - started, 1),
            "status": statuses,
        }

    def gateway_bad_requests(self) -> dict[str, Any]:
        store = f"{self.gateway.url}/api/1/store/"
        auth = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={KEY}"}
        event = {"event_id": "badbad" + "0" * 26, "message": "must not be stored", "level": "error"}
        big = {**event, "event_id": "badbad" + "1" * 26, "extra": {"blob": "x" * 300_000}}
        cases = {
            "invalid_json": (store, b'{"event_id": "badbad', auth),
            "unknown_key": (
                store,
                orjson.dumps({**event, "event_id": "badbad" + "2" * 26}),
                {"X-Sentry-Auth": "Sentry sentry_version=7, sentry_key=" + "9" * 32},
            ),
            "wrong_project": (
                f"{self.gateway.url}/api/2/store/",
                orjson.dumps({**event, "event_id": "badbad" + "3" * 26}),
                auth,
            ),
            "oversized_body": (store, orjson.dumps(big), auth),
            "no_auth": (store, orjson.dumps({**event, "event_id": "badbad" + "4" * 26}), {}),
        }
        out = {}
        for name, (url, body, headers) in cases.items():
            status, _ = http(url, body, {"Content-Type": "application/json", **headers})
            out[name] = status
            self.ledger.statuses[f"bad:{status}"] += 1
        return out

    # -- run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        threads = self.load_threads()
        t0 = time.monotonic()
        for th in threads:
            th.start()
        phases = sorted(cfg.fault_times().items(), key=lambda kv: kv[1])
        actions = {
            "kill_decoder": lambda: self.kill_child("decoder"),
            "kill_agent": lambda: self.kill_child("agent"),
            "kill_sink": lambda: self.kill_child("sink"),
            "broker_restart": self.restart_broker,
            "clickhouse_unavailable": self.clickhouse_unavailable,
            "gateway_rate_limit": self.gateway_rate_limit,
            "gateway_bad_requests": self.gateway_bad_requests,
        }
        for name, at in phases:
            delay = t0 + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            began = time.monotonic() - t0
            self.log(f"[{began:6.1f}s] {name}")
            try:
                result = actions[name]()
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            self.timeline.append({"phase": name, "at_s": round(began, 1), **result})
            self.log(f"          {orjson.dumps(result).decode()}")
        for th in threads:
            th.join(cfg.duration + 300)
        load_s = time.monotonic() - t0
        self.log(f"[{load_s:6.1f}s] load done; draining")
        drained = self.drain()
        self.log(f"[{time.monotonic() - t0:6.1f}s] drained={drained}; reconciling")
        self.rss.sample()
        return self.reconcile(load_s, drained)

    def expected_ids(self) -> set[str]:
        return {event_id for kind, event_id in self.ledger.acked if kind != "malformed"}

    def drain(self) -> bool:
        """Wait until every acknowledged event is stored and the counts stop moving."""
        want = len(self.expected_ids())
        deadline = time.monotonic() + self.cfg.drain_timeout
        last, stable_since = None, time.monotonic()
        while time.monotonic() < deadline:
            try:
                stored = self.sql.rows("SELECT uniqExact(event_id) AS n FROM errorstream.events")[
                    0
                ]["n"]
                minutes = self.sql.rows(
                    "SELECT sum(events) AS n FROM errorstream.event_minutes FINAL"
                )[0]["n"]
            except (OSError, RuntimeError):
                time.sleep(1)
                continue
            now = (int(stored), int(minutes))
            if now != last:
                last, stable_since = now, time.monotonic()
            if now[0] >= want and now[1] >= want and time.monotonic() - stable_since > 5:
                return True
            time.sleep(1)
        return False

    # -- reconcile ---------------------------------------------------------------------------
    def reconcile(self, load_s: float, drained: bool) -> dict[str, Any]:
        checks: list[dict[str, Any]] = []

        def check(name: str, ok: bool, **detail: Any) -> None:
            checks.append({"check": name, "ok": bool(ok), **detail})

        ledger = self.ledger
        acked_kinds = collections.Counter(kind for kind, _ in ledger.acked)
        expected = self.expected_ids()
        refused_ids = {e for _, e, _ in ledger.refused if e}
        dup_acked = sum(1 for kind, e in ledger.acked if kind != "malformed") - len(expected)
        malformed_kafka = acked_kinds["malformed"]

        stored_rows = self.sql.rows(
            "SELECT event_id, groupUniqArray(fingerprint) AS fps, count() AS n "
            "FROM errorstream.events GROUP BY event_id"
        )
        stored = {r["event_id"]: r["fps"] for r in stored_rows}
        collapsed_rows = sum(r["n"] - 1 for r in stored_rows)
        minutes = {
            r["fingerprint"]: int(r["events"])
            for r in self.sql.rows(
                "SELECT fingerprint, sum(events) AS events FROM errorstream.event_minutes FINAL "
                "GROUP BY fingerprint"
            )
        }
        missing = sorted(expected - stored.keys())
        extra = sorted(stored.keys() - expected)
        unacked_stored = [e for e in extra if e in refused_ids]
        unknown = [e for e in extra if e not in refused_ids]
        check("drained", drained, detail="every acknowledged event stored, counts stable")
        check(
            "accepted_events_stored",
            not missing,
            accepted_unique=len(expected),
            stored_unique=len(stored),
            missing=len(missing),
            missing_examples=missing[:5],
        )
        check(
            "no_unknown_events_stored",
            not unknown,
            unknown=len(unknown),
            examples=unknown[:5],
            unacknowledged_but_stored=len(unacked_stored),
        )
        split = [e for e, fps in stored.items() if len(fps) != 1]
        check("one_fingerprint_per_event", not split, events_with_several=len(split))

        # per issue: bugs → fingerprints, and the aggregate counts
        fp_of_bug: dict[tuple[int, int], set[str]] = collections.defaultdict(set)
        want_per_fp: collections.Counter = collections.Counter()
        for event_id, fps in stored.items():
            bug = ledger.bug_of.get(event_id)
            if bug is not None:
                fp_of_bug[bug].update(fps)
            for fp in fps:
                want_per_fp[fp] += 1
        sent_per_bug = collections.Counter(
            ledger.bug_of[e] for e in expected | set(unacked_stored) if e in ledger.bug_of
        )
        multi = {f"{s}:{b}": sorted(f) for (s, b), f in fp_of_bug.items() if len(f) != 1}
        check("one_issue_per_bug", not multi, bugs=len(fp_of_bug), split_bugs=list(multi)[:5])
        want_from_sent: collections.Counter = collections.Counter()
        for bug, n in sent_per_bug.items():
            for fp in fp_of_bug.get(bug, ()):
                want_from_sent[fp] += n
        diff = {
            fp: {"clickhouse": minutes.get(fp, 0), "sent": want_from_sent.get(fp, 0)}
            for fp in set(minutes) | set(want_from_sent)
            if minutes.get(fp, 0) != want_from_sent.get(fp, 0)
        }
        check(
            "issue_counts_exact",
            not diff and minutes and sum(minutes.values()) == len(expected) + len(unacked_stored),
            issues=len(minutes),
            clickhouse_total=sum(minutes.values()),
            sent_total=sum(want_from_sent.values()),
            differing=dict(list(diff.items())[:5]),
        )

        # dead letters: loadgen's malformed slice, one per source message
        dlq = [
            orjson.loads(v)
            for _, v in asyncio.run(
                topic_records(self.broker.bootstrap, self.env["ERRORSTREAM_TOPIC_DLQ"])
            )
        ]
        sources = {}
        reasons: collections.Counter = collections.Counter()
        for d in dlq:
            src = d.get("source") or {}
            key = (src.get("topic"), src.get("partition"), src.get("offset"))
            if key not in sources:
                sources[key] = d.get("reason", "?")
                reasons[d.get("reason", "?")] += 1
        ingest_dead = sum(1 for k in sources if k[0] == self.env["ERRORSTREAM_TOPIC_EVENTS"])
        check(
            "malformed_dead_lettered",
            ingest_dead == malformed_kafka and len(sources) == ingest_dead,
            malformed_sent=malformed_kafka,
            dead_letters=len(dlq),
            distinct_sources=len(sources),
            by_reason=dict(reasons),
        )
        accepted_messages = len(ledger.acked)
        check(
            "every_accepted_message_accounted",
            accepted_messages == len(expected) - len(missing) + dup_acked + ingest_dead
            and not missing,
            accepted_messages=accepted_messages,
            stored_events=len(expected) - len(missing),
            duplicates_collapsed=dup_acked,
            dead_letters=ingest_dead,
            duplicate_rows_before_merge=collapsed_rows,
        )

        # gateway refusals
        statuses = dict(ledger.statuses)
        burst_429 = statuses.get("burst:429", 0)
        bad = next((p for p in self.timeline if p["phase"] == "gateway_bad_requests"), {})
        bad_codes = {k: v for k, v in bad.items() if k not in ("phase", "at_s")}
        check("gateway_rate_limit_hit", burst_429 > 0, status=statuses)
        bad_stored = [e for e in stored if e.startswith("badbad")]
        check(
            "gateway_bad_requests_refused",
            bool(bad_codes)
            and all(v in (400, 401, 403, 413) for v in bad_codes.values())
            and not bad_stored,
            status=bad_codes,
            stored=len(bad_stored),
        )

        # alerts
        alerts = [
            orjson.loads(v)
            for _, v in asyncio.run(
                topic_records(self.broker.bootstrap, self.env["ERRORSTREAM_TOPIC_ALERTS"])
            )
        ]
        ids_by_key: dict[tuple, set[str]] = collections.defaultdict(set)
        for a in alerts:
            ids_by_key[(a["kind"], a.get("service", ""), a.get("fingerprint", ""))].add(
                a["alert_id"]
            )
        redelivered = len(alerts) - len({a["alert_id"] for a in alerts})
        stored_alerts = self.sql.rows(
            "SELECT kind, fingerprint, count() AS n FROM errorstream.alerts FINAL GROUP BY kind, fingerprint"
        )
        new_issue_rows = {
            r["fingerprint"]: r["n"] for r in stored_alerts if r["kind"] == "new_issue"
        }
        new_issue_ids = {k[2]: v for k, v in ids_by_key.items() if k[0] == "new_issue"}
        issue_fps = set(minutes)
        check(
            "new_issue_alert_once_per_issue",
            set(new_issue_ids) == issue_fps
            and all(len(v) == 1 for v in new_issue_ids.values())
            and all(new_issue_rows.get(fp) == 1 for fp in issue_fps),
            issues=len(issue_fps),
            alerted=len(new_issue_ids),
            without_alert=len(issue_fps - set(new_issue_ids)),
            several_ids=sum(len(v) > 1 for v in new_issue_ids.values()),
        )
        kafka_plan = self.plans["kafka"]
        appeared = [(KAFKA_SEED, b["bug"]) for b in kafka_plan.summary()["bugs_appeared"]]
        gw_appeared = [
            (GATEWAY_SEED, b["bug"]) for b in self.plans["gateway"].summary()["bugs_appeared"]
        ]
        floods = [(KAFKA_SEED, f["bug"]) for f in kafka_plan.summary()["floods"]]

        def fired_once(kind: str, bug: tuple[int, int]) -> bool:
            fps = fp_of_bug.get(bug, set())
            return len(fps) == 1 and len(ids_by_key_fp(kind, next(iter(fps)))) == 1

        def ids_by_key_fp(kind: str, fp: str) -> set[str]:
            return set().union(
                *[v for k, v in ids_by_key.items() if k[0] == kind and k[2] == fp] or [set()]
            )

        # a bug that appeared in the last moments may have no event sent yet: nothing to alert
        with_events = {ledger.bug_of[e] for e in expected if e in ledger.bug_of}
        new_bugs = [b for b in appeared + gw_appeared + floods if b in with_events]
        check(
            "new_bug_and_flood_alerts",
            all(b in with_events for b in floods)
            and all(fired_once("new_issue", b) for b in new_bugs),
            new_bugs=len(appeared) + len(gw_appeared),
            new_bugs_without_events=len(appeared) + len(gw_appeared) + len(floods) - len(new_bugs),
            floods=len(floods),
            fired_once=sum(fired_once("new_issue", b) for b in new_bugs),
        )
        spike_results = []
        for spike, picked in zip(kafka_plan.profile.spikes, kafka_plan.spike_bugs, strict=True):
            at = {"at_s": round(spike.at, 1), "length_s": spike.length}
            if picked is None:
                spike_results.append({"bug": None, "fired": 0, **at})
                continue
            bug = (KAFKA_SEED, picked.id)
            fps = fp_of_bug.get(bug, set())
            fp = next(iter(fps)) if len(fps) == 1 else ""
            spike_ids = ids_by_key_fp("spike", fp) | {
                a["alert_id"]
                for a in alerts
                if a["kind"] == "incident" and fp in a.get("fingerprints", [])
            }
            service = picked.service
            # a spike of an issue whose service has an incident open joins it without an alert
            # (docs/stream-agents.md): the report names them so a miss can be told apart
            incidents = sorted(
                a["numbers"].get("window_start", 0) - int(kafka_plan.start)
                for a in alerts
                if a["kind"] == "incident" and a.get("service") == service
            )
            spike_results.append(
                {
                    "bug": bug[1],
                    "fingerprint": fp,
                    "fired": len(spike_ids),
                    "service": service,
                    "incidents_in_service_at_s": incidents,
                    **at,
                }
            )
        check(
            "spike_alert_once",
            bool(spike_results) and all(s["fired"] == 1 for s in spike_results),
            spikes=spike_results,
        )
        # the cooldown holds per (rule, key); service-level alerts (no fingerprint) are
        # decided per partition (docs/stream-agents.md, "Keying"): one per partition at most
        partitions = int(self.env["ERRORSTREAM_PARTITIONS"])
        dups = {
            f"{k[0]}:{k[1]}:{k[2][:12]}": len(v)
            for k, v in ids_by_key.items()
            if len(v) > (1 if k[2] else partitions)
        }
        check(
            "no_duplicate_alerts",
            not dups,
            alerts_on_topic=len(alerts),
            distinct_alert_ids=len({a["alert_id"] for a in alerts}),
            same_alert_id_redeliveries=redelivered,
            by_kind=dict(collections.Counter(a["kind"] for a in alerts)),
            several_ids=dups,
            service_level_keys_with_one_id_per_partition=sum(
                1 for k, v in ids_by_key.items() if not k[2] and len(v) > 1
            ),
        )

        # faults did what they say
        for role in ROLES:
            phase = next((p for p in self.timeline if p["phase"] == f"kill_{role}"), {})
            check(
                f"kill_{role}_restarted",
                bool(phase.get("new_pid"))
                and phase.get("ready_again")
                and self.restarts(role) >= 1,
                restarts=self.restarts(role),
                recovered_s=phase.get("recovered_s"),
            )
        broker = next((p for p in self.timeline if p["phase"] == "broker_restart"), {})
        check(
            "broker_restarted",
            bool(broker.get("worker_ready_again")),
            **{k: v for k, v in broker.items() if k != "phase"},
        )
        ch = next((p for p in self.timeline if p["phase"] == "clickhouse_unavailable"), {})
        check(
            "clickhouse_outage_retried",
            ch.get("sink_retries_during", 0) > 0 and ch.get("ready_again"),
            **{k: v for k, v in ch.items() if k != "phase"},
        )
        check("loadgen_ran", not self.load_errors, errors=self.load_errors)

        rss = {name: round(v / 2**20, 1) for name, v in sorted(self.rss.peak.items())}
        check(
            "peak_rss_bounded",
            bool(rss) and all(v < self.cfg.rss_limit_mb for v in rss.values()),
            limit_mb=self.cfg.rss_limit_mb,
        )
        metrics = scrape(self.worker.api, WORKER_METRICS)
        metrics.update(scrape(self.gateway.url, GATEWAY_METRICS))
        return {
            "bench": "soak",
            "ok": all(c["ok"] for c in checks),
            "config": asdict(self.cfg),
            "load_s": round(load_s, 1),
            "sent": {
                "acknowledged_by_kind": dict(acked_kinds),
                "refused_or_failed": len(ledger.refused),
                "gateway_status": statuses,
                "kafka_plan": kafka_plan.summary() | {"bugs_appeared": len(appeared)},
            },
            "timeline": self.timeline,
            "checks": checks,
            "peak_rss_mb": rss,
            "processes_seen": {k: len(v) for k, v in self.rss.seen.items()},
            "metrics": metrics,
            "alerts_other_than_new_issue": [
                {k: a.get(k) for k in ("kind", "service", "fingerprint", "alert_id", "event_time")}
                for a in alerts
                if a["kind"] != "new_issue"
            ][:300],
        }


def run_soak(root: Path, config: SoakConfig, log=print) -> dict[str, Any]:
    soak = Soak(root, config, log)
    try:
        soak.start()
        return soak.run()
    finally:
        soak.stop()


# --- report -------------------------------------------------------------------------------
def markdown(report: dict[str, Any], command: str, uptime: str) -> str:
    cfg = report["config"]
    lines = [
        "# Soak and faults",
        "",
        f"Result: **{'PASS' if report['ok'] else 'FAIL'}** — {sum(c['ok'] for c in report['checks'])}"
        f"/{len(report['checks'])} checks.",
        "",
        f"Command: `{command}`  ",
        f"Load average (`uptime` at the end): `{uptime}`  ",
        f"Machine: {os.cpu_count()} cores, shared with other work while it ran.",
        "",
        f"Load: {cfg['rate']:g} events/s for {cfg['duration']:g} s "
        f"({100 * (1 - cfg['gateway_share']):.0f}% raw Kafka with loadgen's malformed, late and "
        f"duplicate slices, {100 * cfg['gateway_share']:.0f}% through the gateway), one spike "
        f"and one flood; the mechanism of each fault is in docs/delivery-guarantees.md.",
        "",
        "## Faults",
        "",
        "| at (s) | phase | what happened |",
        "|---|---|---|",
    ]
    for p in report["timeline"]:
        detail = ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("phase", "at_s"))
        lines.append(f"| {p['at_s']} | {p['phase']} | {detail} |")
    lines += ["", "## Reconciliation", "", "| check | result | detail |", "|---|---|---|"]
    for c in report["checks"]:
        detail = ", ".join(
            f"{k}={orjson.dumps(v).decode() if isinstance(v, dict | list) else v}"
            for k, v in c.items()
            if k not in ("check", "ok")
        )
        lines.append(f"| {c['check']} | {'ok' if c['ok'] else '**FAILED**'} | {detail} |")
    by_kind = next(c for c in report["checks"] if c["check"] == "no_duplicate_alerts")["by_kind"]
    lines += [
        "",
        f"Alerts on the topic by kind: {orjson.dumps(by_kind).decode()}. Besides the expected",
        "ones (a `new_issue` per issue, the planned spike), the rules also fire where loadgen's",
        "traffic meets them: `critical` for the first fatal event of known issues, and `spike`",
        "for keys whose first event was a *late* one (timestamps 2-30 minutes back), so their",
        "baseline windows before the run are empty, and for services with a flood;",
        "`error_rate` and `incident` where a service's partition share stays over",
        "`error_rate_per_minute` or several of its issues spike in one minute. Each",
        "(kind, service, fingerprint) has one `alert_id` (a service-level key one per",
        "partition), which is what the cooldown promises.",
    ]
    lines += [
        "",
        "## Peak RSS (VmHWM from /proc, every incarnation)",
        "",
        "| process | MB |",
        "|---|---|",
    ]
    for name, mb in report["peak_rss_mb"].items():
        lines.append(f"| {name} | {mb} |")
    lines += [
        "",
        "## Sent",
        "",
        "```json",
        orjson.dumps(report["sent"], option=orjson.OPT_INDENT_2).decode(),
        "```",
    ]
    lines += ["", "## Metrics at the end (`/metrics`)", "", "```"]
    lines += [f"{k} {v:g}" for k, v in sorted(report["metrics"].items())]
    lines += ["```", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=540.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=400.0, help="events/s in all")
    parser.add_argument("--clickhouse-down", type=float, default=60.0, help="seconds")
    parser.add_argument("--out", type=Path, default=Path("SOAK.md"), help="markdown report")
    parser.add_argument("--json", type=Path, default=Path("bench/results/soak.json"))
    parser.add_argument("--keep", action="store_true", help="keep the run's folder")
    args = parser.parse_args()
    config = SoakConfig(
        duration=args.duration, rate=args.rate, clickhouse_down=args.clickhouse_down
    )
    root = Path(tempfile.mkdtemp(prefix="errorstream-soak-"))
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    try:
        report = run_soak(root, config, log)
    except Exception as exc:
        print(f"soak: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    command = "python bench/soak.py " + " ".join(sys.argv[1:])
    report["command"], report["uptime"] = command, uptime
    args.out.write_text(markdown(report, command, uptime))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    else:
        log(f"run folder kept: {root}")
    failed = [c["check"] for c in report["checks"] if not c["ok"]]
    print(orjson.dumps({"bench": "soak", "ok": report["ok"], "failed": failed}).decode())
    # the figures last, one line each: peak RSS of every process against the bound it is held to
    limit = config.rss_limit_mb
    for name, mb in report["peak_rss_mb"].items():
        line = {"bench": "soak", "figure": f"peak_rss_mb[{name}]", "value": mb, "unit": "MB"}
        print(orjson.dumps(line | {"baseline": limit, "ratio": round(mb / limit, 3)}).decode())
    load = {"figure": "load_average_1m", "value": round(os.getloadavg()[0], 2), "unit": "load"}
    print(orjson.dumps({"bench": "soak"} | load | {"baseline": None, "ratio": None}).decode())
    if failed:
        print(f"soak: reconciliation failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
