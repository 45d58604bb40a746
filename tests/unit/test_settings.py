"""The one settings object: precedence, validation messages that name the key, masking."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from pipeline.settings import ConfigError, Settings, load_settings, read_config_file


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_validate():
    s = load_settings(env={})
    assert s == Settings()
    assert s.shutdown_timeout == 30.0 and s.clickhouse_cluster == ""


def test_precedence_defaults_file_env_overrides(tmp_path):
    cfg = write(tmp_path, "c.toml", 'app_id = "from-file"\npartitions = 8\nweb_port = 7000\n')
    env = {"ERRORSTREAM_PARTITIONS": "12", "ERRORSTREAM_CONFIG": cfg}
    s = load_settings(env=env, overrides={"web_port": 7100})
    assert (s.app_id, s.partitions, s.web_port) == ("from-file", 12, 7100)


def test_toml_tables_flatten_and_yaml_works(tmp_path):
    toml = write(tmp_path, "c.toml", '[kafka]\nbootstrap = "k1:9092,k2:9092"\n')
    assert load_settings(env={}, config_file=toml).kafka_bootstrap == "k1:9092,k2:9092"
    yaml = write(tmp_path, "c.yaml", "sink:\n  max_batch_size: 500\nlog_level: debug\n")
    s = load_settings(env={}, config_file=yaml)
    assert (s.sink_max_batch_size, s.log_level) == (500, "DEBUG")


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("partitions = 0\n", "partitions", "must be >= 1"),
        ('partitions = "four"\n', "partitions", "expected an integer"),
        ("partitions = true\n", "partitions", "expected an integer"),
        ("web_port = 70000\n", "web_port", "must be <= 65535"),
        ("shutdown_timeout = 0.5\n", "shutdown_timeout", "must be >= 1.0"),
        ('log_format = "xml"\n', "log_format", "must be one of auto, json, plain"),
        ('log_level = "loud"\n', "log_level", "must be one of"),
        ("app_id = [1, 2]\n", "app_id", "expected a string"),
        ('kafka_bootstrap = "nohost"\n', "kafka_bootstrap", "expected host:port"),
        ('clickhouse_url = "ftp://x"\n', "clickhouse_url", "http:// or https://"),
        ('clickhouse_database = "a-b"\n', "clickhouse_database", "only letters, digits and _"),
        ('clickhouse_cluster = "c; DROP"\n', "clickhouse_cluster", "only letters, digits and _"),
        ('table_store = "redis://"\n', "table_store", "expected memory://"),
        ('grouping_rules_file = "/nope.toml"\n', "grouping_rules_file", "not found"),
    ],
)
def test_every_error_names_the_key_and_the_problem(tmp_path, text, key, problem):
    cfg = write(tmp_path, "c.toml", text)
    with pytest.raises(ConfigError) as exc:
        load_settings(env={}, config_file=cfg)
    assert key in str(exc.value) and problem in str(exc.value)


def test_unknown_keys_in_files_are_rejected_with_their_name(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'partitons'"):
        load_settings(env={}, config_file=write(tmp_path, "c.toml", "partitons = 4\n"))
    with pytest.raises(ConfigError, match=r"unknown key 'kafka\.bootstrapp'"):
        load_settings(env={}, config_file=write(tmp_path, "c.toml", '[kafka]\nbootstrapp="a:1"\n'))
    with pytest.raises(ConfigError, match=r"unknown key 'sink\.size'"):
        load_settings(env={}, config_file=write(tmp_path, "c.yml", "sink:\n  size: 3\n"))


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_config_file(tmp_path / "missing.toml")
    bad = write(tmp_path, "bad.toml", "partitions = \n")
    with pytest.raises(ConfigError, match="bad.toml"):
        read_config_file(bad)
    top = write(tmp_path, "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="table of settings"):
        read_config_file(top)


def test_env_errors_name_the_variable():
    with pytest.raises(ConfigError, match="ERRORSTREAM_SINK_MAX_BATCH_TIME: expected a number"):
        load_settings(env={"ERRORSTREAM_SINK_MAX_BATCH_TIME": "soon"})
    # other components' variables under the prefix are not errors
    assert load_settings(env={"ERRORSTREAM_KAFKA_VERSION": "3.9.2"}) == Settings()


def test_unknown_override_is_rejected():
    with pytest.raises(ConfigError, match="nope: unknown setting"):
        load_settings(env={}, overrides={"nope": 1})


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().partitions = 3  # type: ignore[misc]


def test_secrets_are_masked():
    s = load_settings(
        env={
            "ERRORSTREAM_CLICKHOUSE_URL": "http://writer:s3cret@ch.internal:8123",
            "ERRORSTREAM_API_TOKEN": "tok",
        }
    )
    masked = s.masked()
    assert masked["clickhouse_url"] == "http://***@ch.internal:8123"
    assert masked["api_token"] == "***"
    assert "s3cret" not in json.dumps(masked)


def test_every_setting_has_help():
    for f in dataclasses.fields(Settings):
        assert f.metadata.get("help"), f.name


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
    )


def test_config_show_json_and_check_exit_codes(tmp_path):
    shown = run_cli("config", "show", "--json", env={"ERRORSTREAM_API_TOKEN": "tok"})
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert set(data) == {f.name for f in dataclasses.fields(Settings)}
    assert data["api_token"] == "***"

    good = write(tmp_path, "good.toml", "partitions = 6\n")
    assert run_cli("config", "check", good).returncode == 0
    bad = write(tmp_path, "bad.toml", "[sink]\nmax_batch_sise = 1\n")
    checked = run_cli("config", "check", bad)
    assert checked.returncode == 2
    assert "unknown key 'sink.max_batch_sise'" in checked.stderr


# --- sections ----------------------------------------------------------------------------
def test_every_setting_has_one_section():
    from pipeline.settings import SECTIONS, section_of

    for f in dataclasses.fields(Settings):
        assert section_of(f.name) in SECTIONS, f.name
    assert section_of("kafka_bootstrap") == "kafka"
    assert section_of("topic_notify_dlq") == "notify"  # before the topic_ rule
    assert section_of("clickhouse_http_port") == "http"  # before the clickhouse_ rule
    assert section_of("clickhouse_url") == "sink"
    with pytest.raises(KeyError):
        section_of("no_such_setting")


def test_each_role_receives_only_its_sections():
    from pipeline.settings import ROLE_KEYS, ROLE_SECTIONS, RoleSettings, section_of

    s = load_settings(env={}, overrides={"partitions": 6, "sink_max_batch_size": 123})
    for role, sections in ROLE_SECTIONS.items():
        view = s.for_role(role)
        assert isinstance(view, RoleSettings)
        for f in dataclasses.fields(Settings):
            if section_of(f.name) in sections or f.name in ROLE_KEYS.get(role, ()):
                assert getattr(view, f.name) == getattr(s, f.name)
            else:
                with pytest.raises(AttributeError, match=rf"\[{section_of(f.name)}\].*{role}"):
                    getattr(view, f.name)
    assert s.for_role("decoder").partitions == 6
    assert s.for_role("sink").sink_max_batch_size == 123
    assert s.for_role("sink").chdb_path == s.chdb_path  # derived from sink + ops
    with pytest.raises(AttributeError, match="chdb_path"):
        _ = s.for_role("decoder").chdb_path
    assert s.for_role("supervisor") is s  # one that is not listed gets everything


def test_role_settings_are_frozen_and_replace_keeps_the_role():
    view = load_settings(env={}).for_role("agent")
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.alert_cooldown = 1.0
    changed = view.replace(alert_cooldown=5.0)
    assert changed.alert_cooldown == 5.0 and repr(changed).startswith("RoleSettings(agent")
    with pytest.raises(AttributeError, match=r"\[sink\]"):
        view.replace(sink_max_batch_size=5)
    assert "kafka_sasl_password" in view.masked() and "gateway_keys" not in view.masked()


def test_config_file_tables_by_section(tmp_path):
    cfg = write(
        tmp_path,
        "c.toml",
        "[kafka]\nbootstrap = 'k1:9092'\napp_id = 'x'\n"
        "[ops]\nlog_level = 'DEBUG'\n[sink]\nmax_batch_size = 77\n",
    )
    s = load_settings(env={}, config_file=cfg)
    assert (s.kafka_bootstrap, s.app_id, s.log_level, s.sink_max_batch_size) == (
        "k1:9092",
        "x",
        "DEBUG",
        77,
    )
    wrong = write(tmp_path, "w.toml", "[kafka]\nlog_level = 'DEBUG'\n")
    with pytest.raises(ConfigError, match=r"'kafka.log_level': log_level is in section \[ops\]"):
        load_settings(env={}, config_file=wrong)


def test_config_show_prints_sections():
    shown = run_cli("config", "show")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "[kafka]" and "[sink]" in lines and "[ops]" in lines
    sink = lines.index("[sink]")
    assert any(line.startswith("sink_max_batch_size = ") for line in lines[sink:])


def test_every_derived_value_is_given_to_the_roles_that_have_its_sections():
    from pipeline.settings import _PROPERTY_SECTIONS

    properties = {n for n, v in vars(Settings).items() if isinstance(v, property)}
    assert properties == set(_PROPERTY_SECTIONS)  # a new property needs its sections listed
    s = load_settings(env={}, overrides={"api_token": "t"})
    assert s.for_role("sink").api_auth_enabled is True
    assert s.for_role("gateway").clickhouse_http_credentials == s.clickhouse_http_credentials
