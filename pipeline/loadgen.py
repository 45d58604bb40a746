"""``errorstream loadgen``: realistic error traffic at a chosen rate, for soaks and benchmarks.

The traffic (``LoadPlan``, pure and deterministic for a seed):

- many services, each with its own bugs; which bug an event comes from follows a long-tailed
  (Zipf-like) law, so a few issues carry most events, as in real error streams;
- every bug has its own exception type, frames and message; the message's variable parts
  (ids, addresses, amounts, durations) change from event to event, so each bug is one issue;
- new bugs appear during the run (``new_bug_every`` seconds), each a new issue;
- planned **spikes** (one existing bug's share multiplied for a while) and **floods** (a new
  bug at a high rate for a while);
- **late** events (timestamps minutes in the past), **duplicate** deliveries (an event sent
  twice with the same ``event_id``) and a slice of **malformed** payloads (not JSON, or JSON
  that breaks the event schema), each a fraction of the rate.

Three ways out (``--via``): raw Kafka (schema v1 JSON to the ingest topic, aiokafka, acks=all),
the gateway (Sentry ``store`` requests with a DSN key), or the producer SDK (real exceptions
raised from code compiled per bug, captured by ``errorstream_sdk``; malformed payloads cannot
go this way and are skipped, and the SDK's own sampling, rate limits and dedup are off).

The run ends with one JSON summary on stdout: what was sent, by kind, plus the bugs, spikes
and floods with their times, so a soak can reconcile what the pipeline counted against it.

    errorstream loadgen --rate 500 --duration 60 [--via kafka|gateway|sdk] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

EXCEPTIONS = (
    ("ConnectionError", "Connection to {ip}:{port} timed out after {n}s"),
    ("TimeoutError", "request {uuid} took {ms}ms (limit 5000ms)"),
    ("KeyError", "'{word}_{n}'"),
    ("ValueError", "invalid literal for int() with base 10: '{word}{n}'"),
    ("PaymentDeclined", "card **** {n4} declined for amount {amount}"),
    ("PermissionError", "user {n} may not access /orders/{n}"),
    ("RuntimeError", "worker {hex} lost its lease after {n} retries"),
    ("IntegrityError", "duplicate key value violates unique constraint order_{n}_pkey"),
)
WORDS = ("order", "cart", "session", "invoice", "user", "token", "shipment", "refund")
LEVELS = (("error", 0.85), ("fatal", 0.05), ("warning", 0.10))


@dataclass(frozen=True)
class Spike:
    """The bug of popularity rank ``rank`` when the spike starts gets ``factor`` times its
    share from ``at`` for ``length`` seconds (seconds from the start of the run). It stays the
    same bug to the end, though new bugs that appear meanwhile move it down the ranks."""

    at: float
    length: float
    factor: float
    rank: int = 0


@dataclass(frozen=True)
class Flood:
    """A new bug at ``rate`` events/s from ``at`` for ``length`` seconds, on top of the rate."""

    at: float
    length: float
    rate: float


@dataclass(frozen=True)
class Profile:
    rate: float = 500.0  # events/s, duplicates and malformed included
    duration: float = 60.0
    services: int = 12
    bugs: int = 300  # at the start
    zipf: float = 1.1
    new_bug_every: float = 10.0  # seconds; 0 = none
    late_fraction: float = 0.01
    late_seconds: tuple[float, float] = (120.0, 1800.0)
    duplicate_fraction: float = 0.01
    malformed_fraction: float = 0.005
    spikes: tuple[Spike, ...] = ()
    floods: tuple[Flood, ...] = ()
    seed: int = 1

    def __post_init__(self) -> None:
        for name in ("rate", "duration"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.services < 1 or self.bugs < 1:
            raise ValueError("services and bugs must be at least 1")
        for name in ("late_fraction", "duplicate_fraction", "malformed_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1)")
        if self.late_fraction + self.duplicate_fraction + self.malformed_fraction >= 1:
            raise ValueError("late + duplicate + malformed fractions must stay under 1")
        for s in self.spikes:  # a spike that could not happen is refused, not sent as nothing
            if not 0 <= s.rank < self.bugs:
                raise ValueError(
                    f"spike rank {s.rank} is not one of the {self.bugs} bugs (0-based)"
                )
            if s.length <= 0 or s.factor < 1:
                raise ValueError(f"a spike needs a positive length and a factor >= 1, got {s}")


@dataclass(frozen=True)
class Bug:
    id: int
    service: str
    exc_type: str
    template: str
    module: str
    functions: tuple[str, ...]
    appeared_at: float = 0.0  # seconds from the start
    level: str = "error"


@dataclass(frozen=True)
class Item:
    """One thing to send: ``kind`` is event | late | duplicate | malformed."""

    kind: str
    bug: Bug | None
    event: dict[str, Any] | None  # None for malformed
    raw: bytes | None = None  # malformed bytes


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    def add(self, kind: str, n: int = 1) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + n


def parse_spike(text: str) -> Spike:
    """``AT:LENGTH:FACTOR[:RANK]`` (seconds, seconds, multiplier, popularity rank)."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"--spike expects AT:LENGTH:FACTOR[:RANK], got {text!r}")
    at, length, factor = (float(p) for p in parts[:3])
    return Spike(at, length, factor, int(parts[3]) if len(parts) == 4 else 0)


def parse_flood(text: str) -> Flood:
    """``AT:LENGTH:RATE``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"--flood expects AT:LENGTH:RATE, got {text!r}")
    return Flood(*(float(p) for p in parts))


class LoadPlan:
    """What to send in each slice of the run; pure: the same profile gives the same items."""

    def __init__(self, profile: Profile, start: float | None = None) -> None:
        self.profile = p = profile
        self.rng = random.Random(p.seed)
        self.start = time.time() if start is None else start
        self.services = [f"svc-{i:02d}" for i in range(p.services)]
        self._next_bug_id = 0
        self.bugs: list[Bug] = [self._new_bug(0.0) for _ in range(p.bugs)]
        self._weights_for = len(self.bugs)
        self._cumulative = self._zipf_cumulative(len(self.bugs))
        self.flood_bugs = [self._new_bug(f.at) for f in p.floods]
        self.spike_bugs: list[Bug | None] = [None] * len(p.spikes)  # chosen at each's start
        self.next_new_bug = p.new_bug_every or float("inf")
        self.recent: list[dict[str, Any]] = []  # events a duplicate may repeat
        self.seq = 0
        self._carry = 0.0
        self._flood_carry = [0.0] * len(p.floods)

    # -- bugs -----------------------------------------------------------------------------
    def _new_bug(self, at: float) -> Bug:
        rng = self.rng
        n = self._next_bug_id
        self._next_bug_id += 1
        exc_type, template = EXCEPTIONS[rng.randrange(len(EXCEPTIONS))]
        area = WORDS[rng.randrange(len(WORDS))]
        depth = rng.randint(2, 4)
        functions = tuple(
            f"{area}_{WORDS[rng.randrange(len(WORDS))]}_{n}_{i}" for i in range(depth)
        )
        r = rng.random()
        level = "error"
        for name, share in LEVELS:
            if r < share:
                level = name
                break
            r -= share
        return Bug(
            id=n,
            service=self.services[rng.randrange(len(self.services))],
            exc_type=exc_type,
            template=template,
            module=f"app.{area}.mod{n}",
            functions=functions,
            appeared_at=at,
            level=level,
        )

    def _zipf_cumulative(self, n: int) -> list[float]:
        total, out = 0.0, []
        for rank in range(1, n + 1):
            total += 1.0 / rank**self.profile.zipf
            out.append(total)
        return out

    def _spikes_at(self, elapsed: float) -> list[tuple[float, Bug]]:
        """The spikes on at ``elapsed``: each one's bug (fixed at its first slice) and the
        probability that an event is its extra share, (factor - 1) × its share at its current
        rank."""
        out = []
        for i, spike in enumerate(self.profile.spikes):
            if not spike.at <= elapsed < spike.at + spike.length:
                continue
            if self.spike_bugs[i] is None:  # the rank is one of the start's bugs (Profile)
                self.spike_bugs[i] = self.bugs[spike.rank]
            bug = self.spike_bugs[i]
            rank = self.bugs.index(bug)
            share = (1.0 / (rank + 1) ** self.profile.zipf) / self._cumulative[-1]
            extra = share * (spike.factor - 1)
            out.append((extra / (1 + extra), bug))
        return out

    def _pick(self, spiking: list[tuple[float, Bug]]) -> Bug:
        for probability, bug in spiking:
            if self.rng.random() < probability:
                return bug
        x = self.rng.random() * self._cumulative[-1]
        return self.bugs[bisect.bisect_left(self._cumulative, x)]

    # -- events ---------------------------------------------------------------------------
    def _message(self, bug: Bug) -> str:
        rng = self.rng
        return bug.template.format(
            ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            port=rng.choice((5432, 6379, 9092, 443)),
            n=rng.randrange(1, 100_000),
            n4=rng.randrange(1000, 10_000),
            ms=rng.randrange(5001, 60_000),
            uuid=f"{rng.getrandbits(128):032x}",
            hex=f"{rng.getrandbits(48):012x}",
            word=WORDS[rng.randrange(len(WORDS))],
            amount=f"{rng.randrange(100, 100_000) / 100:.2f}",
        )

    def event(self, bug: Bug, now: float) -> dict[str, Any]:
        """One schema-v1 event of ``bug`` at ``now`` (epoch seconds)."""
        rng = self.rng
        self.seq += 1
        frames = [
            {
                "module": bug.module,
                "function": fn,
                "filename": bug.module.replace(".", "/") + ".py",
                "lineno": 10 + 7 * i + rng.randrange(3),  # line numbers move, the bug does not
                "in_app": True,
            }
            for i, fn in enumerate(bug.functions)
        ]
        return {
            "event_id": f"{self.profile.seed:08x}{self.seq:024x}",
            "timestamp": round(now, 3),
            "service": bug.service,
            "level": bug.level,
            "platform": "python",
            "release": f"{bug.service}@1.{int((now - self.start) // 600)}.0",
            "environment": "production",
            "user": {"id": f"u{rng.randrange(5000)}"},
            "tags": {"region": rng.choice(("eu-west-1", "us-east-1", "ap-south-1"))},
            "exception": {
                "values": [
                    {
                        "type": bug.exc_type,
                        "value": self._message(bug),
                        "module": bug.module,
                        "stacktrace": {"frames": frames},
                    }
                ]
            },
        }

    def _malformed(self) -> bytes:
        choice = self.rng.randrange(3)
        if choice == 0:
            return b'{"event_id": "truncated", "service": "svc-00", "exception": {'
        if choice == 1:
            return orjson.dumps({"event_id": "no-service", "message": "missing service"})
        return b"\xff\xfe not utf-8 and not json"

    def items(self, t0: float, t1: float) -> list[Item]:
        """Everything due in [t0, t1) (seconds from the start)."""
        p = self.profile
        out: list[Item] = []
        while self.next_new_bug <= t1:  # a new bug appears: it joins the long tail's head
            bug = self._new_bug(self.next_new_bug)
            self.bugs.insert(min(len(self.bugs), 5), bug)
            self._cumulative = self._zipf_cumulative(len(self.bugs))
            self.next_new_bug += p.new_bug_every
        spiking = self._spikes_at(t0)
        due = p.rate * (t1 - t0) + self._carry
        n = int(due)
        self._carry = due - n
        for _ in range(n):
            r = self.rng.random()
            now = self.start + t0 + self.rng.random() * (t1 - t0)
            if r < p.malformed_fraction:
                out.append(Item("malformed", None, None, self._malformed()))
            elif r < p.malformed_fraction + p.duplicate_fraction and self.recent:
                again = self.recent[self.rng.randrange(len(self.recent))]
                out.append(Item("duplicate", None, again))
            elif r < p.malformed_fraction + p.duplicate_fraction + p.late_fraction:
                bug = self._pick(spiking)
                late = self.rng.uniform(*p.late_seconds)
                out.append(Item("late", bug, self.event(bug, now - late)))
            else:
                bug = self._pick(spiking)
                event = self.event(bug, now)
                out.append(Item("event", bug, event))
                if len(self.recent) < 1000:
                    self.recent.append(event)
                else:
                    self.recent[self.rng.randrange(1000)] = event
        for i, flood in enumerate(p.floods):
            lo, hi = max(t0, flood.at), min(t1, flood.at + flood.length)
            if hi <= lo:
                continue
            due = flood.rate * (hi - lo) + self._flood_carry[i]
            k = int(due)
            self._flood_carry[i] = due - k
            bug = self.flood_bugs[i]
            for _ in range(k):
                now = self.start + lo + self.rng.random() * (hi - lo)
                out.append(Item("event", bug, self.event(bug, now)))
        return out

    def summary(self) -> dict[str, Any]:
        p = self.profile
        return {
            "bugs_at_start": p.bugs,
            "bugs_appeared": [
                {"bug": b.id, "service": b.service, "at": b.appeared_at}
                for b in sorted(self.bugs, key=lambda b: b.appeared_at)
                if b.appeared_at > 0
            ],
            "spikes": [
                vars(s) | {"bug": b.id if b else None}
                for s, b in zip(p.spikes, self.spike_bugs, strict=True)
            ],
            "floods": [
                {**vars(f), "bug": b.id, "service": b.service}
                for f, b in zip(p.floods, self.flood_bugs, strict=True)
            ],
        }


def to_sentry(event: dict[str, Any]) -> dict[str, Any]:
    """The same event as a Sentry SDK would send it (``store`` body): the v1 field names are
    Sentry's already; ``service`` becomes the ``server_name``-independent project mapping of
    the gateway, so it travels as a tag too."""
    out = {k: v for k, v in event.items() if k != "service"}
    out["tags"] = {**event.get("tags", {}), "service": event["service"]}
    return out


# --- senders ------------------------------------------------------------------------------
class KafkaSender:
    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.topic = settings.topic_events
        self.pending: list[asyncio.Future] = []

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        from pipeline.kafka_clients import client_config

        self.producer = AIOKafkaProducer(
            **client_config(self.settings, "loadgen"), acks="all", linger_ms=5
        )
        await self.producer.start()

    async def send(self, item: Item, tally: Tally) -> None:
        value = item.raw if item.event is None else orjson.dumps(item.event)
        self.pending.append(await self.producer.send(self.topic, value))
        tally.add(item.kind)
        if len(self.pending) >= 5000:
            await self.settle(tally)

    async def settle(self, tally: Tally) -> None:
        results = await asyncio.gather(*self.pending, return_exceptions=True)
        tally.failed += sum(isinstance(r, Exception) for r in results)
        self.pending.clear()

    async def stop(self, tally: Tally) -> None:
        await self.settle(tally)
        await self.producer.stop()


class GatewaySender:
    def __init__(self, url: str, project: str, key: str, concurrency: int = 32) -> None:
        self.endpoint = f"{url.rstrip('/')}/api/{project}/store/"
        self.headers = {
            "Content-Type": "application/json",
            "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}, sentry_client=loadgen",
        }
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task] = set()
        self.status: dict[int, int] = {}

    async def start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession()

    async def _post(self, body: bytes, kind: str, tally: Tally) -> None:
        try:
            async with self.session.post(self.endpoint, data=body, headers=self.headers) as r:
                await r.read()
                self.status[r.status] = self.status.get(r.status, 0) + 1
                if r.status == 200 or kind == "malformed":
                    tally.add(kind)
                else:
                    tally.failed += 1
        except Exception:
            tally.failed += 1
        finally:
            self.slots.release()

    async def send(self, item: Item, tally: Tally) -> None:
        body = item.raw if item.event is None else orjson.dumps(to_sentry(item.event))
        await self.slots.acquire()
        task = asyncio.ensure_future(self._post(body, item.kind, tally))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self, tally: Tally) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks)
        await self.session.close()


class SdkSender:
    """Real exceptions through the producer SDK: one client per service, one compiled
    function chain per bug, so the frames are the SDK's own capture of real code."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.clients: dict[str, Any] = {}
        self.raisers: dict[int, Any] = {}

    async def start(self) -> None:
        return None

    def _client(self, service: str) -> Any:
        client = self.clients.get(service)
        if client is None:
            from errorstream_sdk.client import Client
            from errorstream_sdk.config import Settings as SdkSettings

            sdk = SdkSettings(
                service=service,
                brokers=self.settings.kafka_bootstrap,
                topic=self.settings.topic_events,
                environment="production",
                rate_limit_per_second=1e9,
                rate_limit_burst=10**9,
                dedupe=False,
                sample_rates={
                    level: 1.0 for level in ("debug", "info", "warning", "error", "fatal")
                },
                install_hooks=False,
                queue_size=100_000,
            )
            client = self.clients[service] = Client(sdk).start()
        return client

    def _raiser(self, bug: Bug) -> Any:
        fn = self.raisers.get(bug.id)
        if fn is None:
            names = bug.functions
            lines = [f"class {bug.exc_type}(Exception):\n    pass\n"]
            for i, name in enumerate(names):
                body = (
                    f"{names[i + 1]}(message)"
                    if i + 1 < len(names)
                    else (f"raise {bug.exc_type}(message)")
                )
                lines.append(f"def {name}(message):\n    {body}\n")
            namespace: dict[str, Any] = {"__name__": bug.module}
            code = compile("\n".join(lines), bug.module.replace(".", "/") + ".py", "exec")
            exec(code, namespace)  # the bug's own code: its frames are what the SDK captures
            fn = self.raisers[bug.id] = namespace[names[0]]
        return fn

    async def send(self, item: Item, tally: Tally) -> None:
        if item.kind in ("malformed", "duplicate") or item.bug is None or item.event is None:
            tally.add(f"{item.kind}_skipped")  # the SDK builds well-formed, unique events
            return
        event = item.event
        message = event["exception"]["values"][0]["value"]
        try:
            self._raiser(item.bug)(message)
        except Exception as exc:
            captured = self._client(item.bug.service).capture_exception(
                exc, level=event["level"], tags=event["tags"], user=event["user"]
            )
            if captured is None:
                tally.failed += 1
            else:
                tally.add(item.kind)

    async def stop(self, tally: Tally) -> None:
        for client in self.clients.values():
            if not client.flush(10.0):
                tally.failed += 1
            client.close()


async def run(plan: LoadPlan, sender: Any, tick: float = 0.05, progress: bool = True) -> Tally:
    tally = Tally()
    await sender.start()
    started = time.monotonic()
    elapsed_done = 0.0
    duration = plan.profile.duration
    try:
        while elapsed_done < duration:
            target = min(duration, time.monotonic() - started + tick)
            for item in plan.items(elapsed_done, target):
                await sender.send(item, tally)
            elapsed_done = target
            ahead = elapsed_done - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
            if progress and int(elapsed_done) != int(elapsed_done - tick):
                total = sum(tally.sent.values())
                print(f"\rloadgen {elapsed_done:6.1f}s  {total:,} sent", end="", file=sys.stderr)
    finally:
        await sender.stop(tally)
        if progress:
            print(file=sys.stderr)
    return tally


# --- CLI ------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    p = subparsers.add_parser("loadgen", help="send realistic error traffic at a chosen rate")
    p.add_argument("--rate", type=float, default=500.0, help="events/s (default 500)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("--via", choices=("kafka", "gateway", "sdk"), default="kafka")
    p.add_argument("--services", type=int, default=12)
    p.add_argument("--bugs", type=int, default=300, help="distinct bugs at the start")
    p.add_argument("--new-bug-every", type=float, default=10.0, help="seconds; 0 = none")
    p.add_argument("--late", type=float, default=0.01, help="fraction of late events")
    p.add_argument("--duplicates", type=float, default=0.01, help="fraction re-sent")
    p.add_argument("--malformed", type=float, default=0.005, help="fraction malformed")
    p.add_argument("--spike", action="append", default=[], help="AT:LENGTH:FACTOR[:RANK]")
    p.add_argument("--flood", action="append", default=[], help="AT:LENGTH:RATE")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gateway-url", default="http://127.0.0.1:8080")
    p.add_argument("--project", default="1", help="gateway project id")
    p.add_argument("--key", default="", help="gateway DSN public key")
    p.set_defaults(func=cmd_loadgen)


def cmd_loadgen(args: argparse.Namespace) -> int:
    from pipeline.settings import ConfigError, load_settings

    try:
        profile = Profile(
            rate=args.rate,
            duration=args.duration,
            services=args.services,
            bugs=args.bugs,
            new_bug_every=args.new_bug_every,
            late_fraction=args.late,
            duplicate_fraction=args.duplicates,
            malformed_fraction=args.malformed,
            spikes=tuple(parse_spike(s) for s in args.spike),
            floods=tuple(parse_flood(f) for f in args.flood),
            seed=args.seed,
        )
        settings = load_settings(config_file=getattr(args, "config", None))
    except (ValueError, ConfigError) as exc:
        print(f"errorstream loadgen: {exc}", file=sys.stderr)
        return 2
    if args.via == "gateway" and not args.key:
        print("errorstream loadgen: --via gateway needs --key (a DSN public key)", file=sys.stderr)
        return 2
    plan = LoadPlan(profile)
    sender: Any
    if args.via == "kafka":
        sender = KafkaSender(settings)
    elif args.via == "gateway":
        sender = GatewaySender(args.gateway_url, args.project, args.key)
    else:
        sender = SdkSender(settings)
    try:
        tally = asyncio.run(run(plan, sender))
    except (OSError, TimeoutError) as exc:
        print(f"errorstream loadgen: cannot send ({exc})", file=sys.stderr)
        return 2
    out = {"via": args.via, "sent": tally.sent, "failed": tally.failed, **plan.summary()}
    if isinstance(sender, GatewaySender):
        out["status"] = {str(k): v for k, v in sorted(sender.status.items())}
    print(orjson.dumps(out).decode())
    return 0 if tally.failed == 0 else 1
