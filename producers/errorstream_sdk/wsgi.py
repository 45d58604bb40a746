"""WSGI middleware: per-request scope with the request context (method, URL without the
query string, scrubbed query string, headers, route, status); exceptions raised by the app
or while iterating its response are captured (unhandled, mechanism ``wsgi``) and re-raised.

    app.wsgi_app = ErrorstreamWSGIMiddleware(app.wsgi_app)

The route is taken from ``environ["errorstream.route"]`` when the app sets it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from errorstream_sdk import api
from errorstream_sdk.scope import Scope, current_scope, get_scope

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_request(environ: dict[str, Any]) -> dict[str, Any]:
    headers = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").title()] = str(environ[key])
    scheme = environ.get("wsgi.url_scheme", "http")
    host = (
        environ.get("HTTP_HOST")
        or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    )
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return {
        "method": environ.get("REQUEST_METHOD", "GET"),
        "url": f"{scheme}://{host}{path}",
        "query_string": environ.get("QUERY_STRING", ""),
        "headers": headers,
    }


class ErrorstreamWSGIMiddleware:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        req_scope = get_scope().fork()
        try:
            req_scope.request = wsgi_request(environ)
        except Exception:
            req_scope.request = None
        status: list[int] = []

        def start_response_wrapper(status_line: str, headers: Any, exc_info: Any = None) -> Any:
            try:
                status.append(int(status_line.split(" ", 1)[0]))
            except ValueError:
                pass
            if exc_info is None:
                return start_response(status_line, headers)
            return start_response(status_line, headers, exc_info)

        token = current_scope.set(req_scope)
        try:
            result = self.app(environ, start_response_wrapper)
        except Exception as exc:
            _capture(exc, environ, status)
            raise
        finally:
            current_scope.reset(token)
        return _ClosingIterator(result, req_scope, environ, status)


def _capture(exc: BaseException, environ: dict[str, Any], status: list[int]) -> None:
    code = status[-1] if status else 500
    route = environ.get("errorstream.route")
    tags = {"http.status_code": str(code)}
    if route:
        tags["http.route"] = str(route)
    api.capture_exception(
        exc,
        mechanism={"type": "wsgi", "handled": False},
        tags=tags,
        contexts={"response": {"status_code": code}, "route": {"path": route}},
    )


class _ClosingIterator:
    """Re-enters the request scope while the server iterates the response body."""

    def __init__(
        self, result: Iterable[bytes], scope: Scope, environ: dict[str, Any], status: list[int]
    ):
        self._result = result
        self._iter: Iterator[bytes] = iter(result)
        self._scope = scope
        self._environ = environ
        self._status = status

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        token = current_scope.set(self._scope)
        try:
            return next(self._iter)
        except StopIteration:
            raise
        except Exception as exc:
            _capture(exc, self._environ, self._status)
            raise
        finally:
            current_scope.reset(token)

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()
