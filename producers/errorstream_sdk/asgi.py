"""ASGI middleware: per-request scope with the request context (method, URL without the
query string, scrubbed query string, headers, route, response status); exceptions from the
app are captured (unhandled, mechanism ``asgi``) and re-raised.

    app = ErrorstreamASGIMiddleware(app)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from errorstream_sdk import api
from errorstream_sdk.scope import current_scope, get_scope

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def asgi_request(scope: Scope) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").title()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    host = headers.get("Host")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    scheme = scope.get("scheme") or ("ws" if scope.get("type") == "websocket" else "http")
    path = scope.get("root_path", "") + scope.get("path", "")
    return {
        "method": scope.get("method", "GET"),
        "url": f"{scheme}://{host}{path}",
        "query_string": (scope.get("query_string") or b"").decode("latin-1"),
        "headers": headers,
    }


def route_of(scope: Scope) -> str | None:
    route = scope.get("route")
    if route is None:
        return None
    return str(getattr(route, "path", None) or getattr(route, "path_format", None) or route)


class ErrorstreamASGIMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        req_scope = get_scope().fork()
        try:
            req_scope.request = asgi_request(scope)
        except Exception:
            req_scope.request = None
        token = current_scope.set(req_scope)
        status: list[int] = []

        async def send_wrapper(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message.get("status", 0)))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            code = status[0] if status else 500
            route = route_of(scope)
            tags = {"http.status_code": str(code)}
            if route:
                tags["http.route"] = route
            api.capture_exception(
                exc,
                mechanism={"type": "asgi", "handled": False},
                tags=tags,
                contexts={"response": {"status_code": code}, "route": {"path": route}},
            )
            raise
        finally:
            current_scope.reset(token)
