"""Routes files: parsing, errors that name file, line and key, filters, priority, masking."""

from __future__ import annotations

import json

import pytest

from pipeline.notify.routes import RouteFilter, RoutesError, alert_priority, load_routes
from pipeline.settings import ConfigError, load_settings

ALERT = {
    "alert_id": "a" * 32,
    "kind": "new_issue",
    "service": "checkout-api",
    "environment": "production",
    "level": "error",
    "category": "db",
    "title": "OperationalError: connection refused",
}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_yaml_give_the_same_routes(tmp_path):
    toml = write(
        tmp_path,
        "r.toml",
        '[[routes]]\nname = "hook"\nchannel = "webhook"\nurl = "http://127.0.0.1:9/h"\n'
        'secret = "k"\ndigest_window = 30\n[routes.match]\nservice = ["checkout-*"]\n'
        'priority = "high"\n',
    )
    yaml = write(
        tmp_path,
        "r.yaml",
        "routes:\n  - name: hook\n    channel: webhook\n    url: http://127.0.0.1:9/h\n"
        "    secret: k\n    digest_window: 30\n    match:\n      service: [checkout-*]\n"
        "      priority: high\n",
    )
    a, b = load_routes(toml, {}), load_routes(yaml, {})
    assert a == b
    (route,) = a
    assert route.match == RouteFilter(service=("checkout-*",), priority=("high",))
    assert (route.digest_window, route.secret) == (30.0, "k")


def test_defaults_env_secrets_and_email_ports(tmp_path):
    path = write(
        tmp_path,
        "r.toml",
        '[[routes]]\nname = "m"\nchannel = "email"\nsmtp_host = "127.0.0.1"\n'
        'starttls = true\nusername = "u"\npassword_env = "PW"\nfrom = "es@example.com"\n'
        'to = "a@example.com"\n',
    )
    (route,) = load_routes(path, {"PW": "hunter2"}, default_window=45)
    assert (route.smtp_port, route.password, route.mail_to) == (587, "hunter2", ("a@example.com",))
    assert route.digest_window == 45


@pytest.mark.parametrize(
    "body, expected",
    [
        ('name = "x"\nchannel = "pager"\n', ":4: routes[0] (x): channel: must be one of"),
        ('name = "x"\nchannel = "slack"\n', ":2: routes[0] (x): url: required for a slack"),
        ('name = "x"\nchannel = "slack"\nurl = "ftp://h"\n', ":5: routes[0] (x): url: expected"),
        (
            'name = "x"\nchannel = "slack"\nurl = "http://h"\nsecret = "k"\n',
            ":6: routes[0] (x): secret: unknown key for a slack route",
        ),
        (
            'name = "x"\nchannel = "slack"\nurl = "http://h"\n[routes.match]\nlevle = ["e"]\n',
            ":7: routes[0] (x): levle: unknown filter",
        ),
        (
            'name = "x"\nchannel = "slack"\nurl = "http://h"\n[routes.match]\npriority = ["p1"]\n',
            ":7: routes[0] (x): priority: priorities are high, medium, low",
        ),
        (
            'name = "x"\nchannel = "webhook"\nurl = "http://h"\nsecret_env = "NOPE"\n',
            ":6: routes[0] (x): secret_env: environment variable 'NOPE' is not set",
        ),
        (
            'name = "x"\nchannel = "slack"\nurl = "http://h"\ndigest_window = -1\n',
            ":6: routes[0] (x): digest_window: expected seconds >= 0",
        ),
    ],
)
def test_errors_name_line_route_and_key(tmp_path, body, expected):
    # line 1 is a comment, line 2 the [[routes]] header, the body starts on line 3
    path = write(tmp_path, "r.toml", "# routes\n[[routes]]\n" + body)
    with pytest.raises(RoutesError) as err:
        load_routes(path, {})
    assert f"{path}{expected}" in str(err.value)


def test_yaml_errors_name_the_line_too(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        "routes:\n  - name: a\n    channel: slack\n    url: http://h\n"
        "  - name: b\n    channel: email\n    smtp_host: h\n    from: nobody\n    to: [x@y]\n",
    )
    with pytest.raises(RoutesError) as err:
        load_routes(path, {})
    assert (
        str(err.value) == f"{path}:8: routes[1] (b): from: expected an e-mail address, got 'nobody'"
    )


def test_duplicate_names_and_settings_wrap_the_error(tmp_path):
    route = '[[routes]]\nname = "x"\nchannel = "slack"\nurl = "http://h"\n'
    path = write(tmp_path, "r.toml", route + route)
    with pytest.raises(ConfigError) as err:
        load_settings(env={"ERRORSTREAM_NOTIFY_ROUTES_FILE": str(path)})
    assert str(err.value) == f"notify_routes_file: {path}:6: routes[1]: name: 'x' is used twice"


def test_settings_carry_routes_and_mask_their_secrets(tmp_path):
    path = write(
        tmp_path,
        "r.toml",
        '[[routes]]\nname = "s"\nchannel = "slack"\n'
        'url = "https://hooks.example.com/services/T0/B0/SECRETTOKEN"\n'
        '[[routes]]\nname = "w"\nchannel = "webhook"\nurl = "http://127.0.0.1:1/x"\n'
        'secret = "hmackey"\n'
        '[[routes]]\nname = "m"\nchannel = "email"\nsmtp_host = "127.0.0.1"\n'
        'username = "u"\npassword = "smtppass"\nfrom = "a@b"\nto = ["c@d"]\n',
    )
    s = load_settings(env={"ERRORSTREAM_NOTIFY_ROUTES_FILE": str(path)})
    assert [r.name for r in s.notify_routes] == ["s", "w", "m"]
    shown = json.dumps(s.masked())
    for secret in ("SECRETTOKEN", "hmackey", "smtppass"):
        assert secret not in shown
    masked = s.masked()["notify_routes"]
    assert masked[0]["url"] == "https://hooks.example.com/***"
    assert (masked[1]["secret"], masked[2]["password"]) == ("***", "***")


def test_notify_routes_is_not_a_key_of_its_own(tmp_path):
    path = write(tmp_path, "c.toml", "notify_routes = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'notify_routes'"):
        load_settings(env={}, config_file=str(path))


# -- filters and priority -------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters, matches",
    [
        ({}, True),
        ({"service": ("checkout-*",)}, True),
        ({"service": ("checkout",)}, False),
        ({"environment": ("production", "staging")}, True),
        ({"kind": ("regression",)}, False),
        ({"level": ("error", "fatal"), "category": ("db",)}, True),
        ({"level": ("error",), "category": ("network",)}, False),
        ({"priority": ("medium",)}, True),
        ({"priority": ("high",)}, False),
        ({"kind": ("new_issue",), "priority": ("low", "medium")}, True),
    ],
)
def test_filters(filters, matches):
    assert RouteFilter(**filters).matches(ALERT) is matches


def test_a_missing_field_does_not_match_its_filter():
    alert = {k: v for k, v in ALERT.items() if k != "environment"}
    assert not RouteFilter(environment=("production",)).matches(alert)
    assert RouteFilter(service=("checkout-api",)).matches(alert)


@pytest.mark.parametrize(
    "fields, priority",
    [
        ({"priority": "low"}, "low"),  # a person's or the pipeline's priority wins
        ({"priority": "HIGH", "level": "info"}, "high"),
        ({"priority": "urgent", "level": "fatal"}, "high"),  # unknown value: derived
        ({"level": "fatal"}, "high"),
        ({"kind": "critical", "level": "warning"}, "high"),
        ({"kind": "incident"}, "high"),
        ({"level": "error"}, "medium"),
        ({"kind": "spike"}, "medium"),  # service-level alerts carry no level
        ({"level": "warning"}, "low"),
        ({"level": "info"}, "low"),
    ],
)
def test_alert_priority(fields, priority):
    assert alert_priority({"kind": "new_issue", **fields}) == priority


def test_smtp_ca_file_must_exist_and_needs_tls(tmp_path):
    mail = (
        '[[routes]]\nname = "m"\nchannel = "email"\nsmtp_host = "127.0.0.1"\n'
        'from = "a@b"\nto = ["c@d"]\n'
    )
    missing = write(tmp_path, "a.toml", mail + 'starttls = true\nsmtp_ca_file = "/nope.pem"\n')
    with pytest.raises(RoutesError, match=r"a.toml:8: routes\[0\] \(m\): smtp_ca_file: /nope.pem"):
        load_routes(missing, {})
    ca = write(tmp_path, "ca.pem", "not checked here\n")
    plain = write(tmp_path, "b.toml", mail + f'smtp_ca_file = "{ca}"\n')
    with pytest.raises(RoutesError, match="a CA file needs starttls or smtp_ssl"):
        load_routes(plain, {})
    ok = write(tmp_path, "c.toml", mail + f'smtp_ssl = true\nsmtp_ca_file = "{ca}"\n')
    (route,) = load_routes(ok, {})
    assert (route.smtp_port, route.smtp_ca_file) == (465, str(ca))
