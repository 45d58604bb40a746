"""The read-only ClickHouse HTTP interface on a real chDB store (migrations applied, rows
stored through the sink's row builders), spoken to by clickhouse-connect and curl."""

from __future__ import annotations

import collections
import csv
import gzip
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import clickhouse_connect
import pyarrow.parquet as pq
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from pipeline import queries
from pipeline.kafka_local import free_ports
from pipeline.storage import StorageError
from tests.integration.analytics_data import DAY, NOW, PASSWORD, ServerThread, generate, open_store

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]
ERROR_BODY = re.compile(
    r"^Code: (\d+)\. DB::Exception: .+ \(([A-Z_]+)\) \(version [\d.]+\)\n$", re.S
)


@pytest.fixture(scope="module")
def data():
    return generate(1500, seed=5)


@pytest.fixture(scope="module")
def backend(tmp_path_factory, data):
    b = open_store(str(tmp_path_factory.mktemp("chhttp") / "clickhouse"), data)
    yield b
    b.close()


@pytest.fixture(scope="module")
def server(backend):
    # small limits, so a test can go over them
    with ServerThread(
        backend,
        clickhouse_http_max_result_rows=5000,
        clickhouse_http_max_execution_time=1.0,
    ) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return clickhouse_connect.get_client(
        host="127.0.0.1", port=server.port, username="default", password=PASSWORD
    )


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode()


def curl(server, *args: str, query: dict | None = None, path: str = "/", auth=True) -> Reply:
    """curl, with the response's status line and headers parsed from ``-D``."""
    url = server.url + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    cmd = ["curl", "-s", "-D", "-", "-o", "-", url]
    if auth:
        cmd[1:1] = ["-u", f"default:{PASSWORD}"]
    out = subprocess.run([*cmd, *args], capture_output=True, timeout=60, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body)


def assert_error(reply: Reply, status: int, name: str) -> int:
    assert reply.status == status, (reply.status, reply.text)
    match = ERROR_BODY.match(reply.text)
    assert match, reply.text
    assert match.group(2) == name, reply.text
    assert reply.headers["x-clickhouse-exception-code"] == match.group(1)
    return int(match.group(1))


# -- clickhouse-connect, unchanged ---------------------------------------------------------


def test_clickhouse_connect_reads_the_counts_the_query_api_gives(client, backend, data):
    assert client.server_version.startswith("26.")
    assert str(client.server_tz) == "UTC"
    since, until = NOW - 2 * DAY, NOW + 600
    top = queries.top_issues(backend, since, until, limit=20)
    rows = client.query(
        "SELECT fingerprint, sum(events) AS n FROM event_minutes FINAL "
        "WHERE minute >= toDateTime({lo:UInt32}) AND minute < toDateTime({hi:UInt32}) "
        "GROUP BY fingerprint ORDER BY n DESC, fingerprint",
        parameters={"lo": int(since), "hi": int(until)},
    ).result_rows
    assert {fp: n for fp, n in rows} == {i["fingerprint"]: i["events"] for i in top["issues"]}
    # and both are what was generated
    counted = collections.Counter(
        r["_meta"]["fingerprint"] for r in data.records if since <= r["timestamp"] < until
    )
    assert dict(rows) == dict(counted)
    assert client.command("SELECT count() FROM events") == queries.event_count(backend)["events"]


def test_query_df_and_query_arrow_return_typed_columns(client, data):
    df = client.query_df(
        "SELECT service, level, count() AS n, max(timestamp) AS latest FROM events "
        "GROUP BY service, level ORDER BY service, level"
    )
    stored = [r for r in data.records if r["_meta"]["body_stored"]]
    want = collections.Counter((r["service"], r["level"]) for r in stored)
    assert {(s, lv): int(n) for s, lv, n in zip(df.service, df.level, df.n, strict=True)} == want
    assert str(df.latest.dtype).startswith("datetime64")
    table = client.query_arrow(
        "SELECT fingerprint, count() AS n FROM events GROUP BY fingerprint ORDER BY fingerprint"
    )
    assert table.column_names == ["fingerprint", "n"]
    by_fp = collections.Counter(r["_meta"]["fingerprint"] for r in stored)
    assert dict(zip(table["fingerprint"].to_pylist(), table["n"].to_pylist(), strict=True)) == dict(
        by_fp
    )


def test_clickhouse_connect_parameters_including_form_encoded(server, client):
    sql = "SELECT {s:String} AS s, {n:UInt32} + 1 AS n, {xs:Array(String)} AS xs"
    params = {"s": "it's a\ttab\nand é", "n": 41, "xs": ["a", "b'c"]}
    assert client.query(sql, parameters=params).result_rows == [
        ("it's a\ttab\nand é", 42, ["a", "b'c"])
    ]
    form = clickhouse_connect.get_client(
        host="127.0.0.1",
        port=server.port,
        username="default",
        password=PASSWORD,
        form_encode_query_params=True,
    )
    assert form.query(sql, parameters=params).result_rows == [
        ("it's a\ttab\nand é", 42, ["a", "b'c"])
    ]


def test_clickhouse_connect_sees_errors_and_bad_passwords(server, client):
    with pytest.raises(DatabaseError, match="code: 60"):
        client.query("SELECT * FROM no_such_table")
    with pytest.raises(DatabaseError, match="code: 164"):
        client.command("INSERT INTO events (event_id) VALUES ('x')")
    with pytest.raises(DatabaseError, match="516"):
        clickhouse_connect.get_client(
            host="127.0.0.1", port=server.port, username="default", password="wrong"
        )


# -- curl ---------------------------------------------------------------------------------


def test_query_in_the_parameter_the_body_or_both(server, backend):
    n = queries.event_count(backend)["events"]
    get = curl(server, query={"query": "SELECT count() FROM events"})
    assert get.status == 200 and get.text == f"{n}\n"
    assert get.headers["x-clickhouse-format"] == "TabSeparated"
    assert get.headers["content-type"].startswith("text/tab-separated-values")
    assert get.headers["x-clickhouse-timezone"] == "Etc/UTC"
    assert get.headers["x-clickhouse-server-display-name"]
    assert re.fullmatch(r"[0-9a-f-]{36}", get.headers["x-clickhouse-query-id"])
    summary = json.loads(get.headers["x-clickhouse-summary"])
    assert int(summary["result_bytes"]) == len(get.body)
    post = curl(server, "--data-binary", "SELECT count() FROM events")
    assert post.text == f"{n}\n"
    both = curl(
        server,
        "--data-binary",
        "FROM events WHERE level = 'fatal'",
        query={"query": "SELECT count()", "query_id": "my-query-1"},
    )
    fatal = backend.query("SELECT count() AS n FROM errorstream.events WHERE level = 'fatal'")
    assert both.text == f"{fatal[0]['n']}\n"
    assert both.headers["x-clickhouse-query-id"] == "my-query-1"


def test_formats_pass_through_to_the_engine(server, data):
    sql = "SELECT service, count() AS n FROM events GROUP BY service ORDER BY service"
    stored = collections.Counter(r["service"] for r in data.records if r["_meta"]["body_stored"])
    want = sorted(stored.items())

    each = curl(server, "--data-binary", sql, query={"default_format": "JSONEachRow"})
    assert each.headers["content-type"].startswith("application/json")
    assert [(r["service"], int(r["n"])) for r in map(json.loads, each.text.splitlines())] == want

    tsv = curl(server, "--data-binary", sql + " FORMAT TabSeparatedWithNames")
    assert tsv.headers["x-clickhouse-format"] == "TabSeparatedWithNames"
    lines = [line.split("\t") for line in tsv.text.splitlines()]
    assert lines[0] == ["service", "n"] and [(s, int(n)) for s, n in lines[1:]] == want

    as_csv = curl(server, "--data-binary", sql, query={"default_format": "CSV"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert [(s, int(n)) for s, n in csv.reader(io.StringIO(as_csv.text))] == want

    parquet = curl(server, "--data-binary", sql, query={"default_format": "Parquet"})
    assert parquet.headers["content-type"] == "application/octet-stream"
    table = pq.read_table(io.BytesIO(parquet.body))
    assert list(zip(table["service"].to_pylist(), table["n"].to_pylist(), strict=True)) == want

    unknown = curl(server, "--data-binary", sql, query={"default_format": "NoSuchFormat"})
    assert_error(unknown, 404, "UNKNOWN_FORMAT")


def test_params_database_settings_and_compression(server, data):
    p = curl(
        server,
        "--data-binary",
        "SELECT count() FROM events WHERE fingerprint = {fp:String}",
        query={"param_fp": "fp1"},
    )
    fp1 = sum(
        1 for r in data.records if r["_meta"]["body_stored"] and r["_meta"]["fingerprint"] == "fp1"
    )
    assert p.text == f"{fp1}\n"
    db = curl(server, query={"query": "SELECT currentDatabase()", "database": "system"})
    assert db.text == "system\n"
    assert_error(
        curl(server, query={"query": "SELECT 1", "database": "nope"}), 404, "UNKNOWN_DATABASE"
    )
    # a setting as a parameter applies to the query
    s = curl(server, query={"query": "SELECT getSetting('max_threads')", "max_threads": "1"})
    assert s.text == "1\n"
    # gzip when asked for
    z = curl(
        server,
        "-H",
        "Accept-Encoding: gzip",
        query={"query": "SELECT count() FROM events", "enable_http_compression": "1"},
    )
    assert z.headers["content-encoding"] == "gzip"
    assert (
        gzip.decompress(z.body)
        == f"{len([r for r in data.records if r['_meta']['body_stored']])}\n".encode()
    )


def test_ping_and_errors_in_clickhouse_shape(server):
    ping = curl(server, path="/ping", auth=False)
    assert ping.status == 200 and ping.text == "Ok.\n"
    assert curl(server).text == "Ok.\n"
    assert_error(curl(server, "--data-binary", "SELEC 1"), 400, "SYNTAX_ERROR")
    assert_error(
        curl(server, "--data-binary", "SELECT nope FROM events"), 404, "UNKNOWN_IDENTIFIER"
    )
    assert_error(curl(server, "--data-binary", "SELECT * FROM nope"), 404, "UNKNOWN_TABLE")
    assert_error(curl(server, "--data-binary", "SELECT {x:UInt8}"), 400, "UNKNOWN_QUERY_PARAMETER")
    assert_error(curl(server, "-X", "POST"), 400, "SYNTAX_ERROR")


# -- authentication -----------------------------------------------------------------------


def test_authentication(server):
    q = {"query": "SELECT 1"}
    assert curl(server, query=q).text == "1\n"  # basic auth
    headers = curl(
        server,
        "-H",
        "X-ClickHouse-User: default",
        "-H",
        f"X-ClickHouse-Key: {PASSWORD}",
        query=q,
        auth=False,
    )
    assert headers.text == "1\n"
    params = curl(server, query={**q, "user": "default", "password": PASSWORD}, auth=False)
    assert params.text == "1\n"
    for bad in (
        curl(server, "-u", "default:wrong", query=q, auth=False),
        curl(server, "-u", "admin:" + PASSWORD, query=q, auth=False),
        curl(server, query=q, auth=False),  # no credentials: default without a password
        curl(server, "-H", "X-ClickHouse-Key: wrong", query=q, auth=False),
        curl(server, query={**q, "password": "wrong"}, auth=False),
    ):
        assert assert_error(bad, 401, "AUTHENTICATION_FAILED") == 516


# -- read-only, enforced by the engine ------------------------------------------------------


def test_the_engine_itself_refuses_writes_under_readonly(backend):
    """The setting the interface appends: the engine, not this code, refuses these."""
    before = backend.query("SELECT count() AS n FROM errorstream.events")[0]["n"]
    for sql in (
        "INSERT INTO errorstream.events (event_id) SELECT 'x'",
        "CREATE TABLE errorstream.t (x UInt8) ENGINE = Memory",
        "DROP TABLE errorstream.alerts",
        "TRUNCATE TABLE errorstream.issues",
        "ALTER TABLE errorstream.events DELETE WHERE 1",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT 1 SETTINGS readonly = 0",
    ):
        with pytest.raises(StorageError, match=r"\(READONLY\)"):
            backend.query_raw(sql, settings={"readonly": 1})
    assert backend.query("SELECT count() AS n FROM errorstream.events")[0]["n"] == before
    assert backend.query("EXISTS TABLE errorstream.alerts")[0]["result"] == 1


@pytest.mark.parametrize(
    ("sql", "status", "name"),
    [
        ("INSERT INTO events (event_id) VALUES ('x')", 500, "READONLY"),
        ("CREATE TABLE t2 (x UInt8) ENGINE = Memory", 500, "READONLY"),
        ("DROP TABLE alerts", 500, "READONLY"),
        ("SYSTEM FLUSH LOGS", 500, "READONLY"),
        ("SYSTEM DROP MARK CACHE", 500, "READONLY"),
        ("SET readonly = 0", 500, "READONLY"),
        ("KILL QUERY WHERE 1", 500, "READONLY"),
        ("OPTIMIZE TABLE events FINAL", 500, "READONLY"),
        ("SELECT * FROM file('/etc/hostname', 'LineAsString')", 500, "READONLY"),
        ("SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String')", 500, "READONLY"),
        ("SELECT file('/etc/hostname')", 500, "READONLY"),
        ("DESCRIBE TABLE file('/etc/hostname', 'CSVWithNames')", 500, "READONLY"),
        ("DESCRIBE TABLE url('http://127.0.0.1:1/x', 'CSV')", 500, "READONLY"),
        (
            "EXPLAIN SELECT * FROM url('http://127.0.0.1:1/x', 'CSV') SETTINGS readonly = 0",
            500,
            "READONLY",
        ),
        ("SELECT count() FROM events SETTINGS readonly = 0", 500, "READONLY"),
        ("SELECT 1 INTO OUTFILE 'chhttp-outfile.txt'", 500, "INTO_OUTFILE_NOT_ALLOWED"),
        ("EXPLAIN SELECT 1 INTO OUTFILE 'chhttp-outfile.txt'", 500, "INTO_OUTFILE_NOT_ALLOWED"),
        ("SELECT 1; DROP TABLE alerts", 400, "SYNTAX_ERROR"),
        ("DROP TABLE alerts; SELECT 1", 400, "SYNTAX_ERROR"),
    ],
)
def test_writes_system_statements_and_file_access_are_refused(server, backend, sql, status, name):
    for _ in range(2):  # and again: a refusal is never remembered as a pass
        reply = curl(server, "--data-binary", sql)
        assert_error(reply, status, name)
    assert backend.query("EXISTS TABLE errorstream.alerts")[0]["result"] == 1
    assert not Path("chhttp-outfile.txt").exists()


def test_readonly_settings_cannot_be_undone_by_parameters(server):
    for name, value in (
        ("readonly", "0"),
        ("allow_ddl", "1"),
        ("allow_introspection_functions", "1"),
    ):
        reply = curl(server, query={"query": "SELECT 1", name: value})
        assert_error(reply, 500, "READONLY")
    assert curl(server, query={"query": "SELECT 1", "readonly": "1"}).text == "1\n"


def test_statements_that_read_are_allowed(server):
    for sql in (
        "SHOW TABLES",
        "DESCRIBE TABLE events",
        "EXPLAIN SELECT count() FROM events",
        "EXISTS TABLE issues",
        "WITH 2 AS x SELECT x * 3",
        "SELECT 1 UNION ALL SELECT 2",
        "/* a comment */ SELECT 1 -- and another",
    ):
        reply = curl(server, "--data-binary", sql)
        assert reply.status == 200, (sql, reply.text)
    # a SETTINGS clause inside the query changes a setting: refused; as a parameter it is not
    in_query = "SELECT count() FROM system.numbers WHERE number < 10 SETTINGS max_threads = 1"
    assert_error(curl(server, "--data-binary", in_query), 500, "READONLY")
    tables = curl(server, "--data-binary", "SHOW TABLES").text.split()
    assert {"events", "event_minutes", "issues", "alerts"} <= set(tables)


# -- limits ---------------------------------------------------------------------------------


def test_a_query_over_the_row_limit_is_cut_with_a_clear_error(server):
    reply = curl(server, query={"query": "SELECT number FROM system.numbers LIMIT 100000"})
    assert assert_error(reply, 500, "TOO_MANY_ROWS_OR_BYTES") == 396
    assert "Limit for result exceeded" in reply.text
    # a client may lower the limit, not raise it
    lower = curl(
        server,
        query={"query": "SELECT number FROM system.numbers LIMIT 100", "max_result_rows": "10"},
    )
    assert_error(lower, 500, "TOO_MANY_ROWS_OR_BYTES")
    higher = curl(
        server,
        query={
            "query": "SELECT number FROM system.numbers LIMIT 100000",
            "max_result_rows": "1000000",
        },
    )
    assert_error(higher, 500, "TOO_MANY_ROWS_OR_BYTES")
    assert (
        len(
            curl(
                server, query={"query": "SELECT number FROM system.numbers LIMIT 4000"}
            ).text.split()
        )
        == 4000
    )


def test_a_query_over_the_time_limit_is_cut_with_a_clear_error(server):
    started = time.monotonic()
    reply = curl(
        server,
        query={"query": "SELECT count() FROM system.numbers", "max_execution_time": "30"},
    )
    elapsed = time.monotonic() - started
    assert assert_error(reply, 408, "TIMEOUT_EXCEEDED") == 159
    assert "Timeout exceeded" in reply.text
    assert elapsed < 10  # the configured 1 s, not the 30 s asked for


# -- the standalone command -------------------------------------------------------------------


def test_errorstream_clickhouse_http_serves_a_chdb_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRORSTREAM_")}
    env |= {"ERRORSTREAM_DATA_DIR": str(tmp_path), "ERRORSTREAM_CLICKHOUSE_HTTP_PASSWORD": "pw"}
    cli = [sys.executable, "-m", "pipeline.cli"]
    root = Path(__file__).resolve().parents[2]
    migrate = subprocess.run(
        [*cli, "migrate"], env=env, cwd=root, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [*cli, "clickhouse-http", "--port", str(port)],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        client = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and client is None:
            try:
                client = clickhouse_connect.get_client(
                    host="127.0.0.1", port=port, username="default", password="pw"
                )
            except Exception:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.3)
        assert client is not None
        assert client.command("SELECT count() FROM schema_migrations") == len(
            list((root / "pipeline" / "storage" / "migrations").glob("*.sql"))
        )
    finally:
        proc.terminate()
        proc.wait(30)


def test_no_statement_reaches_a_url(server):
    """Schema inference would fetch the URL even where the query is refused later."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"a,b\n1,2\n")

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    target = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{target.server_address[1]}"
    try:
        for sql in (
            f"DESCRIBE TABLE url('{url}/1', 'CSV')",
            f"SELECT * FROM url('{url}/2', 'CSV', 'a String')",
            f"EXPLAIN SELECT * FROM url('{url}/3', 'CSV')",
            f"EXPLAIN ESTIMATE SELECT * FROM url('{url}/4', 'CSV') SETTINGS readonly = 0",
            f"SELECT * FROM (SELECT * FROM url('{url}/5', 'CSV', 'a String') SETTINGS readonly = 0)",
        ):
            assert_error(curl(server, "--data-binary", sql), 500, "READONLY")
    finally:
        target.shutdown()
    assert hits == []
