"""The issue workflow over HTTP (registered by ``pipeline/api.py`` ``build_api``).

    GET  /api/issues                     list with filters, sort and paging (issue_queries.py)
    GET  /api/issues/{fingerprint}       detail: state, breakdowns, latest event, audit, similar
    GET  /api/issues/{fingerprint}/similar?limit=10
    GET  /api/issues/{fingerprint}/audit
    POST /api/issues/{fingerprint}/actions   {"action": ..., "reason": ..., fields}  → 202

An action becomes a command (``pipeline/control.py``) published on the control topic; the
agents apply it and the sink stores the new state and the audit entry. The actor is the
authenticated user (``request["errorstream_user"]``, set by the auth layer; "anonymous"
otherwise), the source ``dashboard`` when the request says so
(``X-Errorstream-Source: dashboard``), else ``api``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from pipeline import issue_queries, queries
from pipeline.control import ACTIONS, CommandError, make_command
from pipeline.storage import Backend

# request body fields per action (the command fields they become)
ACTION_FIELDS: dict[str, dict[str, str]] = {
    "resolve": {"in_release": "in_release", "in_next_release": "in_next_release"},
    "ignore": {
        "until_count": "until_count",
        "until_count_window": "until_count_window",
        "until_users": "until_users",
        "for_seconds": "for_seconds",
        "until_escalating": "until_escalating",
    },
    "unresolve": {},
    "merge": {"into": "into"},
    "unmerge": {},
    "assign": {"assignee": "assignee"},
    "priority": {"priority": "priority"},
}
MAX_BODY = 64 * 1024


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


def _int(q, name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"`{name}` must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"`{name}` must be between {lo} and {hi}")
    return value


def _time(q, name: str) -> float | None:
    raw = q.get(name)
    if raw in (None, ""):
        return None
    try:
        return queries.parse_time(raw, now=time.time(), default=0.0)
    except ValueError as exc:
        raise ValueError(f"`{name}`: {exc}") from None


def command_from_body(fingerprint: str, body: Any, actor: str, source: str) -> dict[str, Any]:
    """The command an action request asks for; raises CommandError naming the bad field."""
    if not isinstance(body, dict):
        raise CommandError("the body must be a JSON object")
    action = body.get("action")
    if action not in ACTIONS:
        raise CommandError(f"`action` must be one of {', '.join(ACTIONS)}, got {action!r}")
    fields = ACTION_FIELDS[action]
    extra = set(body) - set(fields) - {"action", "reason"}
    if extra:
        raise CommandError(f"unexpected field(s) for {action}: {', '.join(sorted(extra))}")
    if action == "assign" and "assignee" not in body:
        raise CommandError("`assignee` is required (empty or null unassigns)")
    values = {fields[k]: v for k, v in body.items() if k in fields}
    if body.get("in_next_release") is False:
        values.pop("in_next_release")
    if body.get("until_escalating") is False:
        values.pop("until_escalating")
    return make_command(
        action, fingerprint, actor=actor, source=source, reason=body.get("reason"), **values
    )


def add_issue_routes(
    app: web.Application, backend: Backend, publisher: Any = None, metrics: Any = None
) -> None:
    def counted(action: Any, result: str) -> None:
        if metrics is not None:
            name = action if action in ACTIONS else "unknown"
            metrics.api_issue_actions.labels(name, result).inc()

    async def run(fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def list_view(request):
        q = request.query
        filters = {
            name: q[name]
            for name in ("priority", "service", "environment", "release", "level", "category", "q")
            if q.get(name)
        }
        data = await run(
            issue_queries.list_issues,
            backend,
            status=q.get("status", ""),
            sort=q.get("sort") or "last_seen",
            order=q.get("order") or "desc",
            limit=_int(q, "limit", 50, 1, 1000),
            offset=_int(q, "offset", 0, 0, 10**7),
            since=_time(q, "since"),
            until=_time(q, "until"),
            **filters,
        )
        return _json(data)

    async def detail(request):
        q = request.query
        fp = request.match_info["fingerprint"]
        since, until = (
            queries.time_range(q.get("since"), q.get("until"), default=90 * 86400)
            if ("since" in q)
            else (0.0, None)
        )
        data = await run(issue_queries.issue_view, backend, fp, since, until)
        if data is None:
            return _error(404, "no such issue")
        return _json(data)

    async def similar(request):
        fp = request.match_info["fingerprint"]
        limit = _int(request.query, "limit", 10, 1, 100)
        if await run(issue_queries.issue_exists, backend, fp) is None:
            return _error(404, "no such issue")
        return _json({"similar": await run(issue_queries.similar_issues, backend, fp, limit)})

    async def audit(request):
        fp = request.match_info["fingerprint"]
        limit = _int(request.query, "limit", 200, 1, 10_000)
        if await run(issue_queries.issue_exists, backend, fp) is None:
            return _error(404, "no such issue")
        return _json({"audit": await run(issue_queries.issue_audit, backend, fp, limit)})

    async def action(request):
        fp = request.match_info["fingerprint"]
        raw = await request.read()
        if len(raw) > MAX_BODY:
            counted(None, "invalid")
            return _error(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            counted(None, "invalid")
            return _error(400, "the body must be JSON")
        action_name = body.get("action") if isinstance(body, dict) else None
        if publisher is None:
            counted(action_name, "unavailable")
            return _error(503, "this API process cannot publish commands (no Kafka producer)")
        source = (
            "dashboard" if request.headers.get("X-Errorstream-Source") == "dashboard" else "api"
        )
        actor = request.get("errorstream_user") or "anonymous"
        try:
            command = command_from_body(fp, body, str(actor), source)
        except CommandError as exc:
            counted(action_name, "invalid")
            return _error(400, str(exc))
        if await run(issue_queries.issue_exists, backend, fp) is None:
            counted(action_name, "not_found")
            return _error(404, "no such issue")
        if command["command"] == "merge":
            if await run(issue_queries.issue_exists, backend, command["into"]) is None:
                counted(action_name, "invalid")
                return _error(400, f"`into`: no such issue {command['into']!r}")
        try:
            await publisher.publish(command)
        except Exception as exc:  # OSError, a timeout, or aiokafka's KafkaError
            if not isinstance(exc, TimeoutError | OSError) and not type(exc).__module__.startswith(
                "aiokafka"
            ):
                raise
            counted(action_name, "unavailable")
            return _error(503, f"cannot publish the command to Kafka: {exc!r}")
        counted(action_name, "published")
        return _json({"command": command}, status=202)

    app.router.add_get("/api/issues", list_view)
    app.router.add_get("/api/issues/{fingerprint}", detail)
    app.router.add_get("/api/issues/{fingerprint}/similar", similar)
    app.router.add_get("/api/issues/{fingerprint}/audit", audit)
    app.router.add_post("/api/issues/{fingerprint}/actions", action)
