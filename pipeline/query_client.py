"""``errorstream query``: timeline analytics for people (tables) and machines (``--json``).

    errorstream query timeline  --since 6h [--service S] [--fingerprint F] [--bucket 300]
    errorstream query top       --since 24h [--order count|users|growth|new] [--limit 50]
    errorstream query issue     FINGERPRINT
    errorstream query breakdown --by category|level|service|release|environment
    errorstream query alerts    --since 7d [--kind spike,incident] [--spikes]
    errorstream query mttr      --since 30d
    errorstream query export    --since 1h [--format jsonl|csv] [--payload] > events.jsonl

With the embedded engine the worker owns the chDB folder, so the CLI asks the worker's HTTP
API; with a ClickHouse server (``clickhouse_url``) it queries the server directly. Both run
the same functions of ``pipeline.queries``.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson

from pipeline import queries

FILTERS = ("fingerprint", "service", "level", "release", "environment")


def _common(p: argparse.ArgumentParser, since: str, filters=FILTERS, json_flag=True) -> None:
    p.add_argument(
        "--since",
        default=since,
        help=f"start: a duration back from now (15m, 6h, 7d) or epoch seconds (default {since})",
    )
    p.add_argument(
        "--until", default=None, help="end: epoch seconds or a duration back (default now)"
    )
    for name in filters:
        p.add_argument(f"--{name}", default="")
    if json_flag:
        p.add_argument("--json", action="store_true", help="one JSON document on stdout")


def register(sub, func) -> None:
    p = sub.add_parser("query", help="timeline analytics (tables, or --json)")
    qsub = p.add_subparsers(dest="query", required=True, metavar="QUERY")

    t = qsub.add_parser("timeline", help="event counts per time bucket, gaps filled")
    _common(t, "1h")
    t.add_argument("--bucket", type=int, default=None, help="bucket seconds (default: by range)")

    t = qsub.add_parser("top", help="top issues by count, users, growth, or new in range")
    _common(t, "24h", FILTERS[1:])
    t.add_argument("--order", default="count", choices=queries.TOP_ORDERS)
    t.add_argument("--limit", type=int, default=50)
    t.add_argument("--priority", default="", choices=("", "high", "medium", "low"))

    t = qsub.add_parser("issue", help="one issue: totals, users, breakdowns, latest event")
    t.add_argument("fingerprint")
    t.add_argument("--json", action="store_true", help="one JSON document on stdout")

    t = qsub.add_parser("breakdown", help="events per category, level, service, release ...")
    _common(t, "24h")
    t.add_argument("--by", default="category", choices=queries.BREAKDOWNS)
    t.add_argument("--limit", type=int, default=50)

    t = qsub.add_parser("alerts", help="alerts history (--spikes: spikes and incidents)")
    _common(t, "7d", ("service", "fingerprint"))
    t.add_argument("--kind", default="", help="comma-separated kinds")
    t.add_argument("--spikes", action="store_true")
    t.add_argument("--limit", type=int, default=200)

    t = qsub.add_parser("mttr", help="mean time to resolution per service")
    _common(t, "30d", ("service",))

    t = qsub.add_parser("export", help="stored events as JSON lines or CSV on stdout")
    _common(t, "1h", json_flag=False)
    t.add_argument("--format", default="jsonl", choices=("jsonl", "csv"))
    t.add_argument("--payload", action="store_true", help="include the stored record")
    p.set_defaults(func=func)


class QueryFailed(RuntimeError):
    pass


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if hasattr(args, "since"):
        since, until = queries.time_range(args.since, args.until)
        params.update(since=since, until=until)
    for key in (*FILTERS, "bucket", "order", "limit", "by", "kind", "format", "priority"):
        value = getattr(args, key, None)
        if value and not (args.query == "issue" and key == "fingerprint"):
            params[key] = value
    if getattr(args, "spikes", False):
        params["spikes"] = 1
    if getattr(args, "payload", False):
        params["payload"] = 1
    return params


def _open(settings, path: str, params: dict[str, Any], timeout: float):
    url = f"{settings.effective_api_url}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url)
    if settings.api_token:
        request.add_header("Authorization", f"Bearer {settings.api_token}")
    elif settings.http_auth_password:  # basic auth (docs/dashboard.md)
        pair = f"{settings.http_auth_user}:{settings.http_auth_password}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise QueryFailed(f"{url}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise QueryFailed(
            f"cannot reach the worker's API at {settings.effective_api_url} ({exc}); "
            "is `errorstream worker` running?"
        ) from None


def fetch_api(settings, path: str, params: dict[str, Any], timeout: float = 30.0) -> Any:
    with _open(settings, path, params, timeout) as response:
        return orjson.loads(response.read())


def stream_api(settings, path: str, params: dict[str, Any]) -> Iterator[bytes]:
    with _open(settings, path, params, timeout=300.0) as response:
        while chunk := response.read(64 * 1024):
            yield chunk


def _api_path(args) -> str:
    if args.query == "issue":
        return f"/api/issues/{urllib.parse.quote(args.fingerprint, safe='')}"
    return {"top": "/api/top", "breakdown": "/api/breakdown"}.get(args.query, f"/api/{args.query}")


def _direct(backend, args, p: dict[str, Any]) -> Any:
    filters = {k: p[k] for k in FILTERS if p.get(k)}
    if args.query == "timeline":
        return queries.timeline(backend, p["since"], p["until"], p.get("bucket"), **filters)
    if args.query == "top":
        return queries.top_issues(
            backend,
            p["since"],
            p["until"],
            p.get("order", "count"),
            p.get("limit", 50),
            priority=p.get("priority", ""),
            **filters,
        )
    if args.query == "issue":
        data = queries.issue_detail(backend, args.fingerprint)
        if data is None:
            raise QueryFailed(f"no such issue: {args.fingerprint}")
        return data
    if args.query == "breakdown":
        return queries.breakdown(
            backend, p.get("by", "category"), p["since"], p["until"], p.get("limit", 50), **filters
        )
    if args.query == "alerts":
        kinds = (
            list(queries.SPIKE_KINDS)
            if p.get("spikes")
            else [k for k in p.get("kind", "").split(",") if k]
        )
        return queries.alerts(
            backend,
            p["since"],
            p["until"],
            kinds,
            p.get("service", ""),
            p.get("fingerprint", ""),
            p.get("limit", 200),
        )
    if args.query == "mttr":
        return queries.mean_time_to_resolution(
            backend, p["since"], p["until"], p.get("service", "")
        )
    raise QueryFailed(f"unknown query {args.query}")


def _stamp(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(ts)))


def print_timeline(data: dict[str, Any], out=sys.stdout) -> None:
    scope = data.get("fingerprint") or data.get("service") or "all services"
    out.write(f"timeline of {scope}: {data['total']} events, {data['bucket_seconds']}s buckets\n")
    peak = max((p["events"] for p in data["points"]), default=0) or 1
    for point in data["points"]:
        bar = "#" * round(40 * point["events"] / peak)
        out.write(f"{_stamp(point['ts'])}  {point['events']:>8}  {bar}\n")


def print_top(data: dict[str, Any], out=sys.stdout) -> None:
    growth = data["order"] == "growth"
    out.write(
        f"{'events':>9} {'users':>7} {'growth' if growth else 'status':>9} {'priority':<8} "
        "fingerprint       title\n"
    )
    for i in data["issues"]:
        third = f"{i['growth']:+d}" if growth else i["status"]
        out.write(
            f"{i['events']:>9} {i['users']:>7} {third:>9} {i.get('priority', '-'):<8} "
            f"{i['fingerprint'][:16]:<16}  {i['title'][:70]}\n"
        )


def print_issue(data: dict[str, Any], out=sys.stdout) -> None:
    issue = data.get("issue") or {}
    out.write(f"{data['fingerprint']}  {issue.get('title', '')}\n")
    out.write(
        f"  status {issue.get('status', '?')}, category {issue.get('category', '?')}, service {issue.get('service', '?')}\n"
    )
    out.write(
        f"  {data['events']} events, {data['users']} users, first {_stamp(data['first_seen'])}, last {_stamp(data['last_seen'])}\n"
    )
    for key in ("releases", "environments", "levels"):
        parts = ", ".join(f"{v['value'] or '-'} {v['events']}" for v in data[key])
        out.write(f"  {key}: {parts}\n")
    sample = data.get("latest_event")
    if sample:
        out.write(f"latest event {sample['event_id']} at {_stamp(sample['timestamp'])}\n")
        for exc in sample["exception"]:
            out.write(f"  {exc['type']}: {exc['value']}\n")
            for f in exc["frames"]:
                out.write(
                    f"    {f.get('filename', f.get('module', '?'))}:{f.get('lineno', '?')} in {f.get('function', '?')}\n"
                )


def print_breakdown(data: dict[str, Any], out=sys.stdout) -> None:
    out.write(f"{data['by']:<24} {'events':>9} {'users':>7} {'issues':>7}\n")
    for v in data["values"]:
        out.write(
            f"{(v['value'] or '-')[:24]:<24} {v['events']:>9} {v['users']:>7} {v['issues']:>7}\n"
        )


def print_alerts(data: dict[str, Any], out=sys.stdout) -> None:
    for a in data["alerts"]:
        out.write(
            f"{_stamp(a['event_time'])}  {a['kind']:<10} {a['service']:<16} {a['title'][:60]}\n"
        )
    out.write(f"{len(data['alerts'])} alert(s)\n")


def print_mttr(data: dict[str, Any], out=sys.stdout) -> None:
    for s in data["services"]:
        out.write(
            f"{s['service']:<24} {s['resolved']:>6} resolved  mean {s['mean_seconds'] / 3600:8.2f} h  median {s['median_seconds'] / 3600:8.2f} h\n"
        )
    mean = data["mean_seconds"]
    out.write(
        f"all: {data['resolved']} resolved, mean {'-' if mean is None else f'{mean / 3600:.2f} h'}\n"
    )


PRINTERS = {
    "timeline": print_timeline,
    "top": print_top,
    "issue": print_issue,
    "breakdown": print_breakdown,
    "alerts": print_alerts,
    "mttr": print_mttr,
}


def run_query(args: argparse.Namespace, settings) -> int:
    backend = None
    try:
        params = _params(args)
        if settings.clickhouse_url:
            from pipeline.storage import open_backend

            backend = open_backend(settings)
        if args.query == "export":
            if backend is not None:
                filters = {k: params[k] for k in FILTERS if params.get(k)}
                chunks = queries.export_events(
                    backend,
                    params["since"],
                    params["until"],
                    fmt=args.format,
                    payload=args.payload,
                    **filters,
                )
            else:
                chunks = stream_api(settings, "/api/export", params)
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            return 0
        if backend is not None:
            data = _direct(backend, args, params)
        else:
            data = fetch_api(settings, _api_path(args), params)
    except (QueryFailed, ValueError) as exc:
        print(f"errorstream query: {exc}", file=sys.stderr)
        return 2
    finally:
        if backend is not None:
            backend.close()
    if args.json:
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
    else:
        PRINTERS[args.query](data)
    return 0
