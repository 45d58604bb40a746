"""Benchmark the decoder's per-message cost on one core: schema v1 events, and Sentry payloads.

``decode_batch`` (``pipeline/decoder.py``) on batches of the grouping benchmark's event mix
(``bench/bench_grouping.py``: Python / JavaScript / Java / Go exceptions and log messages),
against ``v1_only_batch`` below: the same loop with ``decode_event`` (schema v1 only, no
format detection), which is what the decoder ran before Sentry payloads were accepted on the
ingest topic. Both run in the same process, taking turns batch by batch, each batch's least
CPU time of ``--repeat`` (``best_per_event_us``); grouping caches are warmed by a first pass
so both see the same steady state. Then the same events as Sentry payloads (no ``service``:
detected by shape, converted by ``pipeline.sentry``, scrubbed) for the cost of that path.

    python bench/bench_decode.py [--events 10000] [--repeat 10] [--batch 200]

Prints one line per figure, then one JSON line per figure: ``v1_decode_us_per_event`` and
``sentry_decode_us_per_event`` with the v1-only loop as their baseline (``ratio`` - 1 is the
overhead of format detection for v1 events), and ``v1_only_decode_us_per_event``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_grouping import build_events  # noqa: E402

from pipeline.decoder import decode_batch  # noqa: E402
from pipeline.gateway.scrub import GatewayScrubber  # noqa: E402
from pipeline.grouping import GroupingConfig  # noqa: E402
from pipeline.stages.decode import DecodedEvent, dead_letter, decode_event  # noqa: E402
from pipeline.stages.envelope import group_by_partition  # noqa: E402
from pipeline.stages.fingerprint import enrich  # noqa: E402
from pipeline.stages.formats import IngestFormats  # noqa: E402
from pipeline.stages.records import by_fingerprint_line  # noqa: E402


def v1_only_batch(records, grouping, partitions, now):  # type: ignore[no-untyped-def]
    """The decode loop with schema v1 only (no format detection, no counters)."""
    keyed, dead = [], []
    for topic, partition, offset, raw, _headers in records:
        result = decode_event(raw)
        if not isinstance(result, DecodedEvent):
            source = {"topic": topic, "partition": partition, "offset": offset}
            dead.append(dead_letter(raw, result, source))
            continue
        record = enrich(result, grouping, received_at=now)
        meta = record["_meta"]
        key = (meta["secondary_fingerprints"] or [meta["fingerprint"]])[0]
        keyed.append((key.encode(), by_fingerprint_line(record, meta)))
    return group_by_partition(keyed, partitions), dead


def batches(payloads: list[bytes], size: int) -> list[list[tuple]]:
    return [
        [("events", 0, i + j, raw, ()) for j, raw in enumerate(payloads[i : i + size])]
        for i in range(0, len(payloads), size)
    ]


def best_per_event_us(runs, chunks, repeat: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Per name: the sum over chunks of each chunk's least CPU time (this process's, so time
    spent waiting for a core shared with other processes does not count), per event. The
    runs take turns chunk by chunk, in an order that alternates, so what a busy machine does
    to caches hits them alike."""
    best = {name: [float("inf")] * len(chunks[name]) for name in runs}
    names = list(runs)
    for round_ in range(repeat):
        for i in range(max(len(c) for c in chunks.values())):
            for name in names if round_ % 2 == 0 else names[::-1]:
                if i < len(chunks[name]):
                    started = time.process_time()
                    runs[name](chunks[name][i])
                    best[name][i] = min(best[name][i], time.process_time() - started)
    return {
        name: sum(times) / sum(len(c) for c in chunks[name]) * 1e6 for name, times in best.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    grouping, now = GroupingConfig(), time.time()
    v1, sentry = [], []
    for raw in build_events(
        args.events
    ):  # every event valid: an id and a timestamp where it has none
        event = orjson.loads(raw)
        event.setdefault("timestamp", now)
        event.setdefault("event_id", f"{len(v1) + 1:032x}")
        v1.append(orjson.dumps(event))
        del event["service"]
        event.setdefault("platform", "python")
        sentry.append(orjson.dumps(event))
    v1_chunks, sentry_chunks = batches(v1, args.batch), batches(sentry, args.batch)
    formats = IngestFormats(scrubber=GatewayScrubber())
    runs = {
        "v1_only_us": lambda c: v1_only_batch(c, grouping, 4, now),
        "v1_us": lambda c: decode_batch(c, grouping, 4, None, now, formats),
        "sentry_us": lambda c: decode_batch(c, grouping, 4, None, now, formats),
    }
    chunks = {"v1_only_us": v1_chunks, "v1_us": v1_chunks, "sentry_us": sentry_chunks}
    for name, run in runs.items():  # warm the grouping caches and check the outputs
        out = [run(c) for c in chunks[name]]
        assert not any(dead for _, dead in out), f"{name}: dead letters in the mix"
    best = best_per_event_us(runs, chunks, args.repeat)
    overhead = best["v1_us"] / best["v1_only_us"] - 1
    print(f"v1 events, v1-only decode loop (before):     {best['v1_only_us']:7.2f} us/event")
    print(f"v1 events, with format detection (after):    {best['v1_us']:7.2f} us/event")
    print(f"  difference: {overhead * 100:+.1f} %")
    print(f"Sentry payloads (detect, convert, scrub):    {best['sentry_us']:7.2f} us/event")
    v1_only = best["v1_only_us"]
    for figure, value, baseline in (
        ("v1_only_decode_us_per_event", v1_only, None),
        ("v1_decode_us_per_event", best["v1_us"], v1_only),
        ("sentry_decode_us_per_event", best["sentry_us"], v1_only),
    ):
        line = {
            "bench": "decode",
            "figure": figure,
            "value": round(value, 3),
            "unit": "us",
            "baseline": round(baseline, 3) if baseline else None,
            "ratio": round(value / baseline, 4) if baseline else None,
        }
        print(json.dumps(line))


if __name__ == "__main__":
    main()
