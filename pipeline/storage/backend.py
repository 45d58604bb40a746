"""One interface over two ClickHouse engines.

``ChdbBackend`` runs the ClickHouse engine in-process (chDB) with data on disk; only one
process can open a chDB path, so the worker owns it and serves queries over HTTP.
``ServerBackend`` talks to a ClickHouse server through clickhouse-connect.

Both take the same SQL text with server-side parameters (``{name:Type}`` placeholders and a
``params`` mapping): values never get formatted into SQL. Blocking calls; callers on an
event loop run them in a thread (chDB releases the GIL while a query runs).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from pipeline.storage.encoding import ColumnEncoder


class StorageError(RuntimeError):
    """ClickHouse refused a statement (bad SQL, bad data)."""


class ClickHouseUnavailable(StorageError):
    """ClickHouse cannot be reached or opened; retrying later may succeed."""


class RowsRejected(StorageError):
    """ClickHouse refused the *data* of an insert (a value it cannot parse or store, a
    violated constraint): retrying the same rows fails again, so they go to the dead-letter
    topic. Any other insert failure is ``ClickHouseUnavailable``: retried, never dropped."""


# Error names (the ``(NAME)`` ClickHouse ends its messages with) that blame the rows.
DATA_ERRORS = frozenset(
    {
        "VIOLATED_CONSTRAINT",
        "TYPE_MISMATCH",
        "CANNOT_CONVERT_TYPE",
        "CANNOT_PARSE_TEXT",
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        "CANNOT_PARSE_DATETIME",
        "CANNOT_PARSE_DATE",
        "CANNOT_PARSE_NUMBER",
        "CANNOT_PARSE_QUOTED_STRING",
        "CANNOT_PARSE_ESCAPE_SEQUENCE",
        "CANNOT_READ_ALL_DATA",
        "INCORRECT_DATA",
        "TOO_LARGE_STRING_SIZE",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
        "DECIMAL_OVERFLOW",
    }
)
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


def insert_error(exc: BaseException) -> StorageError:
    """Classify a failed insert: the rows' fault (``RowsRejected``) or the engine's."""
    text = str(exc).strip()
    match = _ERROR_NAME.search(text)
    if match and match.group(1) in DATA_ERRORS:
        return RowsRejected(text)
    return ClickHouseUnavailable(text)


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


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    return str(value)


def _chdb_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """chDB takes parameter values as text: arrays go as ClickHouse literals
    (``['a','b']``), what clickhouse-connect sends to a server for a Python list."""
    if not params:
        return None
    return {k: _literal(v) if isinstance(v, list | tuple) else v for k, v in params.items()}


@dataclass(frozen=True)
class RawResult:
    """A query's output in the format asked for, and what the engine read for it."""

    data: bytes
    rows_read: int = 0
    bytes_read: int = 0
    elapsed: float = 0.0


def setting_literal(value: Any) -> str:
    """A setting value as SQL: numbers as they are, anything else as a quoted string."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return _literal(str(value))


def settings_clause(settings: Mapping[str, Any] | None) -> str:
    """``SETTINGS a = 1, b = 'x'`` for a query's end (empty without settings); applied
    left to right by the engine, so a later entry overrides an earlier one."""
    if not settings:
        return ""
    pairs = ", ".join(f"{_check_identifier(k)} = {setting_literal(v)}" for k, v in settings.items())
    return f"\nSETTINGS {pairs}"


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
        self._types: dict[str, dict[str, str]] = {}
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
                return self._session.query(sql, fmt, params=_chdb_params(params))
            except Exception as exc:
                raise StorageError(str(exc).strip()) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        result = self._run(sql, "JSONEachRow", params)
        data = result.bytes() if result is not None else b""
        return [orjson.loads(line) for line in data.splitlines() if line]

    def query_raw(
        self,
        sql: str,
        fmt: str = "TabSeparated",
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        database: str = "",
    ) -> RawResult:
        """Run one statement and return its output in ``fmt`` (any ClickHouse output
        format; a FORMAT clause in ``sql`` wins), with ``settings`` applied to this query
        only (a SETTINGS clause at its end) and unqualified names resolved in ``database``
        (``USE`` for this query, switched back before the lock is released)."""
        text = sql + settings_clause(settings)
        with self._lock:
            try:
                if database:
                    self._session.query(f"USE {_check_identifier(database)}", "CSV")
                try:
                    result = self._session.query(text, fmt, params=_chdb_params(params))
                finally:
                    if database:
                        self._session.query("USE default", "CSV")
            except Exception as exc:
                raise StorageError(str(exc).strip()) from exc
        if result is None:
            return RawResult(b"")
        return RawResult(
            data=result.bytes(),
            rows_read=int(result.rows_read()),
            bytes_read=int(result.bytes_read()),
            elapsed=float(result.elapsed()),
        )

    def column_types(self, table: str) -> dict[str, str]:
        types = self._types.get(table)
        if types is None:
            rows = self.query(f"DESCRIBE TABLE {self.database}.{_check_identifier(table)}")
            types = self._types[table] = {r["name"]: r["type"] for r in rows}
        return types

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert through Arrow: columns become Arrow arrays and the engine reads them with
        the ``Python()`` table function, no text encoding (bench/bench_sink.py measures the
        alternatives; Arrow was 2-4x faster than JSONEachRow text)."""
        if not rows:
            return 0
        cols = ", ".join(_check_identifier(c) for c in columns)
        target = f"{self.database}.{_check_identifier(table)}"
        try:
            types = self.column_types(table)
        except StorageError as exc:
            raise insert_error(exc) from exc
        try:
            # read by name from this frame by the Python() table function below
            es_insert_batch = ColumnEncoder.for_types([types[c] for c in columns]).arrow(  # noqa: F841
                columns, rows
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise RowsRejected(
                f"cannot encode rows for {table}: {type(exc).__name__}: {exc}"
            ) from exc
        sql = f"INSERT INTO {target} ({cols}) SELECT * FROM Python(es_insert_batch)"
        with self._lock:
            try:
                self._session.query(sql, "CSV")
            except Exception as exc:
                self._types.pop(table, None)
                raise insert_error(exc) from exc
        return len(rows)

    def insert_json(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert as JSONEachRow text: the slower path, kept for the benchmark."""
        if not rows:
            return 0
        cols = ", ".join(_check_identifier(c) for c in columns)
        body = b"\n".join(
            orjson.dumps(dict(zip(columns, row, strict=True)), default=_bytes_as_text)
            for row in rows
        )
        sql = (
            f"INSERT INTO {self.database}.{_check_identifier(table)} ({cols}) FORMAT JSONEachRow\n"
        )
        with self._lock:
            try:
                self._session.query(sql + body.decode("utf-8"), "CSV")
            except Exception as exc:
                raise insert_error(exc) from exc
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
            self._types: dict[str, dict[str, str]] = {}
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
            types = self._types.get(table)
            if types is None:
                described = self.query(f"DESCRIBE TABLE {_check_identifier(table)}")
                types = self._types[table] = {r["name"]: r["type"] for r in described}
            times = [i for i, c in enumerate(columns) if "DateTime" in types.get(c, "")]
            if times:  # rows carry epoch seconds; clickhouse-connect wants datetimes
                rows = [_with_datetimes(row, times) for row in rows]
            self._client.insert(_check_identifier(table), rows, column_names=list(columns))
        except StorageError as exc:
            raise insert_error(exc) from exc
        except Exception as exc:
            raise insert_error(exc) from exc
        return len(rows)

    def close(self) -> None:
        self._client.close()


def _bytes_as_text(value: Any) -> str:
    """orjson's fallback for bytes values (the sink's payloads): their UTF-8 text."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _with_datetimes(row: Sequence[Any], indexes: list[int]) -> list[Any]:
    out = list(row)
    for i in indexes:
        if isinstance(out[i], int | float):
            out[i] = datetime.fromtimestamp(out[i], UTC)
    return out


def open_backend(settings: Any) -> Backend:
    """The backend the settings name: a server when ``clickhouse_url`` is set, else chDB."""
    if settings.clickhouse_url:
        return ServerBackend(settings.clickhouse_url, settings.clickhouse_database)
    return ChdbBackend(settings.chdb_path, settings.clickhouse_database)
