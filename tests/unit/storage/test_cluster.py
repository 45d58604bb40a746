"""The cluster variant of every migration: shapes, and ClickHouse's own parser accepts it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pipeline.storage.cluster import ClusterDDLError, to_cluster
from pipeline.storage.migrate import load_migrations, render


def all_cluster_statements(cluster: str = "prod") -> list[str]:
    out = []
    for migration in load_migrations():
        for statement in migration.statements:
            out.extend(to_cluster(render(statement, "errorstream", 30), cluster))
    return out


def test_merge_tree_becomes_replicated_local_plus_distributed():
    sql = (
        "CREATE TABLE IF NOT EXISTS db.issues (fingerprint String, version UInt64) "
        "ENGINE = ReplacingMergeTree(version) ORDER BY fingerprint"
    )
    local, dist = to_cluster(sql, "c1")
    assert local.startswith("CREATE TABLE IF NOT EXISTS db.issues_local ON CLUSTER c1 (")
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/issues_local', "
        "'{replica}', version) ORDER BY fingerprint" in local
    )
    assert dist == (
        "CREATE TABLE IF NOT EXISTS db.issues ON CLUSTER c1 AS db.issues_local "
        "ENGINE = Distributed(c1, db, issues_local, cityHash64(fingerprint))"
    )


def test_engine_without_arguments_and_null_engine():
    (local, _) = to_cluster("CREATE TABLE db.x (a String) ENGINE = MergeTree ORDER BY a", "c")
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/x_local', '{replica}')"
        in local
    )
    local, dist = to_cluster("CREATE TABLE IF NOT EXISTS db.inp (a String) ENGINE = Null", "c")
    assert local.endswith("ENGINE = Null") and "Replicated" not in local
    assert "Distributed(c, db, inp_local, rand())" in dist


def test_materialized_view_reads_and_writes_local_tables():
    sql = "CREATE MATERIALIZED VIEW IF NOT EXISTS db.mv\nTO db.agg\nAS SELECT a FROM db.inp GROUP BY a"
    (view,) = to_cluster(sql, "c")
    assert view.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS db.mv ON CLUSTER c")
    assert "TO db.agg_local" in view and "FROM db.inp_local" in view


def test_alter_columns_apply_to_both_tables_other_alters_to_local_only():
    cols = to_cluster("ALTER TABLE db.events ADD COLUMN IF NOT EXISTS x UInt8", "c")
    assert cols == [
        "ALTER TABLE db.events_local ON CLUSTER c ADD COLUMN IF NOT EXISTS x UInt8",
        "ALTER TABLE db.events ON CLUSTER c ADD COLUMN IF NOT EXISTS x UInt8",
    ]
    idx = to_cluster("ALTER TABLE db.events ADD INDEX i x TYPE set(1) GRANULARITY 1", "c")
    assert idx == [
        "ALTER TABLE db.events_local ON CLUSTER c ADD INDEX i x TYPE set(1) GRANULARITY 1"
    ]


def test_unknown_statements_fail_loudly():
    with pytest.raises(ClusterDDLError):
        to_cluster("INSERT INTO db.t VALUES (1)", "c")


def test_backfill_goes_through_the_distributed_tables_synchronously():
    sql = "INSERT INTO db.hours (a, b)\nSELECT a, b FROM db.minutes FINAL GROUP BY a, b"
    (out,) = to_cluster(sql, "c")
    assert out == (
        "INSERT INTO db.hours (a, b) SETTINGS distributed_foreground_insert = 1\n"
        "SELECT a, b FROM db.minutes FINAL GROUP BY a, b"
    )


def test_every_migration_has_a_cluster_variant_with_sharding_by_issue():
    statements = all_cluster_statements()
    inserts = [s for s in statements if s.startswith("INSERT INTO")]
    assert inserts and all("distributed_foreground_insert = 1" in s for s in inserts)
    assert all(" ON CLUSTER prod" in s for s in statements if s not in inserts)
    dist = [s for s in statements if "ENGINE = Distributed" in s]
    keys = {s.split(" ")[5].split(".")[1]: s.rsplit(", ", 1)[1] for s in dist}
    assert keys["events"] == "cityHash64(fingerprint))"
    assert keys["issues"] == "cityHash64(fingerprint))"
    assert keys["alerts"] == "cityHash64(alert_id))"
    # an issue's minutes, legacy counts and rollups live on the shard of its events
    for table in (
        "event_minutes",
        "event_minutes_legacy",
        "event_hours",
        "event_days",
        "event_day_users",
        "issue_minutes",
        "issue_days",
        "issue_month_users",
        "issue_latest",
    ):
        assert keys[table] == "cityHash64(fingerprint))", table


def test_rollup_views_read_and_write_each_shards_local_tables():
    views = [s for s in all_cluster_statements() if "MATERIALIZED VIEW" in s]
    for name in (
        "event_minutes_legacy",
        "event_hours",
        "event_days",
        "event_day_users",
        "issue_minutes",
        "issue_days",
        "issue_month_users",
    ):
        (view,) = [v for v in views if f".{name}_mv ON CLUSTER" in v]
        assert f"TO errorstream.{name}_local" in view
        assert "FROM errorstream.event_minutes_input_local" in view
    (view,) = [v for v in views if ".issue_latest_mv ON CLUSTER" in v]
    assert "TO errorstream.issue_latest_local" in view
    assert "FROM errorstream.events_local" in view


def test_clickhouse_parses_every_cluster_statement():
    """The real ClickHouse parser (chDB's formatQuery), in a fresh process."""
    statements = all_cluster_statements()
    script = textwrap.dedent(
        """
        import json, sys, chdb
        bad = []
        for sql in json.load(sys.stdin):
            quoted = sql.replace("\\\\", "\\\\\\\\").replace("'", "\\\\'")
            try:
                chdb.query(f"SELECT formatQuery('{quoted}')", "CSV")
            except Exception as exc:
                bad.append([sql[:120], str(exc)[:300]])
        print(json.dumps(bad))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
