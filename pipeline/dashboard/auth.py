"""Authentication, sessions, CSRF and security headers of the query API and the dashboard.

Pure helpers (``Credentials``, ``Sessions``, ``check_request``) plus one aiohttp middleware
(``middleware``) that applies them; docs/dashboard.md describes the rules:

- a request is authenticated by ``Authorization: Bearer <api_token>``, by HTTP basic auth
  with ``http_auth_user`` / ``http_auth_password``, or by the session cookie the dashboard's
  login sets; every comparison is constant-time. With neither a token nor a password
  configured the API is open (allowed on loopback only: ``settings.check_api_bind``).
- ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json`` and the login page are open.
- every request other than GET / HEAD / OPTIONS (an action) is refused when it comes from
  another origin (``Origin`` or ``Sec-Fetch-Site``), and, when it carries the session
  cookie, unless its ``X-CSRF-Token`` header equals the token bound to that session. API
  clients authenticating with a bearer token or basic auth and no cookie are exempt from
  the token. With authentication off, the Host header must name a loopback address (a
  DNS-rebinding page cannot reach the open API).
- every response gets Content-Security-Policy ``default-src 'self'``,
  X-Content-Type-Options ``nosniff``, X-Frame-Options ``DENY`` and Referrer-Policy
  ``no-referrer``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from pipeline.settings import LOOPBACK_HOSTS

SESSION_COOKIE = "errorstream_session"
CSRF_COOKIE = "errorstream_csrf"
CSRF_HEADER = "X-CSRF-Token"
USER_KEY = "errorstream_user"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/dashboard/login",
        "/dashboard/session",
        "/dashboard/static/login.js",
        "/dashboard/static/style.css",
        "/favicon.ico",
    }
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ANONYMOUS = "anonymous"
TOKEN_USER = "token"


class AuthError(Exception):
    """A refused request: ``status`` 401 (who are you) or 403 (not like this)."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # the label of errorstream_api_requests_refused_total


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class Credentials:
    """What the API accepts; ``enabled`` is False when neither a token nor a password is set."""

    token: str = ""
    user: str = "admin"
    password: str = ""

    @classmethod
    def from_settings(cls, settings) -> Credentials:
        return cls(settings.api_token, settings.http_auth_user, settings.http_auth_password)

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.password)

    def check_token(self, token: str) -> str | None:
        """The user a bearer token stands for, or None."""
        if self.token and token and _eq(token, self.token):
            return TOKEN_USER
        return None

    def check_password(self, user: str, password: str) -> str | None:
        """``user`` when user and password are right, else None (both always compared)."""
        if not self.password:
            return None
        ok_user = _eq(user, self.user)
        ok_password = _eq(password, self.password)
        return user if ok_user and ok_password else None

    def check_header(self, header: str) -> str | None:
        """The user of an Authorization header (Bearer or Basic); AuthError when it is
        present and wrong, None when it is absent."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            user = self.check_token(value.strip())
        elif scheme == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise AuthError(
                    401, "malformed basic authorization header", "credentials"
                ) from None
            name, sep, password = decoded.partition(":")
            user = self.check_password(name, password) if sep else None
        else:
            raise AuthError(401, f"unsupported authorization scheme {scheme!r}", "credentials")
        if user is None:
            raise AuthError(401, "wrong credentials", "credentials")
        return user


class Sessions:
    """Stateless signed session cookies: ``<user b64>.<expiry>.<hmac>``; the CSRF token of
    a session is an HMAC of its cookie. The key is random per process, so a restart ends
    every session (the dashboard asks to log in again)."""

    def __init__(self, key: bytes | None = None, lifetime: float = SESSION_SECONDS) -> None:
        self.key = key or os.urandom(32)
        self.lifetime = lifetime

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, user: str, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + self.lifetime)
        name = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
        body = f"{name}.{expiry}"
        return f"{body}.{self._sign('session|' + body)}"

    def user(self, cookie: str, now: float | None = None) -> str | None:
        """The user of a valid, unexpired session cookie, else None."""
        name, _, rest = cookie.partition(".")
        expiry, _, signature = rest.partition(".")
        if not (name and expiry.isdigit() and signature):
            return None
        if not _eq(signature, self._sign(f"session|{name}.{expiry}")):
            return None
        if int(expiry) < (time.time() if now is None else now):
            return None
        try:
            return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    def csrf_token(self, cookie: str) -> str:
        return self._sign("csrf|" + cookie)


def _host_name(host: str) -> str:
    """``127.0.0.1:6066`` → ``127.0.0.1``; ``[::1]:6066`` → ``::1``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def check_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    credentials: Credentials,
    sessions: Sessions,
) -> str:
    """Authenticate one request and apply the CSRF rules. Returns the user name
    (``anonymous`` when authentication is off); raises AuthError otherwise."""
    if not credentials.enabled and _host_name(headers.get("Host", "")) not in LOOPBACK_HOSTS:
        raise AuthError(403, "authentication is off: only a loopback Host is served", "host")
    unsafe = method.upper() not in SAFE_METHODS
    if unsafe:
        origin = headers.get("Origin", "")
        if origin and origin != "null" and urlsplit(origin).netloc != headers.get("Host", ""):
            raise AuthError(403, "cross-origin request refused", "cross_origin")
        if origin == "null" or headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
            raise AuthError(403, "cross-site request refused", "cross_origin")
    cookie = cookies.get(SESSION_COOKIE, "")
    session_user = sessions.user(cookie) if cookie else None
    header_user = credentials.check_header(headers.get("Authorization", ""))
    if unsafe and session_user is not None:
        sent = headers.get(CSRF_HEADER, "")
        if not sent or not _eq(sent, sessions.csrf_token(cookie)):
            raise AuthError(403, f"missing or wrong {CSRF_HEADER} header", "csrf")
    user = header_user or session_user
    if user is not None:
        return user
    if path in OPEN_PATHS or not credentials.enabled:
        return ANONYMOUS
    raise AuthError(401, "authentication required", "unauthenticated")


def is_page(path: str) -> bool:
    """A dashboard page a browser navigates to (redirected to the login page when not
    authenticated) rather than a resource answered with 401."""
    return path == "/" or (
        path.startswith("/dashboard") and not path.startswith("/dashboard/static/")
    )


def middleware(credentials: Credentials, sessions: Sessions, metrics=None):
    @web.middleware
    async def auth(request: web.Request, handler):
        try:
            request[USER_KEY] = check_request(
                request.method,
                request.path,
                request.headers,
                request.cookies,
                credentials,
                sessions,
            )
        except AuthError as exc:
            if metrics is not None:
                metrics.api_refused.labels(exc.reason).inc()
            if exc.status == 401 and request.method == "GET" and is_page(request.path):
                response: web.StreamResponse = web.HTTPFound("/dashboard/login")
            else:
                response = web.Response(
                    body=orjson.dumps({"error": str(exc)}),
                    status=exc.status,
                    content_type="application/json",
                )
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = 'Bearer realm="errorstream"'
            response.headers.update(SECURITY_HEADERS)
            return response
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and errors raised by handlers
            exc.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    return auth
