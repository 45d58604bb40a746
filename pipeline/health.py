"""Health, readiness and metrics over HTTP, for every long-running process.

    GET /healthz   200 {"status": "alive"} while the event loop answers
    GET /readyz    200 when every check is true, else 503 with the failing checks named
    GET /metrics   Prometheus text exposition (all processes' values in multi-process mode)

The worker serves these beside its query API (``pipeline/api.py`` calls ``add_ops_routes``);
a process without an API of its own (the future ingest gateway, the notifier) serves
``build_ops_app(...)`` as is, or mounts it with ``parent.add_subapp("/-/", build_ops_app(...))``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from pipeline.metrics import CONTENT_TYPE_LATEST, exposition

Readiness = Callable[[], dict[str, bool] | Awaitable[dict[str, bool]]]


def add_ops_routes(
    router: web.UrlDispatcher, registry: CollectorRegistry, readiness: Readiness
) -> None:
    """Register /healthz, /readyz and /metrics on ``router``."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"}, dumps=_dumps)

    async def readyz(request: web.Request) -> web.Response:
        checks = readiness()
        if inspect.isawaitable(checks):  # e.g. the sink's, which asks the other processes
            checks = await checks
        ok = all(checks.values())
        body = {"ready": ok, "checks": checks}
        if not ok:
            body["failing"] = sorted(name for name, passed in checks.items() if not passed)
        return web.json_response(body, status=200 if ok else 503, dumps=_dumps)

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=exposition(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_get("/metrics", metrics)


def build_ops_app(registry: CollectorRegistry, readiness: Readiness) -> web.Application:
    """A standalone aiohttp app with only the three operational endpoints."""
    app = web.Application()
    add_ops_routes(app.router, registry, readiness)
    return app


def _dumps(data: object) -> str:
    return orjson.dumps(data).decode()
