"""Module-level API over one process-wide client (``init()`` creates it).

Every function is a safe no-op before ``init()`` and after ``close()``.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable
from typing import Any

from errorstream_sdk.client import Client
from errorstream_sdk.config import settings_from
from errorstream_sdk.scope import get_scope, reset_global_scope
from errorstream_sdk.stats import Stats
from errorstream_sdk.transport import KafkaTransport

_client: Client | None = None


def init(*, transport_factory: Callable[..., Any] = KafkaTransport, **options: Any) -> Client:
    """Configure from ``options`` and ``ERRORSTREAM_*`` variables, start the SDK thread and
    (unless ``install_hooks=False``) chain into ``sys.excepthook``/``threading.excepthook``
    and, when called inside a running loop, that loop's exception handler.

    Raises ``ValueError`` naming the key for invalid configuration (the only place the SDK
    raises)."""
    global _client
    settings = settings_from(**options)
    if _client is not None:
        _client.close()
    reset_global_scope(settings.max_breadcrumbs)
    client = Client(settings, transport_factory).start()
    _client = client
    if settings.install_hooks:
        from errorstream_sdk import hooks

        hooks.install_excepthooks()
        try:
            hooks.install_asyncio_handler(asyncio.get_running_loop())
        except RuntimeError:
            pass
    atexit.register(_atexit_close, client)
    return client


def _atexit_close(client: Client) -> None:
    client.close(client.settings.flush_timeout_s)


def get_client() -> Client | None:
    return _client


def capture_exception(exc: Any = None, **context: Any) -> str | None:
    c = _client
    return c.capture_exception(exc, **context) if c is not None else None


def capture_message(message: str, level: str = "info", **context: Any) -> str | None:
    c = _client
    return c.capture_message(message, level, **context) if c is not None else None


def set_user(user: dict[str, Any] | None) -> None:
    """``{id, email, username, ip_address}`` (other keys ignored); None clears."""
    try:
        get_scope().set_user(user)
    except Exception:
        pass


def set_tag(key: str, value: Any) -> None:
    try:
        get_scope().set_tag(key, value)
    except Exception:
        pass


def add_breadcrumb(
    message: str | None = None,
    category: str | None = None,
    level: str = "info",
    type: str = "default",
    data: dict[str, Any] | None = None,
) -> None:
    try:
        get_scope().add_breadcrumb(message, category, level, type, data)
    except Exception:
        pass


def stats() -> dict[str, Any]:
    c = _client
    return c.snapshot() if c is not None else Stats().snapshot(0)


def flush(timeout: float = 2.0) -> bool:
    """Block until every queued event is delivered or dropped, at most ``timeout`` s."""
    c = _client
    return c.flush(timeout) if c is not None else True


async def flush_async(timeout: float = 2.0) -> bool:
    """``flush`` for async code: waits in a worker thread, not on the caller's loop."""
    return await asyncio.to_thread(flush, timeout)


def close(timeout: float | None = None) -> None:
    global _client
    c, _client = _client, None
    if c is not None:
        c.close(timeout)
