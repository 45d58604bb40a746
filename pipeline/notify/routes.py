"""Notification routes: where alerts go, and which alerts each route takes.

Routes live in their own TOML or YAML file (setting ``notify_routes_file``), read and
validated once when the settings load; every error names the file, the line, the route and
the key. A route is one destination (``channel`` = ``webhook``, ``slack`` or ``email``), a
filter, and its digest window. Secrets (``secret``, ``url``, ``password``) may be written in
the file or named by environment variable with the ``_env`` suffix (``password_env =
"SMTP_PASSWORD"``); ``masked()`` hides them for ``errorstream config show``.

Filters: each of ``service``, ``environment``, ``kind``, ``level``, ``category`` and
``priority`` is a list of accepted values (shell-style patterns such as ``checkout-*``
allowed); an empty or absent list accepts everything; all listed fields must match. An alert
that lacks a filtered field does not match that filter, except ``priority``: an alert without
one counts as its derived priority (``alert_priority``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

CHANNELS = ("webhook", "slack", "email")
FILTER_KEYS = ("service", "environment", "kind", "level", "category", "priority")
PRIORITIES = ("high", "medium", "low")
MASK = "***"


class RoutesError(ValueError):
    """A routes file is missing or invalid; the message names the file, line and key."""


def alert_priority(alert: Mapping[str, Any]) -> str:
    """The alert's ``priority`` when it carries a known one; otherwise derived:
    kind ``critical`` or ``incident``, or level ``fatal`` → ``high``; level ``error`` or no
    level (service-level alerts) → ``medium``; any other level → ``low``."""
    given = alert.get("priority")
    if isinstance(given, str) and given.lower() in PRIORITIES:
        return given.lower()
    level = str(alert.get("level") or "error").lower()
    if alert.get("kind") in ("critical", "incident") or level == "fatal":
        return "high"
    return "medium" if level == "error" else "low"


@dataclass(frozen=True)
class RouteFilter:
    service: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    level: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()

    def matches(self, alert: Mapping[str, Any]) -> bool:
        for key in FILTER_KEYS:
            accepted: tuple[str, ...] = getattr(self, key)
            if not accepted:
                continue
            value = alert_priority(alert) if key == "priority" else alert.get(key)
            if not isinstance(value, str) or not any(fnmatchcase(value, p) for p in accepted):
                return False
        return True

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(getattr(self, k)) for k in FILTER_KEYS if getattr(self, k)}


@dataclass(frozen=True)
class Route:
    name: str
    channel: str
    match: RouteFilter = field(default_factory=RouteFilter)
    digest_window: float = 60.0  # seconds; 0 = every alert is sent on its own
    url: str = ""  # webhook, slack
    secret: str = ""  # webhook: HMAC key; empty = unsigned
    smtp_host: str = ""
    smtp_port: int = 0
    starttls: bool = False
    smtp_ssl: bool = False
    smtp_ca_file: str = ""  # CA bundle for a server with a private CA; empty = system CAs
    username: str = ""
    password: str = ""
    mail_from: str = ""
    mail_to: tuple[str, ...] = ()

    def masked(self) -> dict[str, Any]:
        """The route as configured, secrets replaced by ``***``."""
        out: dict[str, Any] = {"name": self.name, "channel": self.channel}
        if self.match.as_dict():
            out["match"] = self.match.as_dict()
        out["digest_window"] = self.digest_window
        if self.channel in ("webhook", "slack"):
            out["url"] = _mask_url(self.url)
            if self.channel == "webhook":
                out["secret"] = MASK if self.secret else ""
        else:
            out.update(
                smtp_host=self.smtp_host,
                smtp_port=self.smtp_port,
                starttls=self.starttls,
                smtp_ssl=self.smtp_ssl,
                smtp_ca_file=self.smtp_ca_file,
                username=self.username,
                password=MASK if self.password else "",
                mail_from=self.mail_from,
                mail_to=list(self.mail_to),
            )
        return out


def _mask_url(url: str) -> str:
    """Scheme and host stay; path, query and user info (where webhook tokens live) do not."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/{MASK}" if "/" in rest or "@" in rest else url


# -- loading -----------------------------------------------------------------------------

_COMMON = {"name", "channel", "match", "digest_window"}
_KEYS = {
    "webhook": _COMMON | {"url", "url_env", "secret", "secret_env"},
    "slack": _COMMON | {"url", "url_env"},
    "email": _COMMON
    | {
        "smtp_host",
        "smtp_port",
        "starttls",
        "smtp_ssl",
        "smtp_ca_file",
        "username",
        "password",
        "password_env",
        "from",
        "to",
    },
}


class _Lines:
    """Line numbers of routes and their keys in the file's text, for error messages."""

    def __init__(self, text: str, yaml_file: bool) -> None:
        self.routes: list[int] = []
        self.keys: list[dict[str, int]] = []
        if yaml_file:
            self._from_yaml(text)
        else:
            self._from_toml(text)

    def _from_toml(self, text: str) -> None:
        header = re.compile(r"^\s*\[\[\s*routes\s*\]\]")
        key = re.compile(r"^\s*([A-Za-z0-9_\"'-]+)\s*=")
        for number, line in enumerate(text.splitlines(), start=1):
            if header.match(line):
                self.routes.append(number)
                self.keys.append({})
            elif self.keys and (m := key.match(line)):
                self.keys[-1].setdefault(m.group(1).strip("\"'"), number)

    def _from_yaml(self, text: str) -> None:
        import yaml

        try:
            root = yaml.compose(text)
        except yaml.YAMLError:
            return
        if not isinstance(root, yaml.MappingNode):
            return
        for k, v in root.value:
            if k.value == "routes" and isinstance(v, yaml.SequenceNode):
                for item in v.value:
                    self.routes.append(item.start_mark.line + 1)
                    keys: dict[str, int] = {}
                    if isinstance(item, yaml.MappingNode):
                        for rk, rv in item.value:
                            keys.setdefault(str(rk.value), rk.start_mark.line + 1)
                            if isinstance(rv, yaml.MappingNode):
                                for mk, _ in rv.value:
                                    keys.setdefault(str(mk.value), mk.start_mark.line + 1)
                    self.keys.append(keys)

    def of(self, index: int, key: str | None = None) -> int | None:
        if index >= len(self.routes):
            return None
        return self.keys[index].get(key, self.routes[index]) if key else self.routes[index]


def load_routes(
    path: str | Path, env: Mapping[str, str], default_window: float = 60.0
) -> tuple[Route, ...]:
    """Parse and validate a routes file; ``env`` resolves the ``*_env`` keys and
    ``default_window`` is the digest window of routes that set none."""
    p = Path(path)
    if not p.is_file():
        raise RoutesError(f"{p}: not found")
    text = p.read_text(encoding="utf-8")
    yaml_file = p.suffix in (".yaml", ".yml")
    try:
        if yaml_file:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # parse errors carry the line in their message
        raise RoutesError(f"{p}: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"routes"}:
        extra = sorted(set(data) - {"routes"}) if isinstance(data, dict) else []
        raise RoutesError(f"{p}: expected only a 'routes' list at the top level, got {extra}")
    items = data.get("routes") or []
    if not isinstance(items, list):
        raise RoutesError(f"{p}: 'routes' must be a list of tables")
    lines = _Lines(text, yaml_file)
    routes: list[Route] = []
    for i, item in enumerate(items):

        def fail(message: str, key: str | None = None, i: int = i, item: Any = item) -> None:
            line = lines.of(i, key)
            where = f"{p}:{line}" if line else str(p)
            name = item.get("name") if isinstance(item, dict) else None
            label = f"routes[{i}]" + (f" ({name})" if name else "")
            raise RoutesError(f"{where}: {label}: {key + ': ' if key else ''}{message}")

        if not isinstance(item, dict):
            fail("expected a table")
        routes.append(_route(item, env, default_window, fail))
    names = [r.name for r in routes]
    for i, name in enumerate(names):
        if name in names[:i]:
            line = lines.of(i, "name")
            raise RoutesError(f"{p}:{line}: routes[{i}]: name: {name!r} is used twice")
    return tuple(routes)


def _route(item: dict[str, Any], env: Mapping[str, str], default_window: float, fail: Any) -> Route:
    name = item.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        fail("required: letters, digits, '.', '_' or '-'", "name")
    channel = item.get("channel")
    if channel not in CHANNELS:
        fail(f"must be one of {', '.join(CHANNELS)}, got {channel!r}", "channel")
    for key in item:
        if key not in _KEYS[channel]:
            fail(f"unknown key for a {channel} route", key)

    def text(key: str, required: bool = False) -> str:
        value = item.get(key, "")
        if f"{key}_env" in item:
            var = item[f"{key}_env"]
            if not isinstance(var, str) or var not in env:
                fail(f"environment variable {var!r} is not set", f"{key}_env")
            value = env[var]
        if not isinstance(value, str):
            fail(f"expected a string, got {value!r}", key)
        if required and not value:
            fail(f"required for a {channel} route", key)
        return value

    def flag(key: str) -> bool:
        value = item.get(key, False)
        if not isinstance(value, bool):
            fail(f"expected true or false, got {value!r}", key)
        return value

    window = item.get("digest_window", default_window)
    if isinstance(window, bool) or not isinstance(window, int | float) or window < 0:
        fail(f"expected seconds >= 0, got {window!r}", "digest_window")
    match = item.get("match") or {}
    if not isinstance(match, dict):
        fail("expected a table of filters", "match")
    filters: dict[str, tuple[str, ...]] = {}
    for key, value in match.items():
        if key not in FILTER_KEYS:
            fail(f"unknown filter; filters are {', '.join(FILTER_KEYS)}", key)
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            fail(f"expected a list of strings, got {value!r}", key)
        if key == "priority" and (bad := [v for v in values if v not in PRIORITIES]):
            fail(f"priorities are {', '.join(PRIORITIES)}, got {bad}", key)
        filters[key] = tuple(values)
    route = Route(
        name=name, channel=channel, match=RouteFilter(**filters), digest_window=float(window)
    )
    if channel in ("webhook", "slack"):
        url = text("url", required=True)
        if not url.startswith(("http://", "https://")):
            fail("expected an http:// or https:// URL", "url")
        secret = text("secret") if channel == "webhook" else ""
        return _replace(route, url=url, secret=secret)
    port = item.get("smtp_port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        fail(f"expected a port number, got {port!r}", "smtp_port")
    starttls, smtp_ssl = flag("starttls"), flag("smtp_ssl")
    if starttls and smtp_ssl:
        fail("starttls and smtp_ssl exclude each other (smtp_ssl = TLS from the start)", "smtp_ssl")
    to = item.get("to")
    to = [to] if isinstance(to, str) else to
    if not to or not isinstance(to, list) or not all(isinstance(a, str) and "@" in a for a in to):
        fail("expected a list of e-mail addresses", "to")
    mail_from = text("from", required=True)
    if "@" not in mail_from:
        fail(f"expected an e-mail address, got {mail_from!r}", "from")
    ca_file = text("smtp_ca_file")
    if ca_file and not Path(ca_file).is_file():
        fail(f"{ca_file} not found", "smtp_ca_file")
    if ca_file and not (starttls or smtp_ssl):
        fail("a CA file needs starttls or smtp_ssl", "smtp_ca_file")
    username, password = text("username"), text("password")
    if password and not username:
        fail("a password needs a username", "password")
    return _replace(
        route,
        smtp_host=text("smtp_host", required=True),
        smtp_port=port or (465 if smtp_ssl else 587 if starttls else 25),
        starttls=starttls,
        smtp_ssl=smtp_ssl,
        smtp_ca_file=ca_file,
        username=username,
        password=password,
        mail_from=mail_from,
        mail_to=tuple(to),
    )


def _replace(route: Route, **changes: Any) -> Route:
    from dataclasses import replace

    return replace(route, **changes)
