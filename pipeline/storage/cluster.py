"""The cluster variant of the DDL: pure functions from one rendered single-node statement to
the statements a sharded, replicated ClickHouse cluster needs (``clickhouse_cluster`` set).

    CREATE TABLE db.t (...) ENGINE = XMergeTree(args) ...
        → CREATE TABLE db.t_local ON CLUSTER c (...)
              ENGINE = ReplicatedXMergeTree('/clickhouse/tables/{shard}/db/t_local', '{replica}', args) ...
        → CREATE TABLE db.t ON CLUSTER c AS db.t_local
              ENGINE = Distributed(c, db, t_local, <sharding key of t>)
    CREATE TABLE db.t (...) ENGINE = Null        → t_local (Null) + Distributed t over it
    CREATE MATERIALIZED VIEW db.mv TO db.a AS SELECT ... FROM db.b
        → ... db.mv ON CLUSTER c TO db.a_local AS SELECT ... FROM db.b_local  (per shard)
    ALTER TABLE db.t ADD COLUMN ...              → on t_local and on t (both carry columns)
    ALTER TABLE db.t <anything else>             → on t_local only (indexes, constraints, TTL)
    INSERT INTO db.t (...) SELECT ... FROM db.u  → unchanged, through the Distributed tables
        (a backfill: reads every shard, each row goes to its shard by t's sharding key),
        with distributed_foreground_insert = 1 so it is on the shards when migrate returns

Queries and inserts keep using the plain names (the Distributed tables), so nothing else in
the code changes. Sharding keys keep one issue on one shard: ReplacingMergeTree collapses a
replayed event only within a shard, and an issue's timeline is then one shard's range.
``{shard}`` and ``{replica}`` are the server's macros (config.xml ``<macros>``).
"""

from __future__ import annotations

import re

LOCAL_SUFFIX = "_local"

# table → sharding expression of its Distributed table
SHARDING_KEYS: dict[str, str] = {
    "events": "cityHash64(fingerprint)",
    "event_minutes": "cityHash64(fingerprint)",
    "event_minutes_input": "cityHash64(fingerprint)",
    "event_minutes_legacy": "cityHash64(fingerprint)",
    "event_hours": "cityHash64(fingerprint)",
    "event_days": "cityHash64(fingerprint)",
    "event_day_users": "cityHash64(fingerprint)",
    "issue_minutes": "cityHash64(fingerprint)",
    "issue_days": "cityHash64(fingerprint)",
    "issue_month_users": "cityHash64(fingerprint)",
    "issue_latest": "cityHash64(fingerprint)",
    "issues": "cityHash64(fingerprint)",
    "alerts": "cityHash64(alert_id)",
    "issue_audit": "cityHash64(fingerprint)",
    "issue_signatures": "cityHash64(fingerprint)",
}
DEFAULT_SHARDING_KEY = "rand()"

_CREATE = re.compile(r"^\s*CREATE TABLE (IF NOT EXISTS )?(\w+)\.(\w+)", re.I)
_VIEW = re.compile(r"^\s*CREATE MATERIALIZED VIEW (IF NOT EXISTS )?(\w+)\.(\w+)", re.I)
_ALTER = re.compile(r"^\s*ALTER TABLE (\w+)\.(\w+)", re.I)
_INSERT = re.compile(r"^\s*INSERT INTO \w+\.\w+\s*(\([^()]*\))?", re.I)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*)MergeTree\b(\s*\(([^()]*)\))?", re.I)
_NULL_ENGINE = re.compile(r"ENGINE\s*=\s*Null\b", re.I)


class ClusterDDLError(ValueError):
    """A statement this module does not know how to distribute."""


def local_name(table: str) -> str:
    return table + LOCAL_SUFFIX


def replicated_engine(statement: str, database: str, table: str) -> str:
    """``XMergeTree(args)`` → ``ReplicatedXMergeTree('<zk path>', '{replica}', args)``."""

    def swap(m: re.Match) -> str:
        kind, args = m.group(1), (m.group(3) or "").strip()
        path = f"'/clickhouse/tables/{{shard}}/{database}/{table}'"
        params = ", ".join(p for p in (path, "'{replica}'", args) if p)
        return f"ENGINE = Replicated{kind}MergeTree({params})"

    out, n = _ENGINE.subn(swap, statement, count=1)
    if n != 1:
        raise ClusterDDLError(f"no MergeTree engine in: {statement[:80]}")
    return out


def distributed_table(
    database: str, table: str, cluster: str, sharding_key: str | None = None
) -> str:
    key = sharding_key or SHARDING_KEYS.get(table, DEFAULT_SHARDING_KEY)
    local = local_name(table)
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} "
        f"AS {database}.{local} ENGINE = Distributed({cluster}, {database}, {local}, {key})"
    )


def to_cluster(statement: str, cluster: str) -> list[str]:
    """The statements that replace one single-node statement on ``cluster``."""
    if m := _CREATE.match(statement):
        database, table = m.group(2), m.group(3)
        local = local_name(table)
        head = f"CREATE TABLE IF NOT EXISTS {database}.{local} ON CLUSTER {cluster}"
        body = statement[m.end() :]
        if _NULL_ENGINE.search(body):
            created = head + body
        else:
            created = replicated_engine(head + body, database, local)
        return [created, distributed_table(database, table, cluster)]
    if m := _VIEW.match(statement):
        database, view = m.group(2), m.group(3)
        body = statement[m.end() :]
        body = re.sub(
            rf"\b(TO|FROM)\s+{database}\.(\w+)",
            lambda t: f"{t.group(1)} {database}.{local_name(t.group(2))}",
            body,
        )
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{view} ON CLUSTER {cluster}{body}"
        ]
    if m := _ALTER.match(statement):
        database, table = m.group(1), m.group(2)
        body = statement[m.end() :]
        local = f"ALTER TABLE {database}.{local_name(table)} ON CLUSTER {cluster}{body}"
        if re.search(r"\b(ADD|DROP|MODIFY|RENAME) COLUMN\b", body, re.I):
            return [local, f"ALTER TABLE {database}.{table} ON CLUSTER {cluster}{body}"]
        return [local]
    if m := _INSERT.match(statement):
        if not re.match(r"\s*SELECT\b", statement[m.end() :], re.I):
            raise ClusterDDLError(f"only INSERT ... SELECT is distributed: {statement[:80]}")
        head = statement[: m.end()].rstrip()
        return [
            f"{head} SETTINGS distributed_foreground_insert = 1\n{statement[m.end() :].lstrip()}"
        ]
    if re.match(r"^\s*(CREATE DATABASE|DROP|TRUNCATE|OPTIMIZE)\b", statement, re.I):
        return [_with_on_cluster(statement, cluster)]
    raise ClusterDDLError(f"cannot render for a cluster: {statement[:80]}")


def _with_on_cluster(statement: str, cluster: str) -> str:
    """Insert ``ON CLUSTER`` after the object name of a simple statement."""
    return re.sub(
        r"^(\s*\w+(?: \w+)*? (?:IF (?:NOT )?EXISTS )?[\w.]+)",
        rf"\1 ON CLUSTER {cluster}",
        statement,
        count=1,
    )
