from __future__ import annotations

import asyncio
import logging
import sys
import threading

import errorstream_sdk
import pytest
from errorstream_sdk import hooks


# -- logging ---------------------------------------------------------------------------------
@pytest.fixture
def app_logger():
    logger = logging.getLogger("unit.app")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = errorstream_sdk.ErrorstreamHandler()
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def test_logging_handler_events_and_breadcrumbs(sdk, app_logger, sent_events):
    app_logger.debug("not even a breadcrumb")
    app_logger.info("user %s logged in", "bob")
    app_logger.warning("disk at %d%%", 91)
    try:
        raise OSError("disk full")
    except OSError:
        app_logger.exception("write failed for %s", "report.csv")
    app_logger.error("plain error, token=abc123")
    exc_event, msg_event = sent_events(sdk)
    assert exc_event["message"] == "write failed for report.csv"
    assert exc_event["logger"] == "unit.app"
    assert exc_event["level"] == "error"
    [value] = exc_event["exception"]["values"]
    assert (value["type"], value["value"]) == ("OSError", "disk full")
    assert value["mechanism"] == {"type": "logging", "handled": True}
    assert [
        (c["category"], c["message"], c["level"], c["type"])
        for c in exc_event["breadcrumbs"]["values"]
    ] == [
        ("unit.app", "user bob logged in", "info", "log"),
        ("unit.app", "disk at 91%", "warning", "log"),
    ]
    assert msg_event["message"] == "plain error, token=[Filtered]"
    assert "exception" not in msg_event
    assert len(msg_event["breadcrumbs"]["values"]) == 3  # the ERROR record became one too


def test_logging_handler_ignores_sdk_and_kafka_loggers(sdk, sent_events):
    handler = errorstream_sdk.ErrorstreamHandler()
    for name in ("aiokafka.conn", "errorstream_sdk.transport", "kafka"):
        handler.handle(
            logging.LogRecord(name, logging.ERROR, __file__, 1, "broker down", None, None)
        )
    assert sent_events(sdk) == []
    assert sdk.snapshot()["captured"] == 0


# -- decorator / context manager -------------------------------------------------------------
def test_decorator_captures_and_reraises(sdk, sent_events):
    @errorstream_sdk.capture_errors(tags={"job": "nightly"})
    def job(x: int) -> int:
        if x:
            raise ZeroDivisionError("x was set")
        return 1

    assert job(0) == 1
    with pytest.raises(ZeroDivisionError, match="x was set"):
        job(1)
    [event] = sent_events(sdk)
    [value] = event["exception"]["values"]
    assert value["mechanism"] == {"type": "generic", "handled": False}
    assert value["stacktrace"]["frames"][-1]["function"].endswith("job")
    assert event["tags"] == {"job": "nightly"}


async def test_async_decorator_and_context_managers(sdk, sent_events):
    @errorstream_sdk.capture_errors()
    async def handler() -> None:
        await asyncio.sleep(0)
        raise KeyError("async")

    with pytest.raises(KeyError):
        await handler()
    with pytest.raises(ValueError):
        with errorstream_sdk.capture_errors(level="warning"):
            raise ValueError("sync cm")
    with pytest.raises(TypeError):
        async with errorstream_sdk.capture_errors():
            raise TypeError("async cm")
    with errorstream_sdk.capture_errors():
        pass
    events = sent_events(sdk)
    assert [(e["exception"]["values"][-1]["type"], e["level"]) for e in events] == [
        ("KeyError", "error"),
        ("ValueError", "warning"),
        ("TypeError", "error"),
    ]


def test_decorator_then_excepthook_is_one_event(sdk, sent_events, capsys):
    hooks.install_excepthooks()
    try:

        @errorstream_sdk.capture_errors()
        def main() -> None:
            raise RuntimeError("fatal")

        try:
            main()
        except RuntimeError as e:
            sys.excepthook(type(e), e, e.__traceback__)
    finally:
        _uninstall_hooks()
    assert len(sent_events(sdk)) == 1
    assert sdk.snapshot()["dropped"]["duplicate"] == 1


# -- uncaught exception hooks ------------------------------------------------------------------
_ORIG_SYS, _ORIG_THREADING = sys.excepthook, threading.excepthook


def _uninstall_hooks() -> None:
    sys.excepthook, threading.excepthook = _ORIG_SYS, _ORIG_THREADING
    hooks._installed_sys = hooks._installed_threading = None


def test_excepthook_captures_and_chains_to_previous(sdk, sent_events):
    seen = []
    sys.excepthook = lambda t, e, tb: seen.append(("sys", str(e)))
    threading.excepthook = lambda args: seen.append(("thread", str(args.exc_value)))
    try:
        hooks.install_excepthooks()
        hooks.install_excepthooks()  # idempotent: no double capture
        try:
            raise LookupError("uncaught")
        except LookupError as e:
            sys.excepthook(type(e), e, e.__traceback__)
        t = threading.Thread(target=lambda: 1 / 0, name="worker-1")
        t.start()
        t.join()
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            sys.excepthook(type(e), e, e.__traceback__)
    finally:
        _uninstall_hooks()
    assert seen == [("sys", "uncaught"), ("thread", "division by zero"), ("sys", "")]
    sys_event, thread_event = sent_events(sdk)
    assert sys_event["level"] == "fatal"
    assert sys_event["exception"]["values"][0]["mechanism"] == {
        "type": "excepthook",
        "handled": False,
    }
    assert thread_event["exception"]["values"][0]["mechanism"] == {
        "type": "threading",
        "handled": False,
    }
    assert thread_event["contexts"]["thread"] == {"name": "worker-1"}


async def test_asyncio_handler_captures_and_chains(sdk, sent_events):
    loop = asyncio.get_running_loop()
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx["message"]))
    try:
        hooks.install_asyncio_handler(loop)

        def bad_callback() -> None:
            raise ArithmeticError("in callback")

        loop.call_soon(bad_callback)
        await asyncio.sleep(0.01)
        loop.call_exception_handler({"message": "no exception here"})
    finally:
        loop.set_exception_handler(None)
    assert len(seen) == 2
    exc_event, msg_event = sent_events(sdk)
    [value] = exc_event["exception"]["values"]
    assert (value["type"], value["mechanism"]) == (
        "ArithmeticError",
        {"type": "asyncio", "handled": False},
    )
    assert msg_event["message"] == "no exception here"


# -- WSGI ---------------------------------------------------------------------------------------
def _environ(path: str = "/orders/42", query: str = "") -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "shop.example.com",
        "HTTP_AUTHORIZATION": "Bearer wsgi-secret-token",
        "HTTP_COOKIE": "session=wsgi-cookie",
        "HTTP_USER_AGENT": "test",
        "wsgi.url_scheme": "https",
        "errorstream.route": "/orders/{id}",
    }


def test_wsgi_middleware_captures_with_request_context(sdk, sent_raw, sent_events):
    def app(environ, start_response):
        errorstream_sdk.set_tag("handler", "orders")
        raise ValueError("order broken")

    wrapped = errorstream_sdk.ErrorstreamWSGIMiddleware(app)
    with pytest.raises(ValueError):
        wrapped(_environ(query="id=42&api_key=wsgi-query-secret"), lambda s, h: None)
    [(_, raw)] = sent_raw(sdk)
    for secret in (b"wsgi-secret-token", b"wsgi-cookie", b"wsgi-query-secret"):
        assert secret not in raw
    [event] = sent_events(sdk)
    assert event["request"] == {
        "method": "POST",
        "url": "https://shop.example.com/orders/42",
        "query_string": "id=42&api_key=[Filtered]",
        "headers": {
            "Host": "shop.example.com",
            "Authorization": "[Filtered]",
            "Cookie": "[Filtered]",
            "User-Agent": "test",
        },
    }
    assert event["tags"] == {
        "handler": "orders",
        "http.status_code": "500",
        "http.route": "/orders/{id}",
    }
    assert event["exception"]["values"][0]["mechanism"] == {"type": "wsgi", "handled": False}
    assert "handler" not in errorstream_sdk.api.get_scope().tags  # request scope did not leak


def test_wsgi_middleware_error_while_streaming_body(sdk, sent_events):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            yield b"part1"
            raise RuntimeError("stream broke")

        return body()

    result = errorstream_sdk.ErrorstreamWSGIMiddleware(app)(_environ(), lambda s, h, e=None: None)
    it = iter(result)
    assert next(it) == b"part1"
    with pytest.raises(RuntimeError):
        next(it)
    result.close()
    [event] = sent_events(sdk)
    assert event["tags"]["http.status_code"] == "200"
    assert event["contexts"]["response"] == {"status_code": 200}


def test_wsgi_ok_request_sends_nothing(sdk, sent_events):
    def app(environ, start_response):
        start_response("204 No Content", [])
        return [b""]

    assert list(errorstream_sdk.ErrorstreamWSGIMiddleware(app)(_environ(), lambda s, h: None)) == [
        b""
    ]
    assert sent_events(sdk) == []


# -- ASGI ---------------------------------------------------------------------------------------
class Route:
    path = "/items/{item_id}"


async def test_asgi_middleware_captures_with_request_context(sdk, sent_events, sent_raw):
    async def app(scope, receive, send):
        scope["route"] = Route()
        errorstream_sdk.set_user({"id": "u1"})
        await send({"type": "http.response.start", "status": 502, "headers": []})
        raise ConnectionError("upstream gone")

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/items/9",
        "root_path": "",
        "query_string": b"q=1&password=asgi-pw",
        "server": ("127.0.0.1", 8000),
        "headers": [
            (b"host", b"api.local"),
            (b"authorization", b"Bearer asgi-secret-tok"),
            (b"set-cookie", b"a=asgi-cookie"),
            (b"accept", b"*/*"),
        ],
    }
    sent_messages = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent_messages.append(message)

    with pytest.raises(ConnectionError):
        await errorstream_sdk.ErrorstreamASGIMiddleware(app)(scope, receive, send)
    assert sent_messages[0]["status"] == 502
    [(_, raw)] = sent_raw(sdk)
    for secret in (b"asgi-pw", b"asgi-secret-tok", b"asgi-cookie"):
        assert secret not in raw
    [event] = sent_events(sdk)
    assert event["request"] == {
        "method": "GET",
        "url": "http://api.local/items/9",
        "query_string": "q=1&password=[Filtered]",
        "headers": {
            "Host": "api.local",
            "Authorization": "[Filtered]",
            "Set-Cookie": "[Filtered]",
            "Accept": "*/*",
        },
    }
    assert event["tags"] == {"http.status_code": "502", "http.route": "/items/{item_id}"}
    assert event["user"] == {"id": "u1"}
    assert event["exception"]["values"][0]["mechanism"] == {"type": "asgi", "handled": False}
    assert errorstream_sdk.api.get_scope().user is None  # per-request scope


async def test_asgi_passes_through_lifespan_and_ok_requests(sdk, sent_events):
    calls = []

    async def app(scope, receive, send):
        calls.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})

    async def noop(*a):
        return {}

    mw = errorstream_sdk.ErrorstreamASGIMiddleware(app)
    await mw({"type": "lifespan"}, noop, noop)
    await mw({"type": "http", "path": "/", "headers": []}, noop, noop)
    assert calls == ["lifespan", "http"]
    assert sent_events(sdk) == []
