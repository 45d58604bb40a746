"""Pure SQL building of issue detail: span bounds left out at the ends of all time, and each
branch's select list moved into formatRow."""

import pytest

from pipeline import queries


def test_span_where_keeps_real_bounds():
    where = queries._span_where(queries.ISSUE_DAYS, 3, {"fingerprint": "f"}, 86400, 172800)
    assert where == (
        "day >= toDateTime({lo3:Int64}, 'UTC') AND day < toDateTime({hi3:Int64}, 'UTC')"
        " AND fingerprint = {fingerprint:String}"
    )


def test_span_where_leaves_out_the_ends_of_all_time():
    tier = queries.ISSUE_DAYS
    assert queries._span_where(tier, 0, {"fingerprint": "f"}, 0, queries.ALL_TIME_END) == (
        "fingerprint = {fingerprint:String}"
    )
    assert queries._span_where(tier, 0, {}, 0, 600) == "day < toDateTime({hi0:Int64}, 'UTC')"
    assert queries._span_where(tier, 0, {}, 60, queries.ALL_TIME_END) == (
        "day >= toDateTime({lo0:Int64}, 'UTC')"
    )
    assert queries._span_where(tier, 0, {}, 0, queries.ALL_TIME_END) == "1"


def test_detail_branch_moves_the_select_list_into_format_row():
    sql = "\nSELECT a, max(b) AS b\nFROM (\n    SELECT a, b FROM t\n)\nGROUP BY a\n"
    assert queries._detail_branch("split", sql) == (
        "SELECT 'split' AS part, formatRow('JSONEachRow', a, max(b) AS b) AS body\n"
        "FROM (\n    SELECT a, b FROM t\n)\nGROUP BY a"
    )


def test_detail_branch_refuses_what_is_not_a_select():
    with pytest.raises(ValueError, match="must be a SELECT"):
        queries._detail_branch("x", "WITH 1 AS a\nFROM t")
