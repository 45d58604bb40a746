"""Numbered, idempotent schema migrations for both ClickHouse backends.

Each ``migrations/NNNN_name.sql`` file holds one or more statements separated by ``;`` at
line end. ``{database}`` and ``{retention_days}`` are filled from validated settings
(identifiers and integers only). Applied versions are recorded in ``schema_migrations``;
running ``migrate`` twice is a no-op.

``retention_days`` is read at every run: when it differs from the events table's TTL, the TTL
is changed with ``ALTER TABLE ... MODIFY TTL`` (and only then, so a second run does nothing),
on the events table and on issue_latest, which holds one of its bodies per issue.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.storage.backend import Backend
from pipeline.storage.cluster import to_cluster

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name}: expected NNNN_name.sql")
        text = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
        )
        statements = tuple(s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip())
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return found


def render(statement: str, database: str, retention_days: int) -> str:
    return statement.replace("{database}", database).replace(
        "{retention_days}", str(int(retention_days))
    )


def applied_versions(backend: Backend) -> set[int]:
    backend.command(
        f"CREATE TABLE IF NOT EXISTS {backend.database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime('UTC')) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows = backend.query(f"SELECT version FROM {backend.database}.schema_migrations FINAL")
    return {int(r["version"]) for r in rows}


def migrate(
    backend: Backend, retention_days: int = 90, progress=None, cluster: str = ""
) -> list[Migration]:
    """Apply the pending migrations in order; returns the ones applied now. With ``cluster``,
    each statement is applied in its cluster variant (``pipeline/storage/cluster.py``)."""
    done = applied_versions(backend)
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements:
            sql = render(statement, backend.database, retention_days)
            for each in to_cluster(sql, cluster) if cluster else [sql]:
                backend.command(each)
        backend.insert(
            "schema_migrations",
            ["version", "name", "applied_at"],
            [[migration.version, migration.name, int(time.time())]],
        )
        applied.append(migration)
        if progress:
            progress(migration)
    if not cluster:  # on a cluster the TTL comes from the migration; see docs/scaling.md
        apply_retention(backend, retention_days)
    return applied


def current_retention(backend: Backend) -> int | None:
    """The events table's TTL in days, read from its definition (None without a TTL)."""
    rows = backend.query(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = 'events'",
        {"db": backend.database},
    )
    if not rows:
        return None
    match = re.search(r"TTL .*?toIntervalDay\((\d+)\)", rows[0]["engine_full"])
    return int(match.group(1)) if match else None


def apply_retention(backend: Backend, retention_days: int) -> bool:
    """Make the events TTL ``retention_days`` (and issue_latest's, whose bodies are the
    events table's: migration 0010); returns whether it had to change."""
    days = int(retention_days)
    if current_retention(backend) == days:
        return False
    backend.command(
        f"ALTER TABLE {backend.database}.events "
        f"MODIFY TTL toDateTime(timestamp) + INTERVAL {days} DAY"
    )
    if backend.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND name = 'issue_latest'",
        {"db": backend.database},
    ):
        backend.command(
            f"ALTER TABLE {backend.database}.issue_latest "
            f"MODIFY TTL toDateTime(last_at) + INTERVAL {days} DAY"
        )
    return True
