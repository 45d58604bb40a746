"""The HTTP API: health, metrics, and the timeline analytics as JSON.

Served by the worker (it owns the embedded ClickHouse) or standalone against a server
(``errorstream api``). ``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json`` are
open; everything else (``/api/*`` and the dashboard at ``/``) needs a bearer token, basic
auth or a dashboard session when authentication is configured, and actions pass the CSRF
rules of ``pipeline.dashboard.auth`` (docs/dashboard.md).
Every ``/api`` query takes ``since`` / ``until`` as epoch seconds or a duration back from
now (``6h``); the OpenAPI description is ``OPENAPI`` below (also in docs/openapi.json).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from pipeline import queries
from pipeline.health import Readiness, add_ops_routes
from pipeline.issues_api import add_issue_routes
from pipeline.metrics import Metrics
from pipeline.storage import Backend, StorageError


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


def _time_range(q, default: float = 3600) -> tuple[float, float]:
    return queries.time_range(q.get("since"), q.get("until"), default=default)


def _filters(q, names=queries.DIMENSIONS) -> dict[str, str]:
    return {name: q[name] for name in names if q.get(name)}


def _limit(q, default: int, maximum: int = 10_000) -> int:
    value = int(q.get("limit") or default)
    if not 1 <= value <= maximum:
        raise ValueError(f"limit must be between 1 and {maximum}")
    return value


def build_api(
    backend: Backend,
    metrics: Metrics,
    readiness: Readiness,
    api_token: str = "",
    issues_view: Callable[[], list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]] | None = None,
    publisher: Any = None,
    settings: Any = None,
) -> web.Application:
    """The app; ``publisher`` (``control.CommandPublisher``) lets ``POST
    /api/issues/{fp}/actions`` publish commands (``pipeline/issues_api.py``). With
    ``settings`` (the worker's sink and ``errorstream api``), the dashboard is served too
    and ``pipeline.dashboard.auth`` authenticates every route; without, only ``api_token``
    guards ``/api/*`` (embedding in tests)."""

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

    async def timeline(request):
        q = request.query
        since, until = _time_range(q)
        bucket = int(q["bucket"]) if q.get("bucket") else None
        data = await run(queries.timeline, backend, since, until, bucket=bucket, **_filters(q))
        return _json(data)

    async def top(request):
        q = request.query
        since, until = _time_range(q, default=86400)
        data = await run(
            queries.top_issues,
            backend,
            since,
            until,
            order=q.get("order", "count"),
            limit=_limit(q, 50),
            priority=q.get("priority", ""),
            **_filters(q, ("service", "level", "release", "environment")),
        )
        return _json(data)

    async def breakdown(request):
        q = request.query
        since, until = _time_range(q, default=86400)
        data = await run(
            queries.breakdown,
            backend,
            q.get("by", "category"),
            since,
            until,
            limit=_limit(q, 50),
            **_filters(q),
        )
        return _json(data)

    async def alerts_view(request):
        q = request.query
        since, until = _time_range(q, default=86400)
        kinds = [k for k in q.get("kind", "").split(",") if k]
        if q.get("spikes") in ("1", "true"):
            kinds = list(queries.SPIKE_KINDS)
        data = await run(
            queries.alerts,
            backend,
            since,
            until,
            kinds=kinds,
            service=q.get("service", ""),
            fingerprint=q.get("fingerprint", ""),
            limit=_limit(q, 200),
        )
        return _json(data)

    async def mttr(request):
        q = request.query
        since, until = _time_range(q, default=30 * 86400)
        data = await run(
            queries.mean_time_to_resolution, backend, since, until, service=q.get("service", "")
        )
        return _json(data)

    async def export(request):
        q = request.query
        since, until = _time_range(q, default=86400)
        fmt = q.get("format", "jsonl")
        chunks = queries.export_events(
            backend,
            since,
            until,
            fmt=fmt,
            payload=q.get("payload") in ("1", "true"),
            **_filters(q),
        )
        first = await run(next, chunks, None)  # errors in the arguments surface as a 400
        response = web.StreamResponse(
            headers={"Content-Type": "text/csv" if fmt == "csv" else "application/x-ndjson"}
        )
        await response.prepare(request)
        chunk = first
        while chunk is not None:
            await response.write(chunk)
            chunk = await run(next, chunks, None)
        await response.write_eof()
        return response

    async def openapi(request):
        return _json(OPENAPI)

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
        snapshots = issues_view()
        if inspect.isawaitable(snapshots):  # the agent's, asked over HTTP
            snapshots = await snapshots
        return _json({"issues": snapshots})

    app = web.Application(middlewares=[auth], client_max_size=1024 * 1024)
    add_ops_routes(app.router, metrics.registry, readiness)  # /healthz /readyz /metrics
    if settings is not None:  # the dashboard, and authentication / CSRF for every route
        from pipeline import dashboard

        dashboard.add_routes(app, settings, backend, metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/api/timeline", timeline)
    app.router.add_get("/api/top", top)
    add_issue_routes(app, backend, publisher, metrics)  # /api/issues...
    app.router.add_get("/api/breakdown", breakdown)
    app.router.add_get("/api/alerts", alerts_view)
    app.router.add_get("/api/mttr", mttr)
    app.router.add_get("/api/export", export)
    app.router.add_get("/api/counts", counts)
    app.router.add_get("/api/state/issues", issues)
    return app


# -- OpenAPI ------------------------------------------------------------------------------
def _param(name: str, description: str, schema: dict | None = None, where: str = "query"):
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


_RANGE = [
    _param("since", "start: epoch seconds or a duration back from now (15m, 6h, 7d)"),
    _param("until", "end: epoch seconds (default now)"),
]
_DIMS = [_param(d, f"only this {d}") for d in queries.DIMENSIONS]
_LIMIT = [_param("limit", "rows at most", {"type": "integer", "minimum": 1})]
_OBJ = {"type": "object"}


def _get(summary: str, params: list, schema: dict | None = None, media="application/json"):
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {media: {"schema": schema or _OBJ}}},
                "400": {"description": "a bad parameter; the body names it"},
                "401": {"description": "not authenticated (when authentication is configured)"},
                "503": {"description": "ClickHouse failed the query"},
            },
        }
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "errorstream query API",
        "version": "1",
        "description": "Timeline analytics over ClickHouse. Counts include events whose "
        "bodies were shed by admission control or sampling; exports hold stored bodies.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic"},
            "session": {"type": "apiKey", "in": "cookie", "name": "errorstream_session"},
        },
    },
    "security": [{"bearer": []}, {"basic": []}, {"session": []}],
    "paths": {
        "/api/timeline": _get(
            "Event counts per bucket, gaps filled with zero",
            _RANGE
            + _DIMS
            + [_param("bucket", "bucket seconds, a multiple of 60 (default: by range)")],
        ),
        "/api/top": _get(
            "Top issues in the range",
            _RANGE
            + _DIMS[1:]
            + _LIMIT
            + [
                _param(
                    "order",
                    "count, users, growth (vs the previous period) or new (first seen in range)",
                    {"type": "string", "enum": list(queries.TOP_ORDERS)},
                ),
                _param(
                    "priority",
                    "only issues of this priority",
                    {"type": "string", "enum": ["high", "medium", "low"]},
                ),
            ],
        ),
        "/api/issues": _get(
            "Issues with filters, sorted, one page (docs/issues.md)",
            [
                _param(
                    "status",
                    "unresolved, resolved, ignored or merged (default: all but merged)",
                    {"type": "string", "enum": ["unresolved", "resolved", "ignored", "merged"]},
                ),
                _param(
                    "priority",
                    "high, medium or low",
                    {"type": "string", "enum": ["high", "medium", "low"]},
                ),
                _param("service", "only this service"),
                _param("environment", "only issues with events in this environment"),
                _param("release", "only issues with events in this release"),
                _param("level", "only issues with events of this level"),
                _param("category", "only this category"),
                _param("q", "text in the title or culprit, or a fingerprint prefix"),
                _param(
                    "sort",
                    "last_seen, first_seen, count, users or priority",
                    {
                        "type": "string",
                        "enum": ["last_seen", "first_seen", "count", "users", "priority"],
                    },
                ),
                _param("order", "desc or asc", {"type": "string", "enum": ["desc", "asc"]}),
                _param("since", "last seen at or after: epoch seconds or a duration back"),
                _param("until", "first seen before: epoch seconds or a duration back"),
                _param("limit", "rows at most (1-1000, default 50)", {"type": "integer"}),
                _param("offset", "rows to skip", {"type": "integer", "minimum": 0}),
            ],
        ),
        "/api/issues/{fingerprint}": _get(
            "One issue: state (status, priority, assignee, merged_into), totals, users, "
            "release / environment / level breakdowns, latest stored event with its stack "
            "trace, audit (newest first) and similar issues",
            [_param("fingerprint", "the issue", where="path")] + _RANGE,
        ),
        "/api/issues/{fingerprint}/similar": _get(
            "Merge candidates: issues with the most alike grouping components (MinHash "
            "estimate of the Jaccard similarity, 0..1, highest first)",
            [
                _param("fingerprint", "the issue", where="path"),
                _param("limit", "rows at most (1-100, default 10)", {"type": "integer"}),
            ],
        ),
        "/api/issues/{fingerprint}/audit": _get(
            "Every command applied to the issue: at, actor, action, reason, source, details",
            [_param("fingerprint", "the issue", where="path")] + _LIMIT,
        ),
        "/api/issues/{fingerprint}/actions": {
            "post": {
                "summary": "Publish a command: resolve, ignore, unresolve, merge, unmerge, "
                "assign or priority (docs/issues.md); the state follows within a second",
                "parameters": [_param("fingerprint", "the issue", where="path")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["action"],
                                "properties": {
                                    "action": {
                                        "type": "string",
                                        "enum": [
                                            "resolve",
                                            "ignore",
                                            "unresolve",
                                            "merge",
                                            "unmerge",
                                            "assign",
                                            "priority",
                                        ],
                                    },
                                    "reason": {"type": "string"},
                                    "in_release": {"type": "string"},
                                    "in_next_release": {"type": "boolean"},
                                    "until_count": {"type": "integer", "minimum": 1},
                                    "until_count_window": {"type": "integer", "minimum": 60},
                                    "until_users": {"type": "integer", "minimum": 1},
                                    "for_seconds": {"type": "number", "minimum": 0},
                                    "until_escalating": {"type": "boolean"},
                                    "into": {"type": "string"},
                                    "assignee": {"type": ["string", "null"]},
                                    "priority": {
                                        "type": "string",
                                        "enum": ["high", "medium", "low", "auto"],
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": {"description": 'published: {"command": {...}}'},
                    "400": {"description": "a bad command; the body names the field"},
                    "401": {"description": "not authenticated"},
                    "403": {
                        "description": "cross-origin, or a session cookie without the "
                        "X-CSRF-Token header (docs/dashboard.md)"
                    },
                    "404": {"description": "no such issue"},
                    "503": {"description": "Kafka did not take the command"},
                },
            }
        },
        "/api/issues/{fingerprint}/events": _get(
            "The issue's latest stored events: message, user, tags, stack trace",
            [_param("fingerprint", "the issue", where="path")]
            + _RANGE
            + [_param("limit", "rows at most (1-200, default 20)", {"type": "integer"})],
        ),
        "/api/issues/{fingerprint}/users": _get(
            "The users with the most stored events of the issue",
            [_param("fingerprint", "the issue", where="path")]
            + _RANGE
            + [_param("limit", "rows at most (1-200, default 20)", {"type": "integer"})],
        ),
        "/api/issues/{fingerprint}/tags": _get(
            "Per tag key, the most frequent values over the issue's stored events",
            [_param("fingerprint", "the issue", where="path")] + _RANGE,
        ),
        "/api/breakdown": _get(
            "Events, users and issues per category, level, service, release or environment",
            _RANGE
            + _DIMS
            + _LIMIT
            + [_param("by", "the dimension", {"type": "string", "enum": list(queries.BREAKDOWNS)})],
        ),
        "/api/alerts": _get(
            "Alerts history, newest first",
            _RANGE
            + [
                _param("kind", "comma-separated alert kinds"),
                _param("spikes", "1: only spike and incident alerts"),
                _param("service", "only this service"),
                _param("fingerprint", "only this issue"),
            ]
            + _LIMIT,
        ),
        "/api/mttr": _get(
            "Mean and median time from first seen to resolved, per service",
            _RANGE + [_param("service", "only this service")],
        ),
        "/api/export": _get(
            "Stored events, oldest first, streamed as JSON lines or CSV",
            _RANGE
            + _DIMS
            + [
                _param("format", "jsonl or csv", {"type": "string", "enum": ["jsonl", "csv"]}),
                _param("payload", "1: include the stored record as JSON text"),
            ],
            {"type": "string"},
            media="application/x-ndjson",
        ),
        "/api/counts": _get("Stored event bodies and distinct issues", _DIMS[:2]),
        "/api/state/issues": _get("Live issue state of this worker's partitions", []),
        "/healthz": _get("Alive", []),
        "/readyz": _get("Ready: Kafka assigned, tables recovered, sink writable", []),
        "/metrics": _get("Prometheus exposition", [], {"type": "string"}, media="text/plain"),
    },
}


def write_openapi(path: str = "docs/openapi.json") -> None:
    """Regenerate docs/openapi.json from ``OPENAPI`` (a unit test keeps them equal)."""
    with open(path, "wb") as f:
        f.write(orjson.dumps(OPENAPI, option=orjson.OPT_INDENT_2) + b"\n")


def run_standalone(settings) -> int:
    """``errorstream api``: the query API against the ClickHouse server of
    ``clickhouse_url`` (the embedded engine is served by the worker that owns it)."""
    import sys

    from pipeline.logs import configure_logging
    from pipeline.storage import open_backend

    if not settings.clickhouse_url:
        print(
            "errorstream api: needs clickhouse_url (with the embedded engine, "
            "`errorstream worker` serves the API)",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings)
    try:
        backend = open_backend(settings)
    except StorageError as exc:
        print(f"errorstream api: ClickHouse: {exc}", file=sys.stderr)
        return 2
    from aiokafka import AIOKafkaProducer

    from pipeline.control import CommandPublisher
    from pipeline.kafka_clients import client_config

    # issue actions are published on the control topic with a producer of this process,
    # created and started on the app's loop
    publisher = CommandPublisher(settings.topic_control, None)

    async def kafka_producer(_app):
        producer = AIOKafkaProducer(**client_config(settings, "api"), acks="all")
        try:
            await asyncio.wait_for(producer.start(), 15)
        except Exception as exc:  # reads still work; actions answer 503 until a restart
            print(
                f"errorstream api: cannot reach Kafka ({exc!r}); issue actions are off",
                file=sys.stderr,
            )
            await producer.stop()
        else:
            publisher.producer = producer
        yield
        if publisher.producer is not None:
            await publisher.producer.stop()

    app = build_api(
        backend,
        Metrics(),
        lambda: {"clickhouse": True},
        publisher=publisher,
        settings=settings,
    )
    app.cleanup_ctx.append(kafka_producer)
    try:
        web.run_app(app, host=settings.web_host, port=settings.web_port, print=None)
    finally:
        backend.close()
    return 0
