"""The ClickHouse HTTP interface's pure parts: credentials, request decoding, limits, the
INTO OUTFILE scan, content types, error shape, and the settings that guard the bind address."""

from __future__ import annotations

import base64

import pytest

from pipeline import chhttp
from pipeline.chhttp import ClickHouseError
from pipeline.settings import ConfigError, load_settings

FORMATS = frozenset({"TabSeparated", "JSONEachRow", "Native", "Parquet"})


def settings(**overrides):
    return load_settings(env={}, overrides=overrides)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_from_each_place_clickhouse_reads_them():
    assert chhttp.credentials({"Authorization": basic("u", "p:w")}, {}) == ("u", "p:w")
    assert chhttp.credentials({"X-ClickHouse-User": "u", "X-ClickHouse-Key": "k"}, {}) == (
        "u",
        "k",
    )
    assert chhttp.credentials({}, {"user": "u", "password": "k"}) == ("u", "k")
    assert chhttp.credentials({}, {}) == ("default", "")
    with pytest.raises(ClickHouseError) as err:
        chhttp.credentials({"Authorization": "Basic %%%"}, {})
    assert err.value.code == 516 and err.value.status == 401


def test_check_credentials_needs_both_user_and_password():
    s = settings(clickhouse_http_user="reader", clickhouse_http_password="pw")
    chhttp.check_credentials("reader", "pw", s)
    for user, password in (("reader", "px"), ("default", "pw"), ("reader", ""), ("", "")):
        with pytest.raises(ClickHouseError) as err:
            chhttp.check_credentials(user, password, s)
        assert (err.value.code, err.value.name, err.value.status) == (
            516,
            "AUTHENTICATION_FAILED",
            401,
        )


def test_decode_request_splits_params_settings_and_protocol():
    s = settings()
    q = chhttp.decode_request(
        {
            "query": "SELECT {a:UInt8}",
            "param_a": "7",
            "database": "system",
            "default_format": "JSONEachRow",
            "session_id": "abc",
            "client_protocol_version": "54405",
            "max_threads": "2",
            "query_id": "q1",
        },
        "FROM one",
        s,
        FORMATS,
    )
    assert q.sql == "SELECT {a:UInt8}\nFROM one"
    assert (q.fmt, q.database, q.query_id) == ("JSONEachRow", "system", "q1")
    assert q.params == {"a": "7"}
    assert q.settings == {
        "max_threads": "2",
        "max_execution_time": 10.0,
        "max_result_rows": 1_000_000,
        "max_memory_usage": 2_000_000_000,
        "readonly": 1,
    }
    assert list(q.settings)[-1] == "readonly"  # last: nothing after it can undo it
    default = chhttp.decode_request({}, "SELECT 1", s, FORMATS)
    assert (default.fmt, default.database) == ("TabSeparated", "errorstream")


def test_limits_can_be_lowered_never_raised():
    s = settings(clickhouse_http_max_result_rows=100, clickhouse_http_max_execution_time=2.0)
    lower = chhttp.query_settings({"max_result_rows": "10", "max_execution_time": "0.5"}, s)
    assert (lower["max_result_rows"], lower["max_execution_time"]) == (10, 0.5)
    higher = chhttp.query_settings({"max_result_rows": "10000", "max_execution_time": "60"}, s)
    assert (higher["max_result_rows"], higher["max_execution_time"]) == (100, 2.0)
    unlimited = chhttp.query_settings({"max_result_rows": "0"}, s)  # 0 = no limit to ClickHouse
    assert unlimited["max_result_rows"] == 100
    with pytest.raises(ClickHouseError):
        chhttp.query_settings({"max_result_rows": "many"}, s)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"readonly": "0"}, "READONLY"),
        ({"allow_ddl": "1"}, "READONLY"),
        ({"allow_introspection_functions": "1"}, "READONLY"),
        ({"bad name": "1"}, "UNKNOWN_SETTING"),
        ({"default_format": "Nope"}, "UNKNOWN_FORMAT"),
        ({"database": "a.b"}, "UNKNOWN_DATABASE"),
    ],
)
def test_decode_request_refuses(query, name):
    with pytest.raises(ClickHouseError) as err:
        chhttp.decode_request(query, "SELECT 1", settings(), FORMATS)
    assert err.value.name == name


def test_readonly_asked_for_is_what_every_query_gets():
    q = chhttp.decode_request({"readonly": "1"}, "SELECT 1", settings(), FORMATS)
    assert q.settings["readonly"] == 1


def test_query_size_is_limited():
    with pytest.raises(ClickHouseError) as err:
        chhttp.decode_request({}, "SELECT 1 " + "x" * chhttp.MAX_QUERY_BYTES, settings(), FORMATS)
    assert err.value.status == 413


@pytest.mark.parametrize(
    ("canonical", "found"),
    [
        ("SELECT 1 INTO OUTFILE 'x'", True),
        ("EXPLAIN SELECT 1 into   outfile 'x' FORMAT CSV", True),
        ("SELECT 'INTO OUTFILE' AS s", False),
        ("SELECT `into` FROM t AS outfile", False),
        ("SELECT 'it\\'s INTO OUTFILE' FROM t", False),
        ('SELECT "INTO", "OUTFILE"', False),
    ],
)
def test_into_outfile_outside_literals(canonical, found):
    assert chhttp.into_outfile(canonical) is found


def test_output_format_from_the_clause_else_the_default():
    assert chhttp.output_format("SELECT 1 FORMAT Native", "TabSeparated") == "Native"
    assert chhttp.output_format("SELECT 1 FORMAT CSV SETTINGS a = 1", "JSON") == "CSV"
    assert chhttp.output_format("SELECT 'x FORMAT JSON'", "TabSeparated") == "TabSeparated"


def test_content_types_follow_the_format():
    assert chhttp.content_type("TabSeparatedWithNames").startswith("text/tab-separated-values")
    assert chhttp.content_type("CSVWithNames").endswith("header=present")
    assert chhttp.content_type("JSONEachRow").startswith("application/json")
    assert chhttp.content_type("Parquet") == "application/octet-stream"
    assert chhttp.content_type("Pretty").startswith("text/plain")


def test_escape_param_round_trips_the_engines_escapes():
    assert chhttp.escape_param("a\\b\nc\td") == "a\\\\b\\nc\\td"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("SYNTAX_ERROR", 400),
        ("UNKNOWN_TABLE", 404),
        ("UNKNOWN_DATABASE", 404),
        ("TIMEOUT_EXCEEDED", 408),
        ("QUERY_IS_TOO_LARGE", 413),
        ("READONLY", 500),
        ("TOO_MANY_ROWS_OR_BYTES", 500),
        ("AUTHENTICATION_FAILED", 401),
    ],
)
def test_status_codes_as_a_server_gives_them(name, status):
    assert ClickHouseError(1, name, "m").status == status


def test_the_bind_address_needs_a_password_off_loopback():
    settings(clickhouse_http_host="127.0.0.1")
    settings(clickhouse_http_host="0.0.0.0", clickhouse_http_password="pw")
    settings(clickhouse_http_host="0.0.0.0", clickhouse_http_port=0)  # off
    with pytest.raises(ConfigError, match="clickhouse_http_password"):
        settings(clickhouse_http_host="0.0.0.0")
    assert settings(clickhouse_http_password="pw").masked()["clickhouse_http_password"] == "***"


def test_statement_cache_is_bounded_and_keeps_the_recent_ones():
    cache = chhttp.StatementCache(size=2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    assert len(cache) == 2


def test_table_function_found_where_the_tree_has_one():
    describe = (
        "DescribeQuery (children 1)\n TableExpression (children 1)\n  Function url (children 1)\n"
        "   ExpressionList (children 2)\n    Literal 'http://x'\n    Literal 'CSV'\n"
    )
    assert chhttp.table_function(describe) == "url"
    select = (
        "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n"
        "  SelectQuery (children 2)\n   ExpressionList (children 1)\n"
        "    Function count (children 1)\n   TablesInSelectQuery (children 1)\n"
        "    TablesInSelectQueryElement (children 1)\n     TableExpression (children 1)\n"
        "      TableIdentifier events\n"
    )
    assert chhttp.table_function(select) == ""
