"""What is attached to every event: user, tags, breadcrumbs, request.

A capture only takes references (tags and user are replaced, never mutated, on write;
breadcrumbs are immutable tuples), so reading the scope costs the calling thread almost
nothing. Middleware forks the scope per request through a ``ContextVar``, so
``set_user``/``set_tag`` inside a request handler stay with that request.
"""

from __future__ import annotations

import time
from collections import deque
from contextvars import ContextVar
from typing import Any, NamedTuple

USER_KEYS = ("id", "email", "username", "ip_address")


class Breadcrumb(NamedTuple):
    timestamp: float
    category: str | None
    message: str | None
    level: str
    type: str
    data: dict[str, Any] | None


class Scope:
    def __init__(self, max_breadcrumbs: int = 100) -> None:
        self.user: dict[str, str] | None = None
        self.tags: dict[str, str] = {}
        self.breadcrumbs: deque[Breadcrumb] = deque(maxlen=max_breadcrumbs)
        self.request: dict[str, Any] | None = None

    def fork(self) -> Scope:
        child = Scope.__new__(Scope)
        child.user = self.user
        child.tags = self.tags
        child.breadcrumbs = deque(self.breadcrumbs, maxlen=self.breadcrumbs.maxlen)
        child.request = None
        return child

    def set_user(self, user: dict[str, Any] | None) -> None:
        if user is None:
            self.user = None
            return
        self.user = {k: str(user[k]) for k in USER_KEYS if user.get(k) is not None}

    def set_tag(self, key: str, value: Any) -> None:
        tags = dict(self.tags)
        tags[str(key)] = str(value)
        self.tags = tags

    def add_breadcrumb(
        self,
        message: str | None = None,
        category: str | None = None,
        level: str = "info",
        type: str = "default",
        data: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        self.breadcrumbs.append(
            Breadcrumb(
                time.time() if timestamp is None else timestamp,
                category,
                message,
                level,
                type,
                dict(data) if data else None,
            )
        )


_global_scope = Scope()
current_scope: ContextVar[Scope] = ContextVar("errorstream_scope")


def get_scope() -> Scope:
    return current_scope.get(_global_scope)


def reset_global_scope(max_breadcrumbs: int) -> None:
    global _global_scope
    _global_scope = Scope(max_breadcrumbs)
