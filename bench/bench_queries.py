"""Query latency on the embedded engine: timeline, top-50 and issue detail.

Generates N events (default 10,000,000) over 30 days across 5,000 fingerprints (Zipf-like:
a few issues carry most events, as in real error streams) inside chDB with
INSERT ... SELECT FROM numbers(), into the real schema (migrations): the events table with a
short payload, then one ``event_minutes_input`` row per event with its cumulative
minute_count, as the sink writes them, so the materialized views fill ``event_minutes``, its
legacy table, the hourly / daily rollups and issue_minutes exactly as in production. Tables are merged
(OPTIMIZE FINAL) before timing. Then times each query through ``pipeline.queries`` (the
functions the API and the CLI call; median of several runs, warm) beside a bare chDB query
over the same events (a plain GROUP BY on the events table, no FINAL) in the same run.

    python bench/bench_queries.py [--rows 10000000] [--runs 5] [--keep DIR] [--reuse DIR]

``--keep DIR`` keeps the generated folder (and notes what it holds in DIR/bench.json);
``--reuse DIR`` times a folder kept that way again without generating: migrations that are
new since are applied (their backfills included) and the tables merged again.

Human-readable numbers first; the last lines are JSON, one per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import queries  # noqa: E402
from pipeline.storage import ChdbBackend  # noqa: E402
from pipeline.storage.migrate import migrate  # noqa: E402

DAYS = 30
FINGERPRINTS = 5000

GENERATE_EVENTS = """
INSERT INTO {db}.events (event_id, timestamp, received_at, service, environment, release,
    level, platform, logger, fingerprint, grouping_variant, title, culprit, category,
    exception_type, message, user_id, tags, payload, sample_rate, user_hash)
SELECT
    lower(hex(cityHash64(number, 'id'))) || lower(hex(cityHash64(number, 'id2'))) AS event_id,
    fromUnixTimestamp64Milli(toInt64({start_ms:Int64} + (cityHash64(number, 't') % {span_ms:UInt64})), 'UTC') AS ts,
    ts,
    concat('svc-', toString(fp % 20)),
    ['prod', 'staging'][1 + (cityHash64(number, 'e') % 10 = 0)],
    concat('app@1.', toString(cityHash64(number, 'r') % 5)),
    ['error', 'error', 'error', 'warning', 'fatal'][1 + cityHash64(number, 'l') % 5],
    'python', 'app',
    lower(hex(cityHash64(fp, 'fp'))) AS fpx,
    'app',
    concat('Error in handler ', toString(fp)),
    concat('app.module', toString(fp % 97), ' in handler'),
    ['bug', 'database', 'network', 'timeout'][1 + fp % 4],
    'KeyError',
    concat('key ', toString(number % 1000), ' not found'),
    concat('user-', toString(cityHash64(number, 'u') % 50000)),
    map('host', concat('web-', toString(number % 32))),
    concat('{"event_id":"', event_id, '","exception":{"values":[{"type":"KeyError","value":"key","stacktrace":{"frames":[{"filename":"app/views.py","function":"handler","lineno":', toString(fp % 300), '}]}}]}}'),
    1.0,
    cityHash64(number, 'u') % 50000 + 1
FROM (SELECT number, toUInt64(pow(cityHash64(number, 'f') / 18446744073709551615.0, 3) * {fps:UInt32}) AS fp
      FROM numbers({offset:UInt64}, {chunk:UInt64}))
"""
GENERATE_MINUTES = """
INSERT INTO {db}.event_minutes_input (minute, service, fingerprint, level, release, environment,
    minute_count, event_id, user_hash, has_user)
SELECT toStartOfMinute(timestamp) AS minute, service, fingerprint, level, release, environment,
       row_number() OVER (PARTITION BY minute, service, fingerprint, level, release, environment
                          ORDER BY timestamp, event_id) AS minute_count,
       event_id, user_hash, 1
FROM {db}.events
WHERE timestamp >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC')
  AND timestamp < fromUnixTimestamp64Milli({hi:Int64}, 'UTC')
"""
GENERATE_ISSUES = """
INSERT INTO {db}.issues (fingerprint, service, title, culprit, category, status, first_seen,
    last_seen, count, users, levels, resolved_at, resolved_in_release, version)
SELECT fingerprint, any(service), any(title), any(culprit), any(category), 'ongoing',
       min(timestamp), max(timestamp), count(), uniq(user_hash), groupUniqArray(level),
       NULL, '', count()
FROM {db}.events GROUP BY fingerprint
"""


TABLES = (
    "events",
    "event_minutes",
    "event_minutes_legacy",
    "event_hours",
    "event_days",
    "event_day_users",
    "issue_minutes",
    "issue_days",
    "issue_month_users",
    "issue_latest",
)


def generate(backend, rows: int, start: int) -> None:
    """N events over the DAYS days from ``start``, then the input rows the sink would write
    for them (the views fill the count tables) and the issue states."""
    db = backend.database
    chunk = 2_000_000
    for offset in range(0, rows, chunk):
        backend.command(
            GENERATE_EVENTS.replace("{db}", db),
            {
                "start_ms": start * 1000,
                "span_ms": DAYS * 86400 * 1000,
                "fps": FINGERPRINTS,
                "offset": offset,
                "chunk": min(chunk, rows - offset),
            },
        )
    for day in range(DAYS):
        lo = (start + day * 86400) * 1000
        backend.command(GENERATE_MINUTES.replace("{db}", db), {"lo": lo, "hi": lo + 86400_000})
    backend.command(GENERATE_ISSUES.replace("{db}", db))


def timed(fns, runs: int) -> list[tuple[float, object]]:
    """Median time and last result of each function, the functions run in turn within each
    round (so a burst of load on the shared machine falls on all of them alike)."""
    results = [fn() for fn in fns]  # warm
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            started = time.perf_counter()
            results[i] = fn()
            samples[i].append(time.perf_counter() - started)
    return [(statistics.median(x), r) for x, r in zip(samples, results, strict=True)]


def check_detail(detail: dict, bare: dict, whole: dict) -> None:
    """The detail's answer is the plain statements' answer (every generated body is stored,
    so counts over the events table are the counts): a benchmark of a wrong answer fails."""
    got = {
        "events": detail["events"],
        "users": detail["users"],
        "first_seen": round(detail["first_seen"] * 1000),
        "last_seen": round(detail["last_seen"] * 1000),
        "releases": {v["value"]: v["events"] for v in detail["releases"]},
        "environments": {v["value"]: v["events"] for v in detail["environments"]},
        "levels": {v["value"]: v["events"] for v in detail["levels"]},
        "latest": detail["latest_event"]["event_id"],
    }
    latest = whole["latest"]
    want = {
        "events": int(bare["n"]),
        "users": int(bare["users"]),
        "first_seen": int(bare["first_ms"]),
        "last_seen": int(bare["last_ms"]),
        **{k: {v: int(n) for v, n in whole[k].items()} for k in ("releases", "environments")},
        "levels": {v: int(n) for v, n in whole["levels"].items()},
        "latest": latest["1"] if isinstance(latest, dict) else latest[0],
    }
    if got != want:
        raise SystemExit(f"issue detail differs from the plain statements: {got} != {want}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", default="", help="chDB folder to keep (default: a temp dir)")
    ap.add_argument("--reuse", default="", help="a folder kept by --keep: time it again")
    args = ap.parse_args()
    if args.keep and args.reuse:
        ap.error("--keep and --reuse are exclusive")
    path = args.reuse or args.keep or tempfile.mkdtemp(prefix="es-bench-queries-")
    note = Path(path) / "bench.json"
    if args.reuse:
        if not note.is_file():
            ap.error(f"{note} not found: --reuse takes a folder written with --keep")
        kept = json.loads(note.read_text())
        args.rows, end = int(kept["rows"]), int(kept["end"])
    else:
        end = int(time.time() // 86400 * 86400)  # midnight today: 30 whole days behind it
    start = end - DAYS * 86400
    backend = ChdbBackend(str(Path(path) / "clickhouse"), "bench")
    db = backend.database
    try:
        applied = migrate(backend, 90)
        started = time.perf_counter()
        if args.reuse:
            print(f"reusing {path}: {args.rows:,} events ending {end}; migrations applied now:")
            print(f"  {', '.join(m.name for m in applied) or 'none'}")
        else:
            generate(backend, args.rows, start)
            if args.keep:
                note.write_text(json.dumps({"rows": args.rows, "end": end}))
        for table in (*TABLES, "issues"):  # a partition already merged to one part is kept
            backend.command(
                f"OPTIMIZE TABLE {db}.{table} FINAL SETTINGS optimize_skip_merged_partitions = 1"
            )
        generated = time.perf_counter() - started
        sizes = backend.query(
            "SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts "
            "WHERE database = {db:String} AND active GROUP BY table ORDER BY table",
            {"db": db},
        )
        verb = "merged" if args.reuse else "generated and merged"
        print(f"{verb} {args.rows:,} events in {generated:.1f}s")
        print(f"load average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for s in sizes:
            print(
                f"  {s['table']:<22} {int(s['rows']):>12,} rows {int(s['bytes']) / 2**20:9.1f} MiB"
            )

        top_fp = backend.query(
            f"SELECT fingerprint FROM {db}.issues FINAL ORDER BY count DESC LIMIT 1"
        )[0]["fingerprint"]
        mid_fp = backend.query(
            f"SELECT fingerprint FROM {db}.issues FINAL ORDER BY count DESC LIMIT 1 OFFSET 100"
        )[0]["fingerprint"]
        day = (end - 86400, end)
        month = (start, end)
        figures = []

        def figure(name, fn, baseline_sql, params, *extra):
            """``extra``: (label, sql) of more baselines over the same params, timed in turn
            with the others and printed beside them (not part of the JSON figure)."""
            sqls = [baseline_sql, *(sql for _, sql in extra)]
            bare = [lambda sql=sql: backend.query(sql.replace("{db}", db), params) for sql in sqls]
            (value, answer), (base, base_answer), *more = timed([fn, *bare], args.runs)
            figures.append((name, value, base))
            print(
                f"{name:<34} {value * 1000:8.1f} ms   bare chDB over events {base * 1000:8.1f} ms"
            )
            for (label, _), (t, _) in zip(extra, more, strict=True):
                print(f"{'':<34} {'':>11}   {label:<21} {t * 1000:8.1f} ms")
            return answer, base_answer, [r for _, r in more]

        bare_timeline = (
            "SELECT toStartOfInterval(timestamp, toIntervalSecond({b:UInt32})) AS t, count() "
            "FROM {db}.events WHERE timestamp >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND timestamp < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') GROUP BY t ORDER BY t"
        )
        figure(
            "timeline_24h_all",
            lambda: queries.timeline(backend, *day),
            bare_timeline,
            {"b": 900, "lo": day[0] * 1000, "hi": day[1] * 1000},
        )
        figure(
            "timeline_30d_all",
            lambda: queries.timeline(backend, *month),
            bare_timeline,
            {"b": 10800, "lo": month[0] * 1000, "hi": month[1] * 1000},
        )
        figure(
            "timeline_30d_fingerprint",
            lambda: queries.timeline(backend, *month, fingerprint=top_fp),
            bare_timeline.replace("GROUP BY", "AND fingerprint = {fp:String} GROUP BY"),
            {"b": 10800, "lo": month[0] * 1000, "hi": month[1] * 1000, "fp": top_fp},
        )
        bare_top = (
            "SELECT fingerprint, count() AS c, uniq(user_hash) FROM {db}.events "
            "WHERE timestamp >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND timestamp < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            "GROUP BY fingerprint ORDER BY c DESC LIMIT 50"
        )
        figure(
            "top50_24h",
            lambda: queries.top_issues(backend, *day, limit=50),
            bare_top,
            {"lo": day[0] * 1000, "hi": day[1] * 1000},
        )
        figure(
            "top50_30d",
            lambda: queries.top_issues(backend, *month, limit=50),
            bare_top,
            {"lo": month[0] * 1000, "hi": month[1] * 1000},
        )
        bare_detail = (
            "SELECT count() AS n, uniq(user_hash) AS users, "
            "toUnixTimestamp64Milli(min(timestamp)) AS first_ms, "
            "toUnixTimestamp64Milli(max(timestamp)) AS last_ms "
            "FROM {db}.events WHERE fingerprint = {fp:String}"
        )
        # The detail's whole answer in one plain statement over the events table: the bare
        # figures plus the release / environment / level split and the latest body.
        bare_detail_whole = (
            "SELECT count() AS n, uniq(user_hash) AS users, "
            "toUnixTimestamp64Milli(min(timestamp)) AS first_ms, "
            "toUnixTimestamp64Milli(max(timestamp)) AS last_ms, "
            "sumMap(map(release, toUInt64(1))) AS releases, "
            "sumMap(map(environment, toUInt64(1))) AS environments, "
            "sumMap(map(level, toUInt64(1))) AS levels, "
            "(SELECT (event_id, payload) FROM {db}.events WHERE fingerprint = {fp:String} "
            " ORDER BY timestamp DESC, event_id DESC LIMIT 1) AS latest "
            "FROM {db}.events WHERE fingerprint = {fp:String}"
        )
        for name, fp in (("issue_detail_top", top_fp), ("issue_detail_rank100", mid_fp)):
            detail, (bare,), ((whole,),) = figure(
                name,
                lambda fp=fp: queries.issue_detail(backend, fp),
                bare_detail,
                {"fp": fp},
                ("same answer, one SQL", bare_detail_whole),
            )
            check_detail(detail, bare, whole)
        week = (end - 7 * 86400 - 1234, end - 777)  # 7 days, aligned to nothing
        figure(
            "top50_7d_unaligned",
            lambda: queries.top_issues(backend, *week, limit=50),
            bare_top,
            {"lo": week[0] * 1000, "hi": week[1] * 1000},
        )
        figure(
            "timeline_30d_level_fatal",
            lambda: queries.timeline(backend, *month, level="fatal"),
            bare_timeline.replace("GROUP BY", "AND level = 'fatal' GROUP BY"),
            {"b": 10800, "lo": month[0] * 1000, "hi": month[1] * 1000},
        )
        print(f"load average after timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for name, value, base in figures:
            print(
                json.dumps(
                    {
                        "bench": "queries",
                        "figure": f"{name}_{args.rows}rows",
                        "value": round(value * 1000, 2),
                        "unit": "ms",
                        "baseline": round(base * 1000, 2),
                        "ratio": round(value / base, 3) if base else None,
                    }
                )
            )
    finally:
        backend.close()
        if not (args.keep or args.reuse):
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
