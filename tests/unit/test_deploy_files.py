"""deploy/ stays consistent with the code: settings names, metric names, valid rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from errorstream_sdk.metrics import SDKCollector
from prometheus_client import CollectorRegistry

from pipeline.metrics import Metrics, exposed_names
from pipeline.settings import ENV_PREFIX, Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS_VARS = {f"{ENV_PREFIX}{f.name.upper()}" for f in fields(Settings)}
METRIC = re.compile(r"\b(errorstream_[a-z0-9_]+)\b")
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}


def known_metric_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    sdk = CollectorRegistry()
    sdk.register(SDKCollector(stats=lambda: {"queue_depth": 0, "sent": 0, "dropped": {}}))
    return exposed_names(registry) | exposed_names(sdk)


def metric_names_in(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def errorstream_vars(mapping) -> set[str]:
    if isinstance(mapping, list):  # k8s env: [{name, value}] / compose list form
        names = [e["name"] if isinstance(e, dict) else e.split("=", 1)[0] for e in mapping]
    else:
        names = list(mapping or {})
    return {n for n in names if n.startswith(ENV_PREFIX)}


# -- docker compose -----------------------------------------------------------------


def test_compose_sets_only_real_settings_and_matches_the_image():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "clickhouse", "worker", "prometheus"} <= set(services)
    used = set()
    for service in services.values():
        used |= errorstream_vars(service.get("environment"))
    assert used, "the worker is configured through ERRORSTREAM_* variables"
    assert used <= SETTINGS_VARS, f"not settings: {sorted(used - SETTINGS_VARS)}"
    worker = services["worker"]
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY.parent / worker["build"]["context"].replace("..", ".")).exists()
    env = worker["environment"]
    assert env["ERRORSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["ERRORSTREAM_CLICKHOUSE_URL"].endswith("@clickhouse:8123")
    # the drain must finish inside the stop grace period
    grace = int(worker["stop_grace_period"].rstrip("s"))
    assert grace > float(env["ERRORSTREAM_SHUTDOWN_TIMEOUT"])
    # Prometheus mounts the files this repository ships
    for volume in services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).is_file(), source


def test_compose_kafka_is_kraft():
    kafka = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_dockerfile_installs_the_pipeline_extra_and_runs_the_worker():
    text = (DEPLOY / "Dockerfile").read_text()
    assert 'pip install ".[pipeline]"' in text
    assert 'ENTRYPOINT ["errorstream"]' in text and 'CMD ["worker"]' in text
    for var in re.findall(r"\b(ERRORSTREAM_[A-Z_]+)=", text):
        assert var in SETTINGS_VARS, var


# -- Kubernetes ---------------------------------------------------------------------


def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_k8s_manifests_use_real_settings_and_health_endpoints():
    docs = k8s_documents()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs if "metadata" in d}
    assert ("StatefulSet", "errorstream-worker") in kinds
    assert ("Deployment", "errorstream-gateway") in kinds
    assert ("Deployment", "errorstream-notifier") in kinds
    used = set()
    for d in docs:
        if d["kind"] in ("ConfigMap", "Secret"):
            used |= errorstream_vars(d.get("data") or d.get("stringData"))
        if d["kind"] in ("StatefulSet", "Deployment"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                used |= errorstream_vars(c.get("env", []))
                assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
                assert c["image"] == "errorstream"
            annotations = d["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/path"] == "/metrics"
    assert used <= SETTINGS_VARS, f"not settings: {sorted(used - SETTINGS_VARS)}"


def test_k8s_workers_scale_within_partitions_and_drain_in_time():
    docs = k8s_documents()
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    worker = next(d for d in docs if d["kind"] == "StatefulSet")
    assert worker["spec"]["replicas"] <= int(config["ERRORSTREAM_PARTITIONS"])
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(config["ERRORSTREAM_SHUTDOWN_TIMEOUT"])


# -- Prometheus and Grafana ---------------------------------------------------------


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_alert_rules_name_declared_metrics():
    known = known_metric_names()
    named = set().union(*(metric_names_in(e) for e in rule_exprs()))
    assert "errorstream_gateway_requests_total" in named
    assert named <= known, f"unknown metrics in alerts.yml: {sorted(named - known)}"


def test_grafana_dashboard_is_valid_and_queries_declared_metrics():
    dashboard = json.loads((DEPLOY / "grafana" / "errorstream.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    named = set().union(*(metric_names_in(e) for e in exprs))
    known = known_metric_names()
    assert named <= known, f"unknown metrics in the dashboard: {sorted(named - known)}"
    # the issue's must-haves: ingest rate, drops by reason, alerts, lag, sink latency
    for must in (
        "errorstream_ingest_events_received_total",
        "errorstream_ingest_events_invalid_total",
        "errorstream_alerts_emitted_total",
        "errorstream_kafka_consumer_lag_messages",
        "errorstream_sink_insert_latency_seconds_bucket",
    ):
        assert must in named, must
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_metric_names_follow_the_convention():
    for name in known_metric_names():
        assert re.fullmatch(r"errorstream_[a-z]+(_[a-z0-9]+)+", name), name


promtool = shutil.which("promtool")


@pytest.mark.skipif(promtool is None, reason="promtool not installed (apt-get install prometheus)")
@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
)
def test_promtool_accepts_the_prometheus_files(args):
    out = subprocess.run(
        [promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promql_is_balanced_without_promtool():
    """The fallback check where promtool is missing: brackets balance in every expression."""
    for expr in rule_exprs():
        for open_, close in ("()", "[]", "{}"):
            assert expr.count(open_) == expr.count(close), expr


# -- ClickHouse data source and the issues dashboard ----------------------------------

CLICKHOUSE_DS = DEPLOY / "grafana" / "provisioning" / "datasources" / "clickhouse.yml"
ISSUES_DASHBOARD = DEPLOY / "grafana" / "errorstream-issues.json"
MIGRATIONS = DEPLOY.parent / "pipeline" / "storage" / "migrations"


def clickhouse_datasource() -> dict:
    (ds,) = yaml.safe_load(CLICKHOUSE_DS.read_text())["datasources"]
    return ds


def test_clickhouse_datasource_speaks_http_to_the_errorstream_database():
    ds = clickhouse_datasource()
    assert ds["type"] == "grafana-clickhouse-datasource"
    data = ds["jsonData"]
    assert data["protocol"] == "http" and data["port"] == 8123
    assert data["defaultDatabase"] == Settings().clickhouse_database
    # every variable the file reads is set on the Grafana service of the compose file
    text = CLICKHOUSE_DS.read_text()
    wanted = set(re.findall(r"\$([A-Z_]+)", text))
    grafana = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["grafana"]
    assert wanted and wanted <= set(grafana["environment"]), wanted
    assert grafana["environment"]["GF_INSTALL_PLUGINS"] == "grafana-clickhouse-datasource"
    mounted = {v.split(":")[0] for v in grafana["volumes"]}
    assert "./grafana/errorstream-issues.json" in mounted


def issues_dashboard() -> dict:
    return json.loads(ISSUES_DASHBOARD.read_text())


def test_issues_dashboard_is_valid_and_reads_only_errorstream_tables():
    dashboard = issues_dashboard()
    assert dashboard["uid"] == "errorstream-issues" and dashboard["title"]
    uid = clickhouse_datasource()["uid"]
    panels = dashboard["panels"]
    assert len(panels) >= 10
    assert len({p["id"] for p in panels}) == len(panels)
    tables = set(
        re.findall(
            r"CREATE TABLE IF NOT EXISTS \{database\}\.(\w+)",
            "".join(p.read_text() for p in MIGRATIONS.glob("*.sql")),
        )
    )
    assert {"events", "event_minutes", "issues", "alerts"} <= tables
    cells = set()
    for p in panels:
        assert p["datasource"]["uid"] == uid
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        for cell in (
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        ):
            assert cell not in cells, f"panel {p['id']} overlaps another"
            cells.add(cell)
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid
            named = set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", t["rawSql"]))
            assert named and named <= tables, (p["title"], named - tables)
    kinds = {p["type"] for p in panels}
    assert {"timeseries", "table", "stat"} <= kinds
