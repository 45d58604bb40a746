"""The read-only ClickHouse HTTP interface on the embedded store.

Only one process can open a chDB folder, so tools that speak ClickHouse's HTTP protocol
(clickhouse-connect, curl, Grafana's ClickHouse data source, DBeaver) reach the embedded
engine through the process that owns it: ``build_clickhouse_http(backend, settings)`` is
an aiohttp application that process serves on its own port (``clickhouse_http_port``), and
``errorstream clickhouse-http`` serves it standalone when no worker runs.

A request goes through, in order:

    credentials   Basic auth, X-ClickHouse-User / X-ClickHouse-Key, or user / password
                  parameters, compared in constant time with clickhouse_http_user / _password,
                  or, when clickhouse_http_password is empty, with the dashboard's
                  http_auth_user / http_auth_password (``Settings.clickhouse_http_credentials``)
    one statement the engine's parser rewrites the text (formatQuerySingleLine): several
                  statements are refused, comments are gone, what runs is what was parsed
    kind          EXPLAIN AST names the statement: SELECT (WITH, UNION, INTERSECT), SHOW,
                  DESCRIBE, EXPLAIN, EXISTS. INTO OUTFILE, the file() function and table
                  functions are refused too: the embedded engine honours INTO OUTFILE and
                  file() under readonly = 1, and DESCRIBE TABLE url(...) reads the URL
    readonly      the statement runs with SETTINGS <client settings>, max_execution_time,
                  max_result_rows, max_memory_usage (the lower of the client's and the
                  configured limit), readonly = 1: the engine refuses writes, DDL, setting
                  changes inside the query and table functions

A statement that passed the gate is remembered by its text (``StatementCache``): repeated
queries (dashboards) skip the two parse calls.

Output formats are the engine's (``default_format`` or a FORMAT clause); errors are
ClickHouse's: ``Code: N. DB::Exception: ... (NAME)`` with X-ClickHouse-Exception-Code and
the status code a ClickHouse server gives. docs/analytics.md lists what is supported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from pipeline.metrics import Metrics
from pipeline.storage.backend import ChdbBackend, RawResult, StorageError

DEFAULT_FORMAT = "TabSeparated"
MAX_QUERY_BYTES = 1024 * 1024

# Request parameters that are the protocol's, not settings of the query.
TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
        "wait_end_of_query",
        "buffer_size",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "client_protocol_version",
        "stacktrace",
        "close_session",
        "role",
    }
)
# Limits a client may lower but not raise: name -> the Settings field holding the maximum.
LIMITS = {
    "max_execution_time": "clickhouse_http_max_execution_time",
    "max_result_rows": "clickhouse_http_max_result_rows",
    "max_memory_usage": "clickhouse_http_max_memory_usage",
}
# Settings a client may not change at all: they widen what a read-only query may do.
FIXED_SETTINGS = frozenset({"readonly", "allow_ddl", "allow_introspection_functions"})
# Statement kinds, as the first word of EXPLAIN AST names them.
ALLOWED_KINDS = ("Select", "Show", "Describe", "Explain", "Exists")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_PREFIX = re.compile(r"^(?:Code: \d+\. DB::Exception: )+")
_WRAPPED = re.compile(r"\(([A-Z][A-Z0-9_]+)\) \(version [^)]*\)\.? \(\1\)")
_VERSION = re.compile(r" \(version [^)]*\)\.?$")
_FORMAT_CLAUSE = re.compile(r"\sFORMAT\s+([A-Za-z0-9_]+)(?:\s+SETTINGS\s.*)?$", re.S)
_TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"|[A-Za-z_]\w*|\S")
_FILE_FUNCTION = re.compile(r"^\s*Function file(?:\s|$)", re.M)

# ClickHouse error codes this module raises itself (src/Common/ErrorCodes.cpp).
SYNTAX_ERROR = (62, "SYNTAX_ERROR")
UNKNOWN_FORMAT = (73, "UNKNOWN_FORMAT")
UNKNOWN_DATABASE = (81, "UNKNOWN_DATABASE")
NOT_IMPLEMENTED = (48, "NOT_IMPLEMENTED")
READONLY = (164, "READONLY")
QUERY_IS_TOO_LARGE = (202, "QUERY_IS_TOO_LARGE")
INTO_OUTFILE_NOT_ALLOWED = (486, "INTO_OUTFILE_NOT_ALLOWED")
AUTHENTICATION_FAILED = (516, "AUTHENTICATION_FAILED")

# HTTP status per error name, as a ClickHouse server maps them
# (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp); anything else is 500. One difference:
# a failed authentication is 401 here (servers before 24.x; current ones answer 403).
_STATUS = {
    "AUTHENTICATION_FAILED": 401,
    "REQUIRED_PASSWORD": 401,
    "ACCESS_DENIED": 403,
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE "
            "CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME "
            "CANNOT_PARSE_NUMBER CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 "
            "CANNOT_PARSE_IPV6 CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID "
            "DUPLICATE_COLUMN ILLEGAL_COLUMN UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE "
            "THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR "
            "INCORRECT_DATA TYPE_MISMATCH VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE "
            "UNKNOWN_QUERY_PARAMETER"
        ).split(),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE "
            "UNKNOWN_DATABASE UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING "
            "UNKNOWN_AGGREGATE_FUNCTION UNKNOWN_FORMAT UNKNOWN_DATABASE_ENGINE "
            "UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE"
        ).split(),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "TIMEOUT_EXCEEDED": 408,
}


class ClickHouseError(Exception):
    """An error in ClickHouse's shape: numeric code, name, message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def of(cls, kind: tuple[int, str], message: str) -> ClickHouseError:
        return cls(kind[0], kind[1], message)

    @classmethod
    def from_engine(cls, text: str) -> ClickHouseError:
        """The engine's own message (``Code: 60. DB::Exception: ... (UNKNOWN_TABLE)``)."""
        code = _CODE.search(text)
        names = _NAME.findall(text)
        # the embedded engine wraps some messages in their own code and version again:
        # "Code: 164. DB::Exception: Code: 164. DB::Exception: ... (READONLY) (version V). (READONLY)"
        core = _PREFIX.sub("", text.strip())
        while (folded := _WRAPPED.sub(r"(\1)", core)) != core:
            core = folded
        core = _VERSION.sub("", core)
        return cls(int(code.group(1)) if code else 1000, names[-1] if names else "", core)

    @property
    def status(self) -> int:
        return _STATUS.get(self.name, 500)

    def body(self, version: str) -> bytes:
        """``Code: N. DB::Exception: <message>. (NAME) (version V)``, as a server writes it."""
        text = self.message
        if not text.endswith(f"({self.name})"):
            text = f"{text.rstrip('.')}. ({self.name})"
        return f"Code: {self.code}. DB::Exception: {text} (version {version})\n".encode()


@dataclass
class HttpQuery:
    """One request, decoded: the statement text and how to run it."""

    sql: str
    fmt: str = DEFAULT_FORMAT
    database: str = ""
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    query_id: str = ""
    compress: bool = False


def content_type(fmt: str) -> str:
    """The Content-Type a ClickHouse server sends for an output format."""
    f = fmt.lower()
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        header = "present" if "withnames" in f else "absent"
        return f"text/csv; charset=UTF-8; header={header}"
    if f.startswith(("json", "ndjson")):
        return "application/json; charset=UTF-8"
    if f == "xml":
        return "application/xml; charset=UTF-8"
    if f.startswith(("native", "rowbinary", "parquet", "arrow", "orc", "avro", "protobuf")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[str, str]:
    """User and password from Basic auth, the X-ClickHouse-User / X-ClickHouse-Key headers
    or the user / password parameters; ``default`` without a password when none is given."""
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = (
                base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise ClickHouseError.of(
                AUTHENTICATION_FAILED, "Invalid Basic authorization header"
            ) from None
        return user or "default", password
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        return headers.get("X-ClickHouse-User") or "default", headers.get("X-ClickHouse-Key", "")
    return query.get("user") or "default", query.get("password", "")


def check_credentials(user: str, password: str, settings: Any) -> None:
    want_user, want_password = settings.clickhouse_http_credentials
    ok_user = hmac.compare_digest(user.encode(), want_user.encode())
    ok_password = hmac.compare_digest(password.encode(), want_password.encode())
    if not (ok_user and ok_password):
        raise ClickHouseError.of(
            AUTHENTICATION_FAILED,
            f"{user}: Authentication failed: password is incorrect, "
            "or there is no user with such name",
        )


def decode_request(
    query: Mapping[str, str], body: str, settings: Any, formats: frozenset[str]
) -> HttpQuery:
    """Split the parameters into statement, format, database, ``param_<name>`` values and
    settings; the body continues the ``query`` parameter (or is the whole statement)."""
    sql = query.get("query", "")
    if body:
        sql = f"{sql}\n{body}" if sql else body
    if len(sql.encode()) > MAX_QUERY_BYTES:
        raise ClickHouseError.of(QUERY_IS_TOO_LARGE, f"Query is too large ({len(sql)})")
    fmt = query.get("default_format") or DEFAULT_FORMAT
    if fmt not in formats:
        raise ClickHouseError.of(UNKNOWN_FORMAT, f"Unknown output format {fmt}")
    database = query.get("database") or settings.clickhouse_database
    if not _IDENTIFIER.match(database):
        raise ClickHouseError.of(UNKNOWN_DATABASE, f"Database {database} does not exist")
    params: dict[str, str] = {}
    client: dict[str, str] = {}
    for name, value in query.items():
        if name.startswith("param_"):
            params[name[6:]] = value
        elif name in TRANSPORT_PARAMS:
            continue
        elif not _SETTING_NAME.match(name):
            raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting {name}")
        elif name == "readonly" and value in ("1", "2"):
            continue  # asking for read-only is asking for what every query gets
        elif name in FIXED_SETTINGS:
            raise ClickHouseError.of(READONLY, f"Cannot modify '{name}' setting in readonly mode")
        else:
            client[name] = value
    return HttpQuery(
        sql=sql,
        fmt=fmt,
        database=database,
        params=params,
        settings=query_settings(client, settings),
        query_id=query.get("query_id") or str(uuid.uuid4()),
        compress=query.get("enable_http_compression") == "1",
    )


def query_settings(client: Mapping[str, str], settings: Any) -> dict[str, Any]:
    """The SETTINGS of one query: the client's, then the limits (the lower of the client's
    and the configured one; 0 means unlimited to ClickHouse, so it means the configured
    one here), then readonly = 1, last, so nothing before it can undo it."""
    out: dict[str, Any] = {k: v for k, v in client.items() if k not in LIMITS}
    for name, field_name in LIMITS.items():
        limit = getattr(settings, field_name)
        try:
            asked = float(client[name]) if name in client else 0.0
        except ValueError:
            raise ClickHouseError.of(
                (72, "CANNOT_PARSE_NUMBER"), f"Cannot parse {name}={client[name]!r}"
            ) from None
        value = min(asked, limit) if asked > 0 else limit
        out[name] = int(value) if isinstance(limit, int) else value
    out["readonly"] = 1
    return out


def escape_param(text: str) -> str:
    """A String query-parameter value as the engine reads it (escaped text, as in
    TabSeparated): backslash, tab and line breaks escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def into_outfile(canonical: str) -> bool:
    """Whether a statement (as the engine's formatter wrote it: no comments) has an
    INTO OUTFILE clause outside string literals and quoted names."""
    words = [t.upper() for t in _TOKEN.findall(canonical) if t[0] not in "'`\""]
    return any(a == "INTO" and b == "OUTFILE" for a, b in zip(words, words[1:], strict=False))


def output_format(canonical: str, default: str) -> str:
    match = _FORMAT_CLAUSE.search(canonical)
    return match.group(1) if match else default


class StatementCache:
    """Statements that passed the gate, by their text: the canonical text the engine's
    parser wrote for them. The verdict depends on the text alone (a parameter's value is a
    typed literal, it cannot add a clause or a function), so a dashboard's repeated query
    skips the two parse calls. Bounded; oldest first out."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()  # queries run in threads

    def get(self, sql: str) -> str | None:
        with self._lock:
            canonical = self._entries.get(sql)
            if canonical is not None:
                self._entries.move_to_end(sql)
            return canonical

    def put(self, sql: str, canonical: str) -> None:
        with self._lock:
            self._entries[sql] = canonical
            self._entries.move_to_end(sql)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def check_statement(backend: ChdbBackend, q: HttpQuery) -> str:
    """The gate: the statement as the engine's parser rewrote it, or ClickHouseError."""
    try:
        canonical = backend.query_raw(
            "SELECT formatQuerySingleLine({q:String})", "RawBLOB", {"q": escape_param(q.sql)}
        ).data.decode()
        if not canonical.strip():
            raise ClickHouseError.of(SYNTAX_ERROR, "Empty query")
        if into_outfile(canonical):
            raise ClickHouseError.of(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
        ast = backend.query_raw(f"EXPLAIN AST {canonical}", "TabSeparatedRaw", q.params)
        kind = ast.data.decode().split(None, 1)[0] if ast.data.strip() else ""
    except StorageError as exc:
        raise ClickHouseError.from_engine(str(exc)) from None
    if not kind.startswith(ALLOWED_KINDS):
        raise ClickHouseError.of(
            READONLY,
            f"Cannot execute query in readonly mode: {kind} is not a SELECT, SHOW, "
            "DESCRIBE, EXPLAIN or EXISTS statement",
        )
    tree = ast.data.decode()
    if _FILE_FUNCTION.search(tree):
        raise ClickHouseError.of(READONLY, "Cannot execute query in readonly mode: file()")
    function = table_function(tree)
    if function:
        raise ClickHouseError.of(
            READONLY, f"Cannot execute query in readonly mode: table function {function}()"
        )
    return canonical


def table_function(tree: str) -> str:
    """The first table function in an EXPLAIN AST tree (a Function node that is the child
    of a TableExpression), or "". SELECTs with one are refused by readonly = 1 already;
    DESCRIBE TABLE url(...) / file(...) would still infer a schema, reading the URL or file."""
    lines = tree.splitlines()
    for parent, child in zip(lines, lines[1:], strict=False):
        depth = len(parent) - len(parent.lstrip())
        if (
            parent.strip().startswith("TableExpression")
            and child.strip().startswith("Function ")
            and len(child) - len(child.lstrip()) == depth + 1
        ):
            return child.split()[1]
    return ""


def run_query(
    backend: ChdbBackend, q: HttpQuery, cache: StatementCache | None = None
) -> tuple[RawResult, str]:
    """The gate and the query, on the engine (blocking; call it in a thread)."""
    canonical = cache.get(q.sql) if cache is not None else None
    if canonical is None:
        canonical = check_statement(backend, q)
        if cache is not None:
            cache.put(q.sql, canonical)
    fmt = output_format(canonical, q.fmt)
    try:
        result = backend.query_raw(canonical, q.fmt, q.params, q.settings, database=q.database)
    except StorageError as exc:
        raise ClickHouseError.from_engine(str(exc)) from None
    return result, fmt


def summary(result: RawResult) -> str:
    return orjson.dumps(
        {
            "read_rows": str(result.rows_read),
            "read_bytes": str(result.bytes_read),
            "written_rows": "0",
            "written_bytes": "0",
            "total_rows_to_read": str(result.rows_read),
            "result_bytes": str(len(result.data)),
            "elapsed_ns": str(int(result.elapsed * 1e9)),
        }
    ).decode()


def build_clickhouse_http(
    backend: ChdbBackend, settings: Any, metrics: Metrics | None = None
) -> web.Application:
    """The interface as an aiohttp application over ``backend`` (the process's own chDB)."""
    engine = backend.query("SELECT version() AS v, timezone() AS tz")[0]
    version, timezone = str(engine["v"]), str(engine["tz"])
    formats = frozenset(
        r["name"] for r in backend.query("SELECT name FROM system.formats WHERE is_output")
    )
    display_name = socket.gethostname()
    statements = StatementCache()

    def headers(query_id: str) -> dict[str, str]:
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": timezone,
            "X-ClickHouse-Server-Display-Name": display_name,
        }

    def count(outcome: str, started: float | None = None) -> None:
        if metrics is not None:
            metrics.chhttp_queries.labels(outcome).inc()
            if started is not None:
                metrics.chhttp_query_latency.observe(time.perf_counter() - started)

    def error(exc: ClickHouseError, query_id: str) -> web.Response:
        return web.Response(
            status=exc.status,
            body=exc.body(version),
            headers={
                **headers(query_id),
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(exc.code),
            },
        )

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        query: dict[str, str] = dict(request.query)
        body = ""
        if request.method == "POST":
            if request.content_type == "multipart/form-data":
                form = await request.post()
                for name, value in form.items():
                    if not isinstance(value, str):
                        exc = ClickHouseError.of(
                            NOT_IMPLEMENTED, "External data (file parts) is not supported"
                        )
                        count("refused")
                        return error(exc, query.get("query_id", ""))
                    query[name] = value
            else:
                body = (await request.read()).decode("utf-8", errors="replace")
        query_id = query.get("query_id") or str(uuid.uuid4())
        query["query_id"] = query_id
        if "database" not in query and "X-ClickHouse-Database" in request.headers:
            query["database"] = request.headers["X-ClickHouse-Database"]
        if "default_format" not in query and "X-ClickHouse-Format" in request.headers:
            query["default_format"] = request.headers["X-ClickHouse-Format"]
        try:
            check_credentials(*credentials(request.headers, query), settings)
        except ClickHouseError as exc:
            count("auth")
            return error(exc, query_id)
        if not body and not query.get("query"):
            if request.method == "POST":
                count("refused")
                return error(ClickHouseError.of(SYNTAX_ERROR, "Empty query"), query_id)
            return web.Response(text="Ok.\n")
        try:
            q = decode_request(query, body, settings, formats)
            result, fmt = await asyncio.to_thread(run_query, backend, q, statements)
        except ClickHouseError as exc:
            count("refused" if exc.name in ("READONLY", "INTO_OUTFILE_NOT_ALLOWED") else "error")
            return error(exc, query_id)
        response = web.Response(
            body=result.data,
            headers={
                **headers(query_id),
                "Content-Type": content_type(fmt),
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Summary": summary(result),
            },
        )
        if q.compress:
            response.enable_compression()
        count("ok", started)
        return response

    app = web.Application(client_max_size=MAX_QUERY_BYTES + 65536)
    app.router.add_get("/ping", ping)
    app.router.add_get("/replicas_status", ping)
    app.router.add_route("GET", "/", handle)
    app.router.add_route("POST", "/", handle)
    return app


class ClickHouseHttpService:
    """Start / stop the interface inside a running event loop (the sink process's)."""

    def __init__(self, backend: ChdbBackend, settings: Any, metrics: Metrics | None = None) -> None:
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port = 0

    @staticmethod
    def enabled(backend: Any, settings: Any) -> bool:
        """Served for the embedded engine only (a server has its own HTTP interface)."""
        return bool(settings.clickhouse_http_port) and isinstance(backend, ChdbBackend)

    async def start(self, port: int | None = None) -> int:
        app = build_clickhouse_http(self.backend, self.settings, self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.settings.clickhouse_http_host,
            self.settings.clickhouse_http_port if port is None else port,
        )
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else int(port or 0)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def run_standalone(settings: Any) -> int:
    """``errorstream clickhouse-http``: open the chDB folder and serve the interface on
    clickhouse_http_host:clickhouse_http_port (when no worker has the folder open)."""
    import sys

    from pipeline.logs import configure_logging

    if settings.clickhouse_url:
        print(
            "errorstream clickhouse-http: clickhouse_url names a ClickHouse server; "
            "point clients at its own HTTP interface",
            file=sys.stderr,
        )
        return 2
    if not settings.clickhouse_http_port:
        print("errorstream clickhouse-http: clickhouse_http_port is 0 (off)", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        backend = ChdbBackend(settings.chdb_path, settings.clickhouse_database)
    except StorageError as exc:
        print(f"errorstream clickhouse-http: {exc}", file=sys.stderr)
        return 2
    try:
        app = build_clickhouse_http(backend, settings, Metrics())
        print(
            f"ClickHouse HTTP interface (read-only) on "
            f"http://{settings.clickhouse_http_host}:{settings.clickhouse_http_port} "
            f"over {settings.chdb_path}",
            file=sys.stderr,
        )
        web.run_app(
            app,
            host=settings.clickhouse_http_host,
            port=settings.clickhouse_http_port,
            print=None,
            access_log=None,
        )
    finally:
        backend.close()
    return 0
