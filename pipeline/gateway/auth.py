"""Who may send: DSN public keys per project, from ``gateway_keys``. Pure.

    gateway_keys = "1=3f2a...,9be1...; 2=77c0..."     several active keys per project (rotation)

The key comes from ``X-Sentry-Auth: Sentry sentry_key=...`` (or ``Authorization: Sentry ...``),
else the ``sentry_key`` query parameter, else the envelope header's ``dsn``. Keys are compared
with ``hmac.compare_digest`` against every key of the project (no early exit on a match).

    no key -> 401 missing   a key the project does not have -> 401 bad   disabled project -> 403
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_KEY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_PROJECT = re.compile(r"^[0-9]{1,19}$")


class AuthError(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    out = []
    for part in re.split(r"[;\n]", text):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{what}: expected `project=value`, got {part!r}")
        out.append((name.strip(), value.strip()))
    return out


def parse_keys(text: str) -> dict[str, tuple[str, ...]]:
    """``"1=a,b; 2=c"`` -> {"1": ("a", "b"), "2": ("c",)}. Raises ValueError naming the
    entry."""
    keys: dict[str, list[str]] = {}
    for project, value in _pairs(text, "gateway_keys"):
        if not _PROJECT.match(project):
            raise ValueError(f"gateway_keys: project ids are numbers, got {project!r}")
        for key in (k.strip() for k in value.split(",")):
            if not _KEY.match(key):
                raise ValueError(
                    f"gateway_keys: project {project}: a key is 8-128 letters, digits, - or _"
                )
            keys.setdefault(project, []).append(key)
    return {p: tuple(k) for p, k in keys.items()}


def parse_projects(text: str) -> dict[str, str]:
    projects = {}
    for project, service in _pairs(text, "gateway_projects"):
        if not _PROJECT.match(project) or not service:
            raise ValueError(f"gateway_projects: expected `project_id=service`, got {project!r}")
        projects[project] = service
    return projects


def parse_project_list(text: str) -> frozenset[str]:
    ids = frozenset(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in ids if not _PROJECT.match(p)]
    if bad:
        raise ValueError(f"gateway_disabled_projects: not a project id: {bad[0]!r}")
    return ids


def key_from_auth_header(value: str) -> str | None:
    """``Sentry sentry_version=7, sentry_key=abc, sentry_client=...`` -> ``abc``."""
    value = value.strip()
    if value[:7].lower() == "sentry ":
        value = value[7:]
    for part in value.split(","):
        name, _, v = part.strip().partition("=")
        if name.strip() == "sentry_key":
            return v.strip() or None
    return None


def key_from_dsn(dsn: str) -> tuple[str | None, str | None]:
    """(public key, project id) of a DSN ``https://key[:secret]@host/[path/]project``."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return None, None
    key = parts.username or None
    project = parts.path.rstrip("/").rsplit("/", 1)[-1] or None
    return key, project


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, tuple[str, ...]]
    disabled: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings) -> Keyring:
        return cls(
            parse_keys(settings.gateway_keys),
            parse_project_list(settings.gateway_disabled_projects),
        )

    @staticmethod
    def _matches(candidate: str, keys: tuple[str, ...]) -> bool:
        given = candidate.encode()
        found = False
        for key in keys:  # every key compared: the time does not tell which one matched
            found |= hmac.compare_digest(given, key.encode())
        return found

    def check(self, project: str, key: str | None) -> None:
        """Raise ``AuthError`` unless ``key`` is an active key of ``project``."""
        if not key:
            raise AuthError(401, "auth_missing", "missing DSN key (X-Sentry-Auth or sentry_key)")
        if not self._matches(key, self.keys.get(project, ())):
            raise AuthError(401, "auth_invalid", "invalid DSN key for this project")
        if project in self.disabled:
            raise AuthError(403, "project_disabled", "project is disabled")

    def project_of(self, key: str | None) -> str:
        """The project a key belongs to (for ``/v1/events``, which names no project)."""
        if not key:
            raise AuthError(
                401, "auth_missing", "missing key (X-Sentry-Auth, Bearer or sentry_key)"
            )
        owner = None
        for project, keys in self.keys.items():  # every project looked at
            if self._matches(key, keys) and owner is None:
                owner = project
        if owner is None:
            raise AuthError(401, "auth_invalid", "invalid key")
        if owner in self.disabled:
            raise AuthError(403, "project_disabled", "project is disabled")
        return owner
