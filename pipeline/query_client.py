"""``errorstream query``: the timeline queries for people (tables) and machines (``--json``).

With the embedded engine the worker owns the chDB folder, so the CLI asks the worker's HTTP
API; with a ClickHouse server (``clickhouse_url``) it may query the server directly.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

from pipeline import queries


def register(sub, func) -> None:
    p = sub.add_parser("query", help="timeline queries (tables, or --json)")
    qsub = p.add_subparsers(dest="query", required=True, metavar="QUERY")
    t = qsub.add_parser("timeline", help="event counts per time bucket")
    t.add_argument(
        "--since",
        default="1h",
        help="start: a duration back from now (15m, 6h, 7d) or epoch seconds",
    )
    t.add_argument("--until", default=None, help="end: epoch seconds (default now)")
    t.add_argument("--bucket", type=int, default=None, help="bucket seconds (default: by range)")
    t.add_argument("--fingerprint", default="")
    t.add_argument("--service", default="")
    t.add_argument("--json", action="store_true", help="one JSON document on stdout")
    t.set_defaults(func=func)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    until = float(args.until) if args.until else time.time()
    try:
        since = float(args.since)
    except ValueError:
        since = until - queries.parse_duration(args.since)
    params: dict[str, Any] = {"since": since, "until": until}
    for key in ("bucket", "fingerprint", "service"):
        value = getattr(args, key, None)
        if value:
            params[key] = value
    return params


def fetch_api(settings, path: str, params: dict[str, Any], timeout: float = 30.0) -> Any:
    url = f"{settings.effective_api_url}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url)
    if settings.api_token:
        request.add_header("Authorization", f"Bearer {settings.api_token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise QueryFailed(f"{url}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise QueryFailed(
            f"cannot reach the worker's API at {settings.effective_api_url} ({exc}); "
            "is `errorstream worker` running?"
        ) from None


class QueryFailed(RuntimeError):
    pass


def _timeline_direct(settings, params: dict[str, Any]) -> dict[str, Any]:
    from pipeline.storage import open_backend

    backend = open_backend(settings)
    try:
        return queries.timeline(
            backend,
            params["since"],
            params["until"],
            bucket=params.get("bucket"),
            fingerprint=params.get("fingerprint", ""),
            service=params.get("service", ""),
        )
    finally:
        backend.close()


def print_timeline(data: dict[str, Any], out=sys.stdout) -> None:
    scope = data.get("fingerprint") or data.get("service") or "all services"
    out.write(f"timeline of {scope}: {data['total']} events, {data['bucket_seconds']}s buckets\n")
    peak = max((p["events"] for p in data["points"]), default=0) or 1
    for point in data["points"]:
        bar = "#" * round(40 * point["events"] / peak)
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(point["ts"]))
        out.write(f"{stamp}  {point['events']:>8}  {bar}\n")


def run_query(args: argparse.Namespace, settings) -> int:
    try:
        params = _params(args)
        if settings.clickhouse_url:
            data = _timeline_direct(settings, params)
        else:
            data = fetch_api(settings, "/api/timeline", params)
    except (QueryFailed, ValueError) as exc:
        print(f"errorstream query: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
    else:
        print_timeline(data)
    return 0
