"""The HTTP API: health, metrics, and the timeline queries as JSON.

Served by the worker (it owns the embedded ClickHouse) or standalone against a server.
``/healthz`` and ``/readyz`` and ``/metrics`` are open; ``/api/*`` needs
``Authorization: Bearer <api_token>`` when a token is configured.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from pipeline import queries
from pipeline.metrics import Metrics
from pipeline.storage import Backend, StorageError

Readiness = Callable[[], dict[str, bool]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


def _time_range(q) -> tuple[float, float]:
    now = time.time()
    until = float(q["until"]) if "until" in q else now
    if "since" in q:
        since_text = q["since"]
        try:
            since = float(since_text)
        except ValueError:
            since = until - queries.parse_duration(since_text)
    else:
        since = until - 3600
    return since, until


def build_api(
    backend: Backend,
    metrics: Metrics,
    readiness: Readiness,
    api_token: str = "",
    issues_view: Callable[[], list[dict[str, Any]]] | None = None,
) -> web.Application:
    @web.middleware
    async def auth(request: web.Request, handler):
        if api_token and request.path.startswith("/api/"):
            header = request.headers.get("Authorization", "")
            if not hmac.compare_digest(header.encode(), f"Bearer {api_token}".encode()):
                return _error(401, "missing or wrong bearer token")
        try:
            return await handler(request)
        except (ValueError, KeyError) as exc:
            return _error(400, str(exc))
        except StorageError as exc:
            return _error(503, f"ClickHouse: {exc}")

    async def run(fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def healthz(request):
        return _json({"status": "alive"})

    async def readyz(request):
        checks = readiness()
        ok = all(checks.values())
        return _json({"ready": ok, "checks": checks}, status=200 if ok else 503)

    async def metrics_view(request):
        return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")

    async def timeline(request):
        q = request.query
        since, until = _time_range(q)
        bucket = int(q["bucket"]) if q.get("bucket") else None
        data = await run(
            queries.timeline,
            backend,
            since,
            until,
            bucket=bucket,
            fingerprint=q.get("fingerprint", ""),
            service=q.get("service", ""),
        )
        return _json(data)

    async def counts(request):
        q = request.query
        data = await run(
            queries.event_count,
            backend,
            fingerprint=q.get("fingerprint", ""),
            service=q.get("service", ""),
        )
        return _json(data)

    async def issues(request):
        if issues_view is None:
            return _error(404, "issue state is served by the worker")
        return _json({"issues": issues_view()})

    app = web.Application(middlewares=[auth], client_max_size=1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/api/timeline", timeline)
    app.router.add_get("/api/counts", counts)
    app.router.add_get("/api/state/issues", issues)
    return app
