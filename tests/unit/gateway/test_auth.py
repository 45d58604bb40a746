"""pipeline.gateway.auth: keys per project, where keys come from, 401 / 403."""

from __future__ import annotations

import pytest

from pipeline.gateway.auth import (
    AuthError,
    Keyring,
    key_from_auth_header,
    key_from_dsn,
    parse_keys,
    parse_project_list,
    parse_projects,
)
from pipeline.settings import ConfigError, load_settings

K1, K2, K3 = "a" * 32, "b" * 32, "c" * 32


def ring():
    return Keyring(parse_keys(f"1={K1},{K2}; 2={K3}"), parse_project_list("2"))


def test_several_active_keys_per_project():
    r = ring()
    r.check("1", K1)
    r.check("1", K2)
    assert r.project_of(K2) == "1"


@pytest.mark.parametrize(
    "project, key, status, reason",
    [
        ("1", None, 401, "auth_missing"),
        ("1", "", 401, "auth_missing"),
        ("1", K3, 401, "auth_invalid"),  # another project's key
        ("1", K1[:-1], 401, "auth_invalid"),
        ("9", K1, 401, "auth_invalid"),  # a project without keys
        ("2", K3, 403, "project_disabled"),
    ],
)
def test_refusals(project, key, status, reason):
    with pytest.raises(AuthError) as info:
        ring().check(project, key)
    assert (info.value.status, info.value.reason) == (status, reason)


def test_project_of_refusals():
    with pytest.raises(AuthError) as info:
        ring().project_of("z" * 32)
    assert info.value.status == 401
    with pytest.raises(AuthError) as info:
        ring().project_of(K3)
    assert info.value.status == 403


def test_key_sources():
    header = f"Sentry sentry_version=7, sentry_client=sentry.python/2.75.0, sentry_key={K1}"
    assert key_from_auth_header(header) == K1
    assert key_from_auth_header(f"sentry_key={K1},sentry_secret=s") == K1
    assert key_from_auth_header("Sentry sentry_version=7") is None
    assert key_from_dsn(f"https://{K1}@o1.example/42") == (K1, "42")
    assert key_from_dsn(f"http://{K1}:secret@host:9000/prefix/7") == (K1, "7")
    assert key_from_dsn("garbage") == (None, "garbage")


def test_config_parsing_and_validation():
    assert parse_projects("1=checkout; 2 = payments") == {"1": "checkout", "2": "payments"}
    for bad in ("x=" + K1, "1=short", "1"):
        with pytest.raises(ValueError):
            parse_keys(bad)
    with pytest.raises(ConfigError, match="gateway_keys"):
        load_settings(env={"ERRORSTREAM_GATEWAY_KEYS": "1=bad key!"})
    with pytest.raises(ConfigError, match="gateway_disabled_projects"):
        load_settings(env={"ERRORSTREAM_GATEWAY_DISABLED_PROJECTS": "abc"})
    s = load_settings(env={"ERRORSTREAM_GATEWAY_KEYS": f"1={K1}"})
    assert s.masked()["gateway_keys"] == "***"
