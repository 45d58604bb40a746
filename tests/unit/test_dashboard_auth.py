"""Authentication, sessions and CSRF of the query API and the dashboard (pure rules, then
the middleware in an aiohttp app without storage)."""

from __future__ import annotations

import base64

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pipeline import dashboard
from pipeline.dashboard.auth import (
    CSRF_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    USER_KEY,
    AuthError,
    Credentials,
    Sessions,
    check_request,
)
from pipeline.metrics import Metrics
from pipeline.settings import ConfigError, check_api_bind, load_settings

HOST = {"Host": "127.0.0.1:6066"}
CREDS = Credentials(token="tok-123", user="alice", password="pw-456")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def check(method="GET", path="/api/top", headers=None, cookies=None, creds=CREDS, sessions=None):
    return check_request(
        method, path, {**HOST, **(headers or {})}, cookies or {}, creds, sessions or Sessions()
    )


# -- credentials ---------------------------------------------------------------------------
def test_bearer_and_basic_credentials():
    assert check(headers={"Authorization": "Bearer tok-123"}) == "token"
    assert check(headers={"Authorization": basic("alice", "pw-456")}) == "alice"
    for header in ("Bearer tok-12", "Bearer ", basic("alice", "pw"), basic("bob", "pw-456")):
        with pytest.raises(AuthError) as err:
            check(headers={"Authorization": header})
        assert err.value.status == 401
    with pytest.raises(AuthError, match="malformed"):
        check(headers={"Authorization": "Basic %%%"})
    with pytest.raises(AuthError, match="unsupported"):
        check(headers={"Authorization": "Digest abc"})


def test_no_credentials_is_401_except_open_paths():
    with pytest.raises(AuthError) as err:
        check()
    assert err.value.status == 401
    with pytest.raises(AuthError):
        check(path="/")
    for path in ("/healthz", "/readyz", "/metrics", "/dashboard/login"):
        assert check(path=path) == "anonymous"


def test_token_only_has_no_basic_auth():
    creds = Credentials(token="t")
    with pytest.raises(AuthError):
        check(headers={"Authorization": basic("admin", "")}, creds=creds)
    assert check(headers={"Authorization": "Bearer t"}, creds=creds) == "token"


def test_auth_off_is_anonymous_on_a_loopback_host_only():
    off = Credentials()
    assert not off.enabled
    assert check(creds=off) == "anonymous"
    assert check(creds=off, headers={"Host": "localhost:6066"}) == "anonymous"
    assert check(creds=off, headers={"Host": "[::1]:6066"}) == "anonymous"
    with pytest.raises(AuthError) as err:  # DNS rebinding: attacker.example resolving to us
        check(creds=off, headers={"Host": "attacker.example:6066"})
    assert err.value.status == 403


# -- sessions --------------------------------------------------------------------------------
def test_session_cookie_round_trip_expiry_and_tampering():
    sessions = Sessions(key=b"k" * 32, lifetime=60)
    cookie = sessions.issue("alice", now=1000)
    assert sessions.user(cookie, now=1030) == "alice"
    assert sessions.user(cookie, now=1061) is None  # expired
    name, expiry, sig = cookie.split(".")
    assert sessions.user(f"{name}.{int(expiry) + 999}.{sig}", now=1030) is None
    forged = base64.urlsafe_b64encode(b"root").decode().rstrip("=")
    assert sessions.user(f"{forged}.{expiry}.{sig}", now=1030) is None
    assert Sessions(key=b"x" * 32).user(cookie, now=1030) is None  # another process's key
    assert sessions.user("garbage", now=1030) is None
    assert sessions.csrf_token(cookie) != sessions.csrf_token(sessions.issue("bob", now=1000))


def test_session_cookie_authenticates():
    sessions = Sessions()
    cookie = sessions.issue("alice")
    assert check(cookies={SESSION_COOKIE: cookie}, sessions=sessions) == "alice"
    with pytest.raises(AuthError):  # an invalid cookie is no session
        check(cookies={SESSION_COOKIE: cookie + "x"}, sessions=sessions)


# -- CSRF --------------------------------------------------------------------------------------
def test_post_with_session_cookie_needs_the_csrf_token():
    sessions = Sessions()
    cookie = sessions.issue("alice")
    cookies = {SESSION_COOKIE: cookie}
    with pytest.raises(AuthError) as err:
        check("POST", "/api/issues/x/actions", cookies=cookies, sessions=sessions)
    assert err.value.status == 403 and "X-CSRF-Token" in str(err.value)
    with pytest.raises(AuthError):
        check(
            "POST",
            "/api/issues/x/actions",
            headers={"X-CSRF-Token": "0" * 64},
            cookies=cookies,
            sessions=sessions,
        )
    token = sessions.csrf_token(cookie)
    assert (
        check(
            "POST",
            "/api/issues/x/actions",
            headers={"X-CSRF-Token": token},
            cookies=cookies,
            sessions=sessions,
        )
        == "alice"
    )
    # a valid bearer token does not lift the rule when the session cookie is sent too
    with pytest.raises(AuthError):
        check(
            "DELETE",
            "/dashboard/session",
            headers={"Authorization": "Bearer tok-123"},
            cookies=cookies,
            sessions=sessions,
        )


def test_api_clients_without_cookie_are_exempt_from_the_token():
    for header in ("Bearer tok-123", basic("alice", "pw-456")):
        assert check("POST", "/api/issues/x/actions", headers={"Authorization": header})


def test_cross_origin_actions_are_refused():
    auth = {"Authorization": "Bearer tok-123"}
    for extra in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        with pytest.raises(AuthError) as err:
            check("POST", "/api/issues/x/actions", headers={**auth, **extra})
        assert err.value.status == 403
    ok = {**auth, "Origin": "http://127.0.0.1:6066", "Sec-Fetch-Site": "same-origin"}
    assert check("POST", "/api/issues/x/actions", headers=ok) == "token"
    # a GET is not an action: a cross-site GET only needs credentials
    assert check("GET", "/api/top", headers={**auth, "Sec-Fetch-Site": "cross-site"})


def test_auth_off_still_guards_actions_from_other_sites():
    off = Credentials()
    assert check("POST", "/api/issues/x/actions", creds=off) == "anonymous"  # CLI on loopback
    with pytest.raises(AuthError):
        check("POST", "/api/issues/x/actions", creds=off, headers={"Origin": "http://evil.example"})


# -- bind check and settings -------------------------------------------------------------------
def test_check_api_bind_refuses_open_api_off_loopback():
    check_api_bind(load_settings(env={}))
    with pytest.raises(ConfigError, match="web_host.*api_token or http_auth_password"):
        check_api_bind(load_settings(env={}, overrides={"web_host": "0.0.0.0"}))
    check_api_bind(load_settings(env={}, overrides={"web_host": "0.0.0.0", "api_token": "t"}))
    check_api_bind(
        load_settings(env={}, overrides={"web_host": "0.0.0.0", "http_auth_password": "p"})
    )


def test_http_auth_settings_validated_and_masked():
    with pytest.raises(ConfigError, match="http_auth_user"):
        load_settings(env={}, overrides={"http_auth_user": "", "http_auth_password": "p"})
    with pytest.raises(ConfigError, match="http_auth_user"):
        load_settings(env={}, overrides={"http_auth_user": "a:b"})
    s = load_settings(env={"ERRORSTREAM_HTTP_AUTH_PASSWORD": "hunter2"})
    assert "hunter2" not in str(s.masked())


# -- the middleware in an app ------------------------------------------------------------------
async def make_client(metrics=None, **overrides) -> TestClient:
    settings = load_settings(env={}, overrides=overrides)
    app = web.Application()

    async def top(request):
        return web.json_response({"user": request[USER_KEY]})

    async def action(request):
        return web.json_response({"user": request[USER_KEY]}, status=202)

    async def healthz(request):
        return web.json_response({"ok": True})

    app.router.add_get("/api/top", top)
    app.router.add_post("/api/issues/{fp}/actions", action)
    app.router.add_get("/healthz", healthz)
    dashboard.add_routes(app, settings, backend=None, metrics=metrics)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_middleware_401_login_redirect_session_and_csrf():
    metrics = Metrics()
    client = await make_client(metrics, http_auth_user="alice", http_auth_password="pw-456")
    try:
        r = await client.get("/api/top")
        assert r.status == 401 and "error" in await r.json()
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        for name, value in SECURITY_HEADERS.items():
            assert r.headers[name] == value
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        r = await client.get("/", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/dashboard/login"
        r = await client.get("/dashboard/login")
        assert r.status == 200 and "<form" in await r.text()
        assert (await client.get("/healthz")).status == 200

        r = await client.post("/dashboard/session", json={"user": "alice", "password": "nope"})
        assert r.status == 401
        r = await client.post("/dashboard/session", json={"user": "alice", "password": "pw-456"})
        assert r.status == 200 and (await r.json())["user"] == "alice"
        assert "HttpOnly" in r.headers.getall("Set-Cookie")[0]
        csrf = client.session.cookie_jar.filter_cookies(client.make_url("/"))[CSRF_COOKIE].value
        r = await client.get("/api/top")  # the cookie session
        assert r.status == 200 and (await r.json())["user"] == "alice"
        r = await client.get("/")
        assert r.status == 200 and 'src="/dashboard/static/app.js"' in await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        r = await client.get("/dashboard/static/app.js")
        assert r.status == 200 and "javascript" in r.headers["Content-Type"]

        r = await client.post("/api/issues/f/actions", json={"action": "resolve"})
        assert r.status == 403 and "CSRF" in (await r.json())["error"]
        r = await client.post(
            "/api/issues/f/actions", json={"action": "resolve"}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status == 202 and (await r.json())["user"] == "alice"

        r = await client.delete("/dashboard/session", headers={"X-CSRF-Token": csrf})
        assert r.status == 200
        assert (await client.get("/api/top")).status == 401
        refused = metrics.api_refused
        # /api/top twice and / once without credentials; one CSRF refusal
        assert refused.labels("unauthenticated")._value.get() == 3
        assert refused.labels("csrf")._value.get() == 1
        assert refused.labels("credentials")._value.get() == 0  # a wrong login is no request
    finally:
        await client.close()


async def test_middleware_auth_off_sets_an_anonymous_session_with_csrf():
    client = await make_client()
    try:
        assert (await client.get("/api/top")).status == 200
        r = await client.get("/")
        assert r.status == 200
        jar = client.session.cookie_jar.filter_cookies(client.make_url("/"))
        assert SESSION_COOKIE in jar and CSRF_COOKIE in jar
        # with the cookie the browser now sends, an action needs the token even with auth off
        r = await client.post("/api/issues/f/actions", json={})
        assert r.status == 403
        r = await client.post(
            "/api/issues/f/actions", json={}, headers={"X-CSRF-Token": jar[CSRF_COOKIE].value}
        )
        assert r.status == 202 and (await r.json())["user"] == "anonymous"
        r = await client.get("/dashboard/login", allow_redirects=False)
        assert r.status == 302  # nothing to log in to
    finally:
        await client.close()


def test_clickhouse_http_interface_shares_the_dashboard_credentials():
    from pipeline import chhttp
    from pipeline.chhttp import ClickHouseError

    s = load_settings(
        env={},
        overrides={
            "http_auth_user": "alice",
            "http_auth_password": "pw",
            "clickhouse_http_host": "0.0.0.0",  # allowed: the shared password applies
        },
    )
    assert s.clickhouse_http_credentials == ("alice", "pw")
    chhttp.check_credentials("alice", "pw", s)
    with pytest.raises(ClickHouseError):
        chhttp.check_credentials("default", "", s)
    own = load_settings(
        env={},
        overrides={
            "http_auth_password": "pw",
            "clickhouse_http_user": "reader",
            "clickhouse_http_password": "rpw",
        },
    )
    assert own.clickhouse_http_credentials == ("reader", "rpw")  # its own pair overrides
    with pytest.raises(ClickHouseError):
        chhttp.check_credentials("admin", "pw", own)
    assert load_settings(env={}).clickhouse_http_credentials == ("default", "")


def test_worker_and_api_refuse_to_start_open_off_loopback():
    import subprocess
    import sys

    for command in (["worker"], ["worker", "--role", "sink"], ["api"]):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *command],
            capture_output=True,
            text=True,
            env={
                "PATH": "/usr/bin:/bin",
                "ERRORSTREAM_WEB_HOST": "0.0.0.0",
                "ERRORSTREAM_CLICKHOUSE_URL": "http://127.0.0.1:1",
                "ERRORSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1",
            },
            timeout=60,
        )
        assert done.returncode == 2, (command, done.stderr)
        assert "configuration error: web_host: '0.0.0.0' is not loopback" in done.stderr
        assert "api_token or http_auth_password" in done.stderr
