"""One interface over two ClickHouse engines.

``ChdbBackend`` runs the ClickHouse engine in-process (chDB) with data on disk; only one
process can open a chDB path, so the worker owns it and serves queries over HTTP.
``ServerBackend`` talks to a ClickHouse server through clickhouse-connect.

Both take the same SQL text with server-side parameters (``{name:Type}`` placeholders and a
``params`` mapping): values never get formatted into SQL. Blocking calls; callers on an
event loop run them in a thread (chDB releases the GIL while a query runs).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson


class StorageError(RuntimeError):
    """ClickHouse refused a statement (bad SQL, bad data)."""


class ClickHouseUnavailable(StorageError):
    """ClickHouse cannot be reached or opened; retrying later may succeed."""


class Backend(Protocol):
    name: str
    database: str

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int: ...

    def close(self) -> None: ...


def _check_identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StorageError(f"invalid identifier {name!r}")
    return name


class ChdbBackend:
    """Embedded ClickHouse (chDB) with its data under ``path``."""

    name = "chdb"

    def __init__(self, path: str, database: str = "errorstream") -> None:
        try:
            from chdb import session
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ClickHouseUnavailable(
                "the embedded ClickHouse needs the 'chdb' package: pip install 'errorstream[pipeline]'"
            ) from exc
        self.path = path
        self.database = _check_identifier(database)
        self._lock = threading.Lock()  # one chDB session is not safe for concurrent queries
        try:
            self._session = session.Session(path)
        except Exception as exc:
            raise ClickHouseUnavailable(
                f"cannot open embedded ClickHouse at {path}: {exc}"
            ) from exc
        self.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        with self._lock:
            try:
                return self._session.query(sql, fmt, params=dict(params) if params else None)
            except Exception as exc:
                raise StorageError(str(exc).strip()) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        result = self._run(sql, "JSONEachRow", params)
        data = result.bytes() if result is not None else b""
        return [orjson.loads(line) for line in data.splitlines() if line]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        cols = ", ".join(_check_identifier(c) for c in columns)
        # Rows travel as JSONEachRow data after the statement: data, never SQL text.
        body = b"\n".join(orjson.dumps(dict(zip(columns, row, strict=True))) for row in rows)
        sql = (
            f"INSERT INTO {self.database}.{_check_identifier(table)} ({cols}) FORMAT JSONEachRow\n"
        )
        with self._lock:
            try:
                self._session.query(sql + body.decode("utf-8"), "CSV")
            except Exception as exc:
                raise StorageError(str(exc).strip()) from exc
        return len(rows)

    def close(self) -> None:
        with self._lock:
            try:
                self._session.close()
            except Exception:
                pass


class ServerBackend:
    """A ClickHouse server through clickhouse-connect (HTTP interface)."""

    name = "server"

    def __init__(self, url: str, database: str = "errorstream") -> None:
        try:
            import clickhouse_connect
        except ImportError as exc:  # pragma: no cover
            raise ClickHouseUnavailable("a ClickHouse server needs 'clickhouse-connect'") from exc
        self.database = _check_identifier(database)
        try:
            admin = clickhouse_connect.get_client(dsn=url)
            admin.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            self._client = clickhouse_connect.get_client(dsn=url, database=self.database)
        except Exception as exc:
            raise ClickHouseUnavailable(f"cannot reach ClickHouse server: {exc}") from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=dict(params) if params else None)
        except Exception as exc:
            raise StorageError(str(exc).strip()) from exc

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            result = self._client.query(sql, parameters=dict(params) if params else None)
        except Exception as exc:
            raise StorageError(str(exc).strip()) from exc
        return list(result.named_results())

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        try:
            self._client.insert(_check_identifier(table), rows, column_names=list(columns))
        except Exception as exc:
            raise StorageError(str(exc).strip()) from exc
        return len(rows)

    def close(self) -> None:
        self._client.close()


def open_backend(settings: Any) -> Backend:
    """The backend the settings name: a server when ``clickhouse_url`` is set, else chDB."""
    if settings.clickhouse_url:
        return ServerBackend(settings.clickhouse_url, settings.clickhouse_database)
    return ChdbBackend(settings.chdb_path, settings.clickhouse_database)
