"""The one settings object of the pipeline.

Loaded once at the entry point (CLI / worker) from, in increasing precedence:
built-in defaults, an optional TOML or YAML file (``ERRORSTREAM_CONFIG`` or ``--config``),
and ``ERRORSTREAM_<KEY>`` environment variables. Validated at load time with messages
that name the key and the problem; passed down explicitly (no ``os.environ`` in stages).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "ERRORSTREAM_"
SECRET_MASK = "***"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid. The message names the key."""


def _meta(
    help: str,
    *,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    choices=None,
    derived: bool = False,
):
    return {
        "help": help,
        "derived": derived,
        "secret": secret,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
    }


@dataclass(frozen=True)
class Settings:
    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = field(
        default="127.0.0.1:9092", metadata=_meta("Kafka bootstrap servers, comma separated")
    )
    app_id: str = field(
        default="errorstream", metadata=_meta("faust app id: consumer group and table prefix")
    )
    topic_events: str = field(default="errorstream-events", metadata=_meta("ingest topic"))
    topic_by_fingerprint: str = field(
        default="errorstream-events-by-fingerprint",
        metadata=_meta("repartition topic: valid events keyed by fingerprint"),
    )
    topic_processed: str = field(
        default="errorstream-processed",
        metadata=_meta("events after the stateful stage, consumed by the ClickHouse sink"),
    )
    topic_alerts: str = field(default="errorstream-alerts", metadata=_meta("alerts topic"))
    topic_dlq: str = field(default="errorstream-dlq", metadata=_meta("dead-letter topic"))
    topic_control: str = field(
        default="errorstream-control", metadata=_meta("lifecycle commands topic")
    )
    partitions: int = field(
        default=4, metadata=_meta("partitions of the topics the pipeline creates", minimum=1)
    )
    replication_factor: int = field(
        default=1, metadata=_meta("replication factor of created topics", minimum=1)
    )
    kafka_client_id: str = field(
        default="errorstream",
        metadata=_meta("client.id prefix of every Kafka client (the role is appended)"),
    )
    kafka_session_timeout: float = field(
        default=10.0,
        metadata=_meta(
            "seconds a consumer group waits for a silent member (a killed process) before "
            "giving its partitions to the others; heartbeats go every third of it",
            minimum=3.0,
            maximum=300.0,
        ),
    )
    kafka_security_protocol: str = field(
        default="PLAINTEXT",
        metadata=_meta(
            "how every Kafka client connects",
            choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        ),
    )
    kafka_sasl_mechanism: str = field(
        default="PLAIN",
        metadata=_meta(
            "SASL mechanism (SASL_* protocols)", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        ),
    )
    kafka_sasl_username: str = field(default="", metadata=_meta("SASL user name"))
    kafka_sasl_password: str = field(default="", metadata=_meta("SASL password", secret=True))
    kafka_ssl_cafile: str = field(
        default="",
        metadata=_meta("CA bundle for SSL / SASL_SSL; empty = the system's trusted CAs"),
    )
    kafka_ready_timeout: float = field(
        default=20.0, metadata=_meta("seconds to wait for Kafka at start", minimum=0.1)
    )
    decode_batch_size: int = field(
        default=2000,
        metadata=_meta(
            "ingest messages decoded per batch (one envelope per partition)",
            minimum=1,
            maximum=100_000,
        ),
    )
    decode_linger: float = field(
        default=0.05,
        metadata=_meta(
            "seconds the decoder keeps collecting a batch after its first event (bigger "
            "envelopes for the issues agent; adds at most this to the alert latency)",
            minimum=0.0,
            maximum=5.0,
        ),
    )
    # --- ingest formats: Sentry payloads on the ingest topic (docs/ingest-formats.md) ----
    ingest_sentry_service_from: str = field(
        default="header:service, tag:service",
        metadata=_meta(
            "where a Sentry payload's service comes from, first with a value wins: "
            "`header:<kafka header>`, `tag:<tag key>`, `server_name`, `sdk.name`, "
            "comma separated; none = ingest_sentry_default_service"
        ),
    )
    ingest_sentry_default_service: str = field(
        default="sentry",
        metadata=_meta("service of a Sentry payload no ingest_sentry_service_from source names"),
    )
    ingest_sentry_scrub: int = field(
        default=1,
        metadata=_meta(
            "1 = scrub Sentry payloads from the ingest topic with the SDK's rules (as the "
            "gateway does)",
            minimum=0,
            maximum=1,
        ),
    )
    # --- worker state ------------------------------------------------------------------
    data_dir: str = field(
        default=".errorstream/data", metadata=_meta("folder for table stores and chDB data")
    )
    table_store: str = field(
        default="memory://",
        metadata=_meta("faust table store: memory:// or rocksdb:// (changelog-backed either way)"),
    )
    # --- ClickHouse --------------------------------------------------------------------
    clickhouse_url: str = field(
        default="",
        metadata=_meta(
            "ClickHouse server URL (http://user:pass@host:8123); empty = embedded chDB",
            secret=True,
        ),
    )
    clickhouse_database: str = field(default="errorstream", metadata=_meta("database name"))
    clickhouse_cluster: str = field(
        default="",
        metadata=_meta(
            "ClickHouse cluster name: migrations create Replicated tables ON CLUSTER plus "
            "Distributed tables over them (pipeline/storage/cluster.py); empty = one node"
        ),
    )
    clickhouse_path: str = field(
        default="", metadata=_meta("chDB data folder; empty = <data_dir>/clickhouse")
    )
    retention_days: int = field(default=90, metadata=_meta("TTL of raw events in days", minimum=1))
    sink_max_batch_size: int = field(
        default=20000, metadata=_meta("rows per ClickHouse insert at most", minimum=1)
    )
    sink_max_batch_time: float = field(
        default=0.5, metadata=_meta("seconds a batch may wait before it is inserted", minimum=0.001)
    )
    sink_max_inflight_inserts: int = field(
        default=1, metadata=_meta("inserts running at once", minimum=1)
    )
    sink_retry_max_backoff: float = field(
        default=10.0, metadata=_meta("seconds between insert retries at most", minimum=0.01)
    )
    sink_nice: int = field(
        default=5,
        metadata=_meta(
            "niceness the sink process adds to its own (`nice`): when the CPU is short the "
            "decoder and the agent, which make the alerts, run first and the sink catches up "
            "after; 0 = the same priority",
            minimum=0,
            maximum=19,
        ),
    )
    # --- grouping ----------------------------------------------------------------------
    grouping_version: str = field(
        default="v2",
        metadata=_meta(
            "grouping algorithm version (v2; v1 = the first one, for deployments not yet "
            'moved: docs/grouping.md, "Changing the grouping version safely")'
        ),
    )
    grouping_rules_file: str = field(
        default="", metadata=_meta("server-side fingerprint rules (TOML or YAML)")
    )
    grouping_fallback_version: str = field(
        default="",
        metadata=_meta(
            "during a grouping transition: the old version, whose fingerprint is kept as a "
            "secondary one so existing issues continue (docs/grouping.md); empty = none"
        ),
    )
    grouping_transition_until: float = field(
        default=0.0,
        metadata=_meta(
            "epoch seconds when the transition ends; 0 = no end while a fallback is set",
            minimum=0.0,
        ),
    )
    grouping_patterns: str = field(
        default="",
        metadata=_meta(
            "your own message placeholders, applied before the built-in ones: "
            "`name=regex` entries separated by newlines or ` ;; `"
        ),
    )
    # --- stream agents: windows, admission, alert rules (docs/stream-agents.md) -----------
    fingerprint_limit_per_minute: int = field(
        default=100, metadata=_meta("event bodies stored per fingerprint per minute", minimum=1)
    )
    service_limit_per_minute: int = field(
        default=10000, metadata=_meta("event bodies stored per service per minute", minimum=1)
    )
    sample_rates: str = field(
        default="", metadata=_meta("server-side sampling of bodies by level: debug=0.1,info=0.5")
    )
    window_grace: float = field(
        default=60.0,
        metadata=_meta("seconds an event may be late and still count in windows", minimum=0),
    )
    spike_window_minutes: int = field(
        default=5, metadata=_meta("spike window (hopping by one minute)", minimum=1)
    )
    spike_baseline_windows: int = field(
        default=12, metadata=_meta("previous windows averaged into the baseline", minimum=1)
    )
    spike_multiplier: float = field(
        default=5.0, metadata=_meta("spike when the window >= multiplier x baseline", minimum=1.0)
    )
    spike_min_count: int = field(
        default=20, metadata=_meta("events a fingerprint window needs to be a spike", minimum=1)
    )
    service_spike_min_count: int = field(
        default=200, metadata=_meta("events a service window needs to be a spike", minimum=1)
    )
    threshold_rules: str = field(
        default="", metadata=_meta("threshold alert rules: events>500/5m; users>50/10m")
    )
    error_rate_per_minute: int = field(
        default=1000, metadata=_meta("service error_rate: events per minute ...", minimum=1)
    )
    error_rate_minutes: int = field(
        default=5, metadata=_meta("... sustained for this many minutes", minimum=1)
    )
    alert_cooldown: float = field(
        default=1800.0,
        metadata=_meta("event-time seconds between alerts of a rule and key", minimum=0),
    )
    incident_min_issues: int = field(
        default=3,
        metadata=_meta("issues of a service spiking in one minute = one incident", minimum=2),
    )
    dedup_window_minutes: int = field(
        default=10, metadata=_meta("minutes an event_id is remembered for dedup", minimum=1)
    )
    # --- HTTP --------------------------------------------------------------------------
    web_host: str = field(default="127.0.0.1", metadata=_meta("worker HTTP bind address"))
    web_port: int = field(
        default=6066, metadata=_meta("worker HTTP port", minimum=1, maximum=65535)
    )
    api_url: str = field(
        default="", metadata=_meta("query API used by the CLI; empty = http://web_host:web_port")
    )
    api_token: str = field(
        default="",
        metadata=_meta(
            "bearer token for the query API and the dashboard (Authorization: Bearer); "
            "docs/dashboard.md",
            secret=True,
        ),
    )
    http_auth_user: str = field(
        default="admin",
        metadata=_meta(
            "user name of HTTP basic auth on the query API and the dashboard (with "
            "http_auth_password); also the ClickHouse HTTP interface's user unless "
            "clickhouse_http_password is set"
        ),
    )
    http_auth_password: str = field(
        default="",
        metadata=_meta(
            "password of http_auth_user; empty = no basic auth. With neither it nor api_token "
            "the API is open, allowed only when web_host is loopback",
            secret=True,
        ),
    )
    # --- operations ------------------------------------------------------------------
    shutdown_timeout: float = field(
        default=30.0,
        metadata=_meta(
            "seconds SIGTERM may take to drain, flush the sink and commit before a hard exit",
            minimum=1.0,
        ),
    )
    lag_interval: float = field(
        default=5.0,
        metadata=_meta("seconds between consumer-lag and table-size measurements", minimum=0.1),
    )
    # --- processes (docs/stream-agents.md, "Processes") --------------------------------
    ops_host: str = field(
        default="127.0.0.1",
        metadata=_meta("bind address of a single-role process's ops_port"),
    )
    ops_port: int = field(
        default=0,
        metadata=_meta(
            "port of a single-role process's /healthz /readyz /metrics (decoder, agent); "
            "0 = none. `errorstream worker` picks free loopback ports itself; the sink role "
            "serves them on web_port beside the query API",
            minimum=0,
            maximum=65535,
        ),
    )
    peer_urls: str = field(
        default="",
        metadata=_meta(
            "role=url,... of the other processes of this worker (set by `errorstream worker`): "
            "the sink's /readyz includes their readiness, /api/state/issues is the agent's"
        ),
    )
    restart_backoff_max: float = field(
        default=10.0,
        metadata=_meta(
            "longest wait before `errorstream worker` restarts a crashed child process",
            minimum=0.1,
        ),
    )
    # --- logs --------------------------------------------------------------------------
    log_level: str = field(
        default="INFO",
        metadata=_meta("log level", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    )
    log_format: str = field(
        default="auto", metadata=_meta("log format", choices=("auto", "json", "plain"))
    )
    # --- Notifier ---------------------------------------------------------------------
    notify_routes_file: str = field(
        default="",
        metadata=_meta(
            "routes of `errorstream notify`: a TOML or YAML file of [[routes]] (docs/notify.md), "
            "validated at load; empty = no routes"
        ),
    )
    notify_routes: tuple[Any, ...] = field(
        default=(),
        metadata=_meta(
            "the routes read from notify_routes_file (not a key of its own); secrets masked",
            derived=True,
        ),
    )
    notify_group: str = field(
        default="", metadata=_meta("notifier consumer group; empty = <app_id>-notify")
    )
    topic_notify_dlq: str = field(
        default="errorstream-notify-dlq",
        metadata=_meta("deliveries that kept failing, with reason, route, attempts and alerts"),
    )
    notify_digest_window: float = field(
        default=60.0,
        metadata=_meta(
            "seconds of a route's digest window when the route sets none (0 = no digests)",
            minimum=0.0,
        ),
    )
    notify_max_attempts: int = field(
        default=5,
        metadata=_meta("delivery attempts before dead-lettering", minimum=1, maximum=100),
    )
    notify_backoff_initial: float = field(
        default=1.0, metadata=_meta("seconds before the first retry (doubling)", minimum=0.001)
    )
    notify_backoff_max: float = field(
        default=30.0, metadata=_meta("seconds between delivery retries at most", minimum=0.001)
    )
    notify_timeout: float = field(
        default=10.0, metadata=_meta("seconds one delivery attempt may take", minimum=0.1)
    )
    notify_max_pending: int = field(
        default=10000,
        metadata=_meta(
            "alerts consumed but not yet delivered or dead-lettered before polling pauses",
            minimum=1,
        ),
    )
    notify_web_port: int = field(
        default=6067,
        metadata=_meta(
            "notifier /healthz /readyz /metrics port on web_host; 0 = none",
            minimum=0,
            maximum=65535,
        ),
    )
    # --- ClickHouse HTTP interface -------------------------------------------------
    clickhouse_http_host: str = field(
        default="127.0.0.1",
        metadata=_meta(
            "bind address of the read-only ClickHouse HTTP interface on the embedded store; "
            "an address other than loopback needs clickhouse_http_password"
        ),
    )
    clickhouse_http_port: int = field(
        default=8123,
        metadata=_meta(
            "port of the ClickHouse HTTP interface (served by the process that owns the chDB "
            "folder); 0 = off",
            minimum=0,
            maximum=65535,
        ),
    )
    clickhouse_http_user: str = field(
        default="default",
        metadata=_meta(
            "user name the ClickHouse HTTP interface accepts when clickhouse_http_password is "
            "set (otherwise http_auth_user / http_auth_password apply when set)"
        ),
    )
    clickhouse_http_password: str = field(
        default="",
        metadata=_meta(
            "password of clickhouse_http_user, overriding the dashboard's http_auth_user / "
            "http_auth_password; with neither set: no password (allowed on loopback only)",
            secret=True,
        ),
    )
    clickhouse_http_max_execution_time: float = field(
        default=10.0,
        metadata=_meta(
            "seconds one query of the ClickHouse HTTP interface may run (it holds the engine "
            "the sink writes through)",
            minimum=0.1,
        ),
    )
    clickhouse_http_max_result_rows: int = field(
        default=1_000_000,
        metadata=_meta("rows one query of the ClickHouse HTTP interface may return", minimum=1),
    )
    clickhouse_http_max_memory_usage: int = field(
        default=2_000_000_000,
        metadata=_meta(
            "bytes of memory one query of the ClickHouse HTTP interface may use",
            minimum=10_000_000,
        ),
    )
    # --- Gateway (errorstream gateway: docs/gateway.md; listens on web_host:web_port) ---
    gateway_keys: str = field(
        default="",
        metadata=_meta(
            "DSN public keys per project: `1=key1,key2; 2=key3` (several per project while "
            "rotating); a project without keys accepts nothing",
            secret=True,
        ),
    )
    gateway_disabled_projects: str = field(
        default="", metadata=_meta("projects answered 403 even with a valid key: `3,4`")
    )
    gateway_projects: str = field(
        default="", metadata=_meta("project id -> service: `1=checkout; 2=payments`")
    )
    gateway_default_service: str = field(
        default="project-{project_id}",
        metadata=_meta("service of a project not in gateway_projects ({project_id} filled in)"),
    )
    gateway_max_body_bytes: int = field(
        default=5 * 1024 * 1024,
        metadata=_meta("request body bytes on the wire at most (413 over)", minimum=1024),
    )
    gateway_max_decompressed_bytes: int = field(
        default=20 * 1024 * 1024,
        metadata=_meta("body bytes after decompression at most (413 over)", minimum=1024),
    )
    gateway_max_event_bytes: int = field(
        default=1024 * 1024,
        metadata=_meta("bytes of one event (item or JSON line) at most (413 over)", minimum=1024),
    )
    gateway_max_json_depth: int = field(
        default=64, metadata=_meta("nesting of an event's JSON at most (400 over)", minimum=4)
    )
    gateway_max_field_chars: int = field(
        default=256 * 1024,
        metadata=_meta("characters of one JSON string or key at most (413 over)", minimum=256),
    )
    gateway_rate_limit: float = field(
        default=1000.0,
        metadata=_meta("events per second per DSN key (429 over); 0 = no limit", minimum=0.0),
    )
    gateway_rate_burst: int = field(
        default=2000, metadata=_meta("events a key may send at once above its rate", minimum=1)
    )
    gateway_cors_origins: str = field(
        default="",
        metadata=_meta(
            "browser origins allowed by CORS, comma separated (`*` = any); empty = none"
        ),
    )
    gateway_publish_timeout: float = field(
        default=10.0,
        metadata=_meta("seconds to wait for Kafka's acknowledgement before 503", minimum=0.1),
    )
    gateway_retry_after: int = field(
        default=30, metadata=_meta("Retry-After seconds of a 503 (Kafka unavailable)", minimum=1)
    )
    gateway_scrub: int = field(
        default=1,
        metadata=_meta(
            "1 = scrub events with the SDK's rules before publishing", minimum=0, maximum=1
        ),
    )

    # ----------------------------------------------------------------------------------
    @property
    def chdb_path(self) -> str:
        return self.clickhouse_path or str(Path(self.data_dir) / "clickhouse")

    @property
    def api_auth_enabled(self) -> bool:
        """The query API and the dashboard ask for a bearer token or basic auth."""
        return bool(self.api_token or self.http_auth_password)

    @property
    def clickhouse_http_credentials(self) -> tuple[str, str]:
        """(user, password) the ClickHouse HTTP interface accepts: its own pair when
        clickhouse_http_password is set, else the dashboard's http_auth_user /
        http_auth_password when that password is set, else clickhouse_http_user and none."""
        if self.clickhouse_http_password:
            return self.clickhouse_http_user, self.clickhouse_http_password
        if self.http_auth_password:
            return self.http_auth_user, self.http_auth_password
        return self.clickhouse_http_user, ""

    @property
    def effective_api_url(self) -> str:
        return self.api_url or f"http://{self.web_host}:{self.web_port}"

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, for printing."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = _mask_secret(str(value))
            if f.name == "notify_routes":
                value = [route.masked() for route in value]
            out[f.name] = value
        return out

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def for_role(self, role: str) -> RoleSettings | Settings:
        """The settings of the sections ``role``'s process needs (``ROLE_SECTIONS``);
        a role that is not listed (the supervisor, one-shot commands) gets them all."""
        sections = ROLE_SECTIONS.get(role)
        return self if sections is None else RoleSettings(self, role, sections)

    def sections(self) -> dict[str, dict[str, Any]]:
        """The effective configuration with secrets masked, grouped by section."""
        out: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        for key, value in self.masked().items():
            out[section_of(key)][key] = value
        return out


def _mask_secret(value: str) -> str:
    if "://" in value and "@" in value:  # keep scheme and host of a URL, hide user info
        scheme, rest = value.split("://", 1)
        return f"{scheme}://{SECRET_MASK}@{rest.rsplit('@', 1)[1]}"
    return SECRET_MASK


# keys of files and ERRORSTREAM_* variables; derived fields are computed at load
_FIELDS = {f.name: f for f in fields(Settings) if not f.metadata.get("derived")}
_ALL_FIELDS = frozenset(f.name for f in fields(Settings))


def _coerce(key: str, source: str, raw: Any, f: dataclasses.Field) -> Any:
    typ = f.type if isinstance(f.type, type) else {"str": str, "int": int, "float": float}[f.type]
    meta = f.metadata
    try:
        if typ is int:
            if isinstance(raw, bool):
                raise ValueError
            value: Any = int(raw)
        elif typ is float:
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
        else:
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                raise ValueError
            value = str(raw)
    except (TypeError, ValueError):
        kind = {int: "an integer", float: "a number", str: "a string"}[typ]
        raise ConfigError(f"{source}: expected {kind}, got {raw!r}") from None
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(f"{source}: must be >= {meta['minimum']}, got {raw!r}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{source}: must be <= {meta['maximum']}, got {raw!r}")
    if meta.get("choices"):
        if typ is str:
            upper = all(c == c.upper() for c in meta["choices"])  # LEVELS, SASL_SSL
            value = value.upper() if upper else value.lower()
        if value not in meta["choices"]:
            raise ConfigError(f"{source}: must be one of {', '.join(meta['choices'])}, got {raw!r}")
    return value


def _sectioned_key(path: Path, table: str, key: str) -> str:
    """The setting a ``[table] key`` names: ``table_key`` (``[kafka] bootstrap``), or, in a
    section's table, a setting of that section by its whole name (``[ops] log_level``)."""
    joined = f"{table}_{key}"
    if table in SECTIONS and key in _FIELDS and joined not in _FIELDS:
        if section_of(key) != table:
            raise ConfigError(
                f"config file {path}: '{table}.{key}': {key} is in section [{section_of(key)}]"
            )
        return key
    if joined not in _FIELDS:
        raise ConfigError(f"config file {path}: unknown key '{table}.{key}'")
    return joined


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML or YAML settings file into a flat mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p}: not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # parse errors carry line numbers in their message
        raise ConfigError(f"config file {p}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a table of settings at the top level")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # [kafka] bootstrap = ... → kafka_bootstrap
            for sub, subvalue in value.items():
                flat[_sectioned_key(p, str(key), str(sub))] = subvalue
        else:
            flat[str(key)] = value
    return flat


def load_settings(
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build and validate the settings: defaults < file < environment < overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = config_file or env.get(f"{ENV_PREFIX}CONFIG") or None
    if config_file:
        for key, raw in read_config_file(config_file).items():
            if key not in _FIELDS:
                raise ConfigError(f"config file {config_file}: unknown key {key!r}")
            values[key] = _coerce(key, f"config file {config_file}: {key}", raw, _FIELDS[key])
    # Unknown ERRORSTREAM_* variables are not an error: the producer SDK, `errorstream kafka`
    # and the test fixtures read their own variables under the same prefix.
    for name, f in _FIELDS.items():
        var = f"{ENV_PREFIX}{name.upper()}"
        if var in env:
            values[name] = _coerce(name, var, env[var], f)
    for name, raw in (overrides or {}).items():
        if name not in _FIELDS:
            raise ConfigError(f"{name}: unknown setting")
        if raw is not None:
            values[name] = _coerce(name, f"--{name.replace('_', '-')}", raw, _FIELDS[name])
    settings = Settings(**values)
    _validate(settings)
    if settings.notify_routes_file:
        from pipeline.notify.routes import RoutesError, load_routes

        try:
            routes = load_routes(
                settings.notify_routes_file, env, default_window=settings.notify_digest_window
            )
        except RoutesError as exc:
            raise ConfigError(f"notify_routes_file: {exc}") from None
        settings = settings.replace(notify_routes=routes)
    return settings


ROLES = ("decoder", "agent", "sink")

# --- sections -------------------------------------------------------------------------------
# Every setting belongs to one section; each process receives only the sections of its role
# (``Settings.for_role``). Files may group keys in ``[section]`` tables; environment variables
# stay flat (``ERRORSTREAM_<KEY>``). Rules in order: the first prefix or name that matches.
SECTIONS = ("kafka", "decode", "grouping", "issues", "sink", "http", "ops", "gateway", "notify")
_SECTION_RULES: tuple[tuple[str, str], ...] = (
    ("notify_", "notify"),
    ("topic_notify_dlq", "notify"),
    ("gateway_", "gateway"),
    ("kafka_", "kafka"),
    ("topic_", "kafka"),
    ("app_id", "kafka"),
    ("partitions", "kafka"),
    ("replication_factor", "kafka"),
    ("decode_", "decode"),
    ("ingest_", "decode"),
    ("grouping_", "grouping"),
    ("clickhouse_http_", "http"),
    ("clickhouse_", "sink"),
    ("sink_", "sink"),
    ("retention_days", "sink"),
    ("web_", "http"),
    ("api_", "http"),
    ("http_", "http"),
    ("table_store", "issues"),
    ("fingerprint_limit_per_minute", "issues"),
    ("service_limit_per_minute", "issues"),
    ("sample_rates", "issues"),
    ("window_grace", "issues"),
    ("spike_", "issues"),
    ("service_spike_", "issues"),
    ("threshold_rules", "issues"),
    ("error_rate_", "issues"),
    ("alert_cooldown", "issues"),
    ("incident_min_issues", "issues"),
    ("dedup_window_minutes", "issues"),
    ("data_dir", "ops"),
    ("shutdown_timeout", "ops"),
    ("lag_interval", "ops"),
    ("ops_", "ops"),
    ("peer_urls", "ops"),
    ("restart_backoff_max", "ops"),
    ("log_", "ops"),
)
# the sections each process receives; a process that is not listed receives every section
ROLE_SECTIONS: dict[str, tuple[str, ...]] = {
    "decoder": ("kafka", "decode", "grouping", "ops"),
    "agent": ("kafka", "issues", "ops"),
    "sink": ("kafka", "sink", "http", "ops"),
    "gateway": ("kafka", "gateway", "http", "ops"),
    "notify": ("kafka", "notify", "http", "ops"),
}
# single keys a role receives beyond its sections: the decoder converts Sentry payloads read
# from Kafka under the same JSON shape limits as the gateway (docs/ingest-formats.md)
ROLE_KEYS: dict[str, tuple[str, ...]] = {
    "decoder": ("gateway_max_json_depth", "gateway_max_field_chars"),
}
# derived values: the sections they are computed from
_PROPERTY_SECTIONS = {
    "chdb_path": ("sink", "ops"),
    "effective_api_url": ("http",),
    "api_auth_enabled": ("http",),
    "clickhouse_http_credentials": ("http",),
}


def section_of(name: str) -> str:
    """The section of a setting; raises KeyError for a name no rule covers."""
    for rule, section in _SECTION_RULES:
        if name == rule or (rule.endswith("_") and name.startswith(rule)):
            return section
    raise KeyError(name)


class RoleSettings:
    """The settings one process receives: the fields of its role's sections as plain
    attributes (read as fast as the full object's), and a clear error for any other one."""

    def __init__(self, settings: Settings, role: str, sections: tuple[str, ...]) -> None:
        self.__dict__["_role"] = role
        self.__dict__["_sections"] = sections
        self.__dict__["_settings"] = settings
        keys = ROLE_KEYS.get(role, ())
        for f in fields(settings):
            if section_of(f.name) in sections or f.name in keys:
                self.__dict__[f.name] = getattr(settings, f.name)
        for name, needs in _PROPERTY_SECTIONS.items():
            if all(section in sections for section in needs):
                self.__dict__[name] = getattr(settings, name)

    def __getattr__(self, name: str) -> Any:
        if name in _ALL_FIELDS or name in _PROPERTY_SECTIONS:
            section = (
                section_of(name) if name in _ALL_FIELDS else "/".join(_PROPERTY_SECTIONS[name])
            )
            raise AttributeError(
                f"setting {name!r} is in section [{section}], which the {self._role} process "
                f"does not receive (it gets {', '.join(self._sections)})"
            )
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to setting {name!r}")

    def replace(self, **changes: Any) -> RoleSettings:
        for name in changes:
            getattr(self, name)  # only its own sections' settings
        return self._settings.replace(**changes).for_role(self._role)

    def masked(self) -> dict[str, Any]:
        own = {f.name for f in fields(self._settings) if f.name in self.__dict__}
        return {k: v for k, v in self._settings.masked().items() if k in own}

    def __repr__(self) -> str:
        return f"RoleSettings({self._role}: {', '.join(self._sections)})"


def peer_urls(raw: str) -> dict[str, str]:
    """``role=url,...`` → {role: url}; a bad entry raises ValueError naming it."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        role, sep, url = item.partition("=")
        if not sep or role not in ROLES or not url.startswith(("http://", "https://")):
            raise ValueError(f"expected role=http://host:port with role in {ROLES}, got {item!r}")
        out[role] = url.rstrip("/")
    return out


def _validate(s: Settings) -> None:
    for server in s.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"kafka_bootstrap: expected host:port[,host:port...], got {s.kafka_bootstrap!r}"
            )
    if s.clickhouse_url and not s.clickhouse_url.startswith(("http://", "https://")):
        raise ConfigError("clickhouse_url: expected an http:// or https:// URL")
    if not s.clickhouse_database.replace("_", "").isalnum():
        raise ConfigError(
            f"clickhouse_database: only letters, digits and _ allowed, got {s.clickhouse_database!r}"
        )
    if s.clickhouse_cluster and not s.clickhouse_cluster.replace("_", "").isalnum():
        raise ConfigError(
            f"clickhouse_cluster: only letters, digits and _ allowed, got {s.clickhouse_cluster!r}"
        )
    if s.kafka_security_protocol.startswith("SASL_") and not (
        s.kafka_sasl_username and s.kafka_sasl_password
    ):
        raise ConfigError(
            f"kafka_sasl_username, kafka_sasl_password: required with "
            f"kafka_security_protocol={s.kafka_security_protocol}"
        )
    if s.kafka_ssl_cafile and not Path(s.kafka_ssl_cafile).is_file():
        raise ConfigError(f"kafka_ssl_cafile: no such file {s.kafka_ssl_cafile!r}")
    try:
        peer_urls(s.peer_urls)
    except ValueError as exc:
        raise ConfigError(f"peer_urls: {exc}") from None
    if (
        s.clickhouse_http_port
        and not s.clickhouse_http_credentials[1]
        and s.clickhouse_http_host not in LOOPBACK_HOSTS
    ):
        raise ConfigError(
            f"clickhouse_http_host: {s.clickhouse_http_host!r} is not loopback; set "
            "http_auth_password (or clickhouse_http_password) to serve the ClickHouse HTTP "
            "interface there"
        )
    if s.http_auth_password and not s.http_auth_user:
        raise ConfigError("http_auth_user: required with http_auth_password")
    if ":" in s.http_auth_user:
        raise ConfigError("http_auth_user: must not contain ':' (HTTP basic auth)")
    if not s.table_store.startswith(("memory://", "rocksdb://", "rocksdict://")):
        raise ConfigError(
            f"table_store: expected memory://, rocksdb:// or rocksdict://, got {s.table_store!r}"
        )
    from pipeline.stages.rules import parse_sample_rates
    from pipeline.stages.spikes import parse_threshold_rules

    for key, parse in (
        ("sample_rates", parse_sample_rates),
        ("threshold_rules", parse_threshold_rules),
    ):
        try:
            parse(getattr(s, key))
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    if s.grouping_rules_file and not Path(s.grouping_rules_file).is_file():
        raise ConfigError(f"grouping_rules_file: {s.grouping_rules_file} not found")
    from pipeline.gateway.auth import parse_keys, parse_project_list, parse_projects

    for key, parse in (
        ("gateway_keys", parse_keys),
        ("gateway_projects", parse_projects),
        ("gateway_disabled_projects", parse_project_list),
    ):
        try:
            parse(getattr(s, key))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    from pipeline.stages.formats import parse_service_sources

    try:
        parse_service_sources(s.ingest_sentry_service_from)
    except ValueError as exc:
        raise ConfigError(f"ingest_sentry_service_from: {exc}") from None
    from pipeline.grouping.settings import grouping_config

    try:
        grouping_config(s)
    except ValueError as exc:  # bad version, patterns or rules file: name the key's problem
        raise ConfigError(f"grouping: {exc}") from None


def check_api_bind(s: Settings) -> None:
    """The query API and the dashboard (sink role, ``errorstream api``) refuse to serve an
    address other than loopback without authentication. Not part of load-time validation:
    the gateway and the notifier listen on web_host too and have their own auth."""
    if not s.api_auth_enabled and s.web_host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"web_host: {s.web_host!r} is not loopback; set api_token or http_auth_password "
            "to serve the query API and the dashboard there (docs/dashboard.md)"
        )
