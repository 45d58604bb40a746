"""The web dashboard: static files shipped in the package (``static/``: HTML, CSS and
vanilla JS modules, no build step, nothing from another origin), served by the query API's
aiohttp app, plus the authentication / CSRF middleware of the whole API (``auth``) and the
read endpoints only the dashboard uses (``reads``). docs/dashboard.md describes it.

``add_routes(app, settings, backend, metrics)`` is the one call ``pipeline.api.build_api`` makes:

    /                     the dashboard (hash routes: #/overview, #/issues, #/issue/<fp>, #/live)
    /dashboard/login      the login page (token or user / password)
    /dashboard/session    POST: log in (JSON {token} or {user, password}); DELETE: log out
    /dashboard/static/*   the front end's files
    /api/issues/{fp}/events | /users | /tags   latest stored events, users, tag values
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from pipeline.dashboard import reads
from pipeline.dashboard.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    USER_KEY,
    Credentials,
    Sessions,
    middleware,
)
from pipeline.settings import check_api_bind

STATIC = Path(__file__).parent / "static"
CREDENTIALS_KEY = web.AppKey("errorstream_credentials", Credentials)
SESSIONS_KEY = web.AppKey("errorstream_sessions", Sessions)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})


def set_session(response: web.StreamResponse, request: web.Request, sessions: Sessions, user: str):
    cookie = sessions.issue(user)
    secure = request.secure
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )
    # readable by the dashboard's script, which sends it back as X-CSRF-Token
    response.set_cookie(
        CSRF_COOKIE,
        sessions.csrf_token(cookie),
        max_age=SESSION_SECONDS,
        path="/",
        samesite="Strict",
        secure=secure,
    )


def add_routes(app: web.Application, settings: Any, backend: Any, metrics: Any = None) -> None:
    """Serve the dashboard and put the auth / CSRF / security-header middleware in front
    of every route of ``app`` (call before the app starts)."""
    check_api_bind(settings)  # the CLI checked already; an embedding caller gets it here
    credentials = Credentials.from_settings(settings)
    sessions = Sessions()
    app[CREDENTIALS_KEY] = credentials
    app[SESSIONS_KEY] = sessions
    app.middlewares.insert(0, middleware(credentials, sessions, metrics))

    def has_session(request: web.Request) -> bool:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return bool(cookie) and sessions.user(cookie) is not None

    async def index(request: web.Request) -> web.StreamResponse:
        response = _page("index.html")
        if not has_session(request):  # authenticated by a header, or authentication is off
            set_session(response, request, sessions, request[USER_KEY])
        return response

    async def login_page(request: web.Request) -> web.StreamResponse:
        if not credentials.enabled:
            raise web.HTTPFound("/")
        return _page("login.html")

    async def login(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _json({"error": "expected a JSON body"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "expected a JSON object"}, 400)
        user = None
        if body.get("token"):
            user = credentials.check_token(str(body["token"]))
        elif body.get("password"):
            user = credentials.check_password(str(body.get("user", "")), str(body["password"]))
        if user is None:
            return _json({"error": "wrong credentials"}, 401)
        response = _json({"user": user})
        set_session(response, request, sessions, user)
        return response

    async def logout(request: web.Request) -> web.Response:
        response = _json({"user": None})
        response.del_cookie(SESSION_COOKIE, path="/")
        response.del_cookie(CSRF_COOKIE, path="/")
        return response

    async def whoami(request: web.Request) -> web.Response:
        return _json({"user": request[USER_KEY], "auth": credentials.enabled})

    def read(fn, *names: str):
        async def handler(request: web.Request) -> web.Response:
            q = request.query
            kwargs = {name: q.get(name) for name in names}
            data = await asyncio.to_thread(fn, backend, request.match_info["fingerprint"], **kwargs)
            return _json(data)

        return handler

    router = app.router
    router.add_get("/", index)
    router.add_get("/dashboard", index)
    router.add_get("/dashboard/", index)
    router.add_get("/dashboard/login", login_page)
    router.add_post("/dashboard/session", login)
    router.add_delete("/dashboard/session", logout)
    router.add_get("/dashboard/whoami", whoami)
    router.add_static("/dashboard/static", STATIC, append_version=False)
    router.add_get(
        "/api/issues/{fingerprint}/events",
        read(reads.latest_events, "since", "until", "limit"),
    )
    router.add_get(
        "/api/issues/{fingerprint}/users", read(reads.affected_users, "since", "until", "limit")
    )
    router.add_get("/api/issues/{fingerprint}/tags", read(reads.tag_breakdown, "since", "until"))
