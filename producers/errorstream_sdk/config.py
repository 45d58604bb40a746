"""SDK settings: one frozen object, built once by ``init()`` from arguments and
``ERRORSTREAM_*`` environment variables, validated with messages that name the key."""

from __future__ import annotations

import dataclasses
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

LEVELS = ("fatal", "error", "warning", "info", "debug")
DEFAULT_SAMPLE_RATES: dict[str, float] = {
    "fatal": 1.0,
    "error": 1.0,
    "warning": 0.5,
    "info": 0.1,
    "debug": 0.01,
}
COMPRESSIONS = ("auto", "lz4", "gzip", "none")


@dataclasses.dataclass(frozen=True)
class Settings:
    service: str
    brokers: str = "127.0.0.1:9092"
    topic: str = "errorstream-events"
    environment: str | None = None
    release: str | None = None
    sample_rates: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_SAMPLE_RATES)
    )
    # token bucket per (exception type, innermost frame location)
    rate_limit_burst: int = 10
    rate_limit_per_second: float = 1.0
    rate_limit_max_keys: int = 10_000
    queue_size: int = 10_000
    max_event_bytes: int = 256 * 1024
    max_string_length: int = 8192
    max_breadcrumbs: int = 100
    context_lines: int = 5
    include_locals: bool = False
    in_app_include: tuple[str, ...] = ()
    in_app_exclude: tuple[str, ...] = ()
    scrub_keys: tuple[str, ...] = ()
    scrub_patterns: tuple[str, ...] = ()
    dedupe: bool = True
    # delivery
    linger_ms: int = 20
    max_batch_size: int = 256 * 1024
    compression: str = "auto"
    acks: str = "all"
    enable_idempotence: bool = True
    request_timeout_ms: int = 10_000
    send_retries: int = 3
    retry_backoff_s: float = 0.2
    max_retry_backoff_s: float = 5.0
    flush_timeout_s: float = 2.0  # atexit flush deadline
    install_hooks: bool = True
    # injectable for tests: random in [0, 1) and a monotonic clock in seconds
    rng: Callable[[], float] = dataclasses.field(default=random.random, repr=False)
    clock: Callable[[], float] = dataclasses.field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        _validate(self)


# key -> (env var, parser)
def _parse_bool(key: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{key}: expected a boolean (true/false), got {raw!r}")


def _parse_int(key: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{key}: expected an integer, got {raw!r}") from None


def _parse_float(key: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"{key}: expected a number, got {raw!r}") from None


def _parse_list(key: str, raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _parse_rates(key: str, raw: str) -> dict[str, float]:
    """``"warning=0.5,info=0.1"``"""
    rates: dict[str, float] = {}
    for part in _parse_list(key, raw):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{key}: expected level=rate pairs, got {part!r}")
        rates[name.strip().lower()] = _parse_float(key, value)
    return rates


_STR = lambda key, raw: raw.strip()  # noqa: E731

ENV_VARS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "service": ("ERRORSTREAM_SERVICE", _STR),
    "brokers": ("ERRORSTREAM_BROKERS", _STR),
    "topic": ("ERRORSTREAM_TOPIC", _STR),
    "environment": ("ERRORSTREAM_ENVIRONMENT", _STR),
    "release": ("ERRORSTREAM_RELEASE", _STR),
    "sample_rates": ("ERRORSTREAM_SAMPLE_RATES", _parse_rates),
    "rate_limit_burst": ("ERRORSTREAM_RATE_LIMIT_BURST", _parse_int),
    "rate_limit_per_second": ("ERRORSTREAM_RATE_LIMIT_PER_SECOND", _parse_float),
    "queue_size": ("ERRORSTREAM_QUEUE_SIZE", _parse_int),
    "max_event_bytes": ("ERRORSTREAM_MAX_EVENT_BYTES", _parse_int),
    "max_breadcrumbs": ("ERRORSTREAM_MAX_BREADCRUMBS", _parse_int),
    "include_locals": ("ERRORSTREAM_INCLUDE_LOCALS", _parse_bool),
    "in_app_include": ("ERRORSTREAM_IN_APP_INCLUDE", _parse_list),
    "in_app_exclude": ("ERRORSTREAM_IN_APP_EXCLUDE", _parse_list),
    "scrub_keys": ("ERRORSTREAM_SCRUB_KEYS", _parse_list),
    "linger_ms": ("ERRORSTREAM_LINGER_MS", _parse_int),
    "max_batch_size": ("ERRORSTREAM_MAX_BATCH_SIZE", _parse_int),
    "compression": ("ERRORSTREAM_COMPRESSION", _STR),
    "acks": ("ERRORSTREAM_ACKS", _STR),
    "enable_idempotence": ("ERRORSTREAM_ENABLE_IDEMPOTENCE", _parse_bool),
    "flush_timeout_s": ("ERRORSTREAM_FLUSH_TIMEOUT", _parse_float),
}


def _name(key: str) -> str:
    env = ENV_VARS.get(key)
    return f"{key} ({env[0]})" if env else key


def _validate(s: Settings) -> None:
    def fail(key: str, why: str) -> None:
        raise ValueError(f"errorstream config {_name(key)}: {why}, got {getattr(s, key)!r}")

    if not isinstance(s.service, str) or not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,128}", s.service):
        fail("service", "required: 1-128 characters of A-Z a-z 0-9 _ . : / -")
    for key in ("brokers", "topic"):
        if not isinstance(getattr(s, key), str) or not getattr(s, key):
            fail(key, "must be a non-empty string")
    for part in s.brokers.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            fail("brokers", "expected comma-separated host:port")
    for key, longest in (("environment", 64), ("release", 200)):
        v = getattr(s, key)
        if v is not None and (not isinstance(v, str) or not 0 < len(v) <= longest):
            fail(key, f"must be a string of 1-{longest} characters")
    for level, rate in s.sample_rates.items():
        if level not in LEVELS:
            fail("sample_rates", f"unknown level {level!r} (levels: {', '.join(LEVELS)})")
        if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            fail("sample_rates", f"rate for {level!r} must be within [0, 1]")
    positive_ints = (
        "rate_limit_burst",
        "rate_limit_max_keys",
        "queue_size",
        "max_event_bytes",
        "max_string_length",
        "max_batch_size",
        "request_timeout_ms",
    )
    for key in positive_ints:
        v = getattr(s, key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            fail(key, "must be a positive integer")
    for key in ("max_breadcrumbs", "context_lines", "linger_ms", "send_retries"):
        v = getattr(s, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            fail(key, "must be a non-negative integer")
    for key in (
        "rate_limit_per_second",
        "retry_backoff_s",
        "max_retry_backoff_s",
        "flush_timeout_s",
    ):
        v = getattr(s, key)
        if not isinstance(v, int | float) or v < 0:
            fail(key, "must be a non-negative number")
    if s.max_event_bytes < 1024:
        fail("max_event_bytes", "must be at least 1024")
    if s.compression not in COMPRESSIONS:
        fail("compression", f"must be one of {', '.join(COMPRESSIONS)}")
    if s.acks not in ("all", "0", "1", "-1"):
        fail("acks", "must be one of all, 0, 1, -1")
    if s.enable_idempotence and s.acks not in ("all", "-1"):
        fail("enable_idempotence", "requires acks=all")
    for pattern in s.scrub_patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            fail("scrub_patterns", f"invalid regex {pattern!r}: {e}")


def settings_from(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Arguments win over environment variables, which win over defaults.

    ``sample_rates`` given either way is merged into the defaults, so
    ``sample_rates={"warning": 1.0}`` leaves the other levels as they are.
    """
    environ = os.environ if environ is None else environ
    fields = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"errorstream config: unknown option(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, (env, parse) in ENV_VARS.items():
        raw = environ.get(env)
        if raw is not None and raw.strip() != "":
            values[key] = parse(env, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "service" not in values:
        raise ValueError(
            "errorstream config service (ERRORSTREAM_SERVICE): required, pass service=... "
            "or set the environment variable"
        )
    rates = dict(DEFAULT_SAMPLE_RATES)
    given = values.get("sample_rates") or {}
    if not isinstance(given, Mapping):
        raise ValueError(f"errorstream config sample_rates: expected a mapping, got {given!r}")
    rates.update({str(k).lower(): v for k, v in given.items()})
    if "critical" in rates:  # logging's name for fatal
        rates["fatal"] = rates.pop("critical")
    values["sample_rates"] = rates
    for key in ("in_app_include", "in_app_exclude", "scrub_keys", "scrub_patterns"):
        if key in values:
            v = values[key]
            values[key] = (v,) if isinstance(v, str) else tuple(v)
    return Settings(**values)
