"""The notifier's deploy files stay true: the routes they ship parse, and the Kubernetes
manifest runs a real subcommand with real settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.cli import build_parser
from pipeline.notify.routes import load_routes
from pipeline.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def test_example_routes_file_parses():
    env = {
        "ERRORSTREAM_NOTIFY_INCIDENTS_SECRET": "k",
        "ERRORSTREAM_NOTIFY_CHECKOUT_SLACK_URL": "https://hooks.example.com/services/T/B/X",
        "ERRORSTREAM_NOTIFY_SMTP_PASSWORD": "pw",
    }
    routes = load_routes(DEPLOY / "notify-routes.example.toml", env)
    assert [(r.name, r.channel) for r in routes] == [
        ("incidents", "webhook"),
        ("checkout-slack", "slack"),
        ("oncall-mail", "email"),
    ]
    assert routes[2].starttls and routes[2].password == "pw" and routes[2].digest_window == 300


def test_k8s_notifier_runs_notify_with_the_routes_it_mounts(tmp_path):
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "notifier.yaml").read_text()))
    secret = next(d for d in docs if d["kind"] == "Secret")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(container["args"]).command == "notify"
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = container["volumeMounts"][0]["mountPath"]
    routes_file = env["ERRORSTREAM_NOTIFY_ROUTES_FILE"]
    assert routes_file.startswith(mount + "/")
    (tmp_path / "routes.toml").write_text(secret["stringData"][Path(routes_file).name])
    settings = load_settings(
        env={**env, "ERRORSTREAM_NOTIFY_ROUTES_FILE": str(tmp_path / "routes.toml")}
    )
    assert [r.name for r in settings.notify_routes] == ["team-slack"]
    port = container["ports"][0]["containerPort"]
    assert settings.notify_web_port == port
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert "notifier.yaml" in kustomization["resources"]
