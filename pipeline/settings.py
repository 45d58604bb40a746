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


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid. The message names the key."""


def _meta(
    help: str,
    *,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    choices=None,
):
    return {
        "help": help,
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
    # --- grouping ----------------------------------------------------------------------
    grouping_version: str = field(default="v1", metadata=_meta("grouping algorithm version"))
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
        metadata=_meta("bearer token required by the query API when set", secret=True),
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
    # --- logs --------------------------------------------------------------------------
    log_level: str = field(
        default="INFO",
        metadata=_meta("log level", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    )
    log_format: str = field(
        default="auto", metadata=_meta("log format", choices=("auto", "json", "plain"))
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
    def effective_api_url(self) -> str:
        return self.api_url or f"http://{self.web_host}:{self.web_port}"

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, for printing."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = _mask_secret(str(value))
            out[f.name] = value
        return out

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _mask_secret(value: str) -> str:
    if "://" in value and "@" in value:  # keep scheme and host of a URL, hide user info
        scheme, rest = value.split("://", 1)
        return f"{scheme}://{SECRET_MASK}@{rest.rsplit('@', 1)[1]}"
    return SECRET_MASK


_FIELDS = {f.name: f for f in fields(Settings)}


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
            value = value.upper() if key == "log_level" else value.lower()
        if value not in meta["choices"]:
            raise ConfigError(f"{source}: must be one of {', '.join(meta['choices'])}, got {raw!r}")
    return value


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
                name = f"{key}_{sub}"
                if name not in _FIELDS:
                    raise ConfigError(f"config file {p}: unknown key '{key}.{sub}'")
                flat[name] = subvalue
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
    return settings


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
    from pipeline.grouping.settings import grouping_config

    try:
        grouping_config(s)
    except ValueError as exc:  # bad version, patterns or rules file: name the key's problem
        raise ConfigError(f"grouping: {exc}") from None
