"""The workflow queries (issues list, audit, similar issues) on the real embedded engine,
through the sink's row builders and inserts: filters, sorting, paging, status mapping.
``workflow_answers`` is also compared between chDB and a server (test_server_backend.py)."""

from __future__ import annotations

from collections import namedtuple

import orjson
import pytest

from pipeline import issue_queries
from pipeline.sinks.clickhouse import insert_tables
from pipeline.sinks.rows import build_rows
from pipeline.stages.similar import signature
from pipeline.storage import ChdbBackend
from pipeline.storage.migrate import migrate

pytestmark = pytest.mark.integration
T = 1_790_000_000.0
Message = namedtuple("Message", "topic value")
FRAMES = ["type:KeyError", "frame:app.cart|total|", "frame:app.checkout|pay|"]


def snapshot(fp: str, **fields) -> dict:
    issue = {
        "fingerprint": fp,
        "service": "shop",
        "title": f"KeyError in {fp}",
        "culprit": "app.cart in total",
        "category": "validation",
        "status": "ongoing",
        "first_seen": T,
        "last_seen": T + 60,
        "count": 1,
        "users": 0,
        "levels": ["error"],
        "resolved_at": None,
        "resolved_in_release": None,
        "priority": "medium",
        "priority_source": "auto",
        "assignee": None,
        "version": 1,
    }
    return {**issue, **fields}


def load_workflow(backend) -> None:
    """Five issues in every status and priority, audit entries and signatures, as the sink
    would write them from issue_state records and first events."""
    records = [
        {"_kind": "issue_state", "issue": snapshot("a", count=30, users=4, last_seen=T + 500)},
        {
            "_kind": "issue_state",
            "issue": snapshot(
                "b",
                status="resolved",
                priority="high",
                priority_source="manual",
                count=5,
                version=3,
            ),
            "audit": {
                "command_id": "c1",
                "at": T + 100,
                "actor": "ann",
                "action": "resolve",
                "reason": "fixed",
                "source": "dashboard",
                "details": {"release": "shop@2"},
            },
        },
        {
            "_kind": "issue_state",
            "issue": snapshot(
                "b",
                status="resolved",
                priority="high",
                priority_source="manual",
                count=5,
                version=4,
                assignee="bob",
            ),
            "audit": {
                "command_id": "c2",
                "at": T + 200,
                "actor": "ann",
                "action": "assign",
                "reason": "",
                "source": "api",
                "details": {"assignee": "bob"},
            },
        },
        {
            "_kind": "issue_state",
            "issue": snapshot(
                "c",
                status="ignored",
                levels=["warning"],
                priority="low",
                count=2,
                first_seen=T - 9000,
            ),
        },
        {
            "_kind": "issue_state",
            "issue": snapshot(
                "d",
                status="regressed",
                levels=["error", "fatal"],
                priority="high",
                count=9,
                title="Disk full",
            ),
        },
        {"_kind": "issue_state", "issue": snapshot("e", merged_into="a", count=3, version=2)},
    ]
    rows, errors = build_rows([Message("processed", orjson.dumps(r)) for r in records], "alerts")
    assert errors == []
    insert_tables(backend, rows.tables())
    backend.insert(
        "issue_signatures",
        ("fingerprint", "minhash"),
        [
            ("a", signature(FRAMES, "KeyError in a")),
            ("b", signature([*FRAMES[:2], "frame:app.checkout|refund|"], "KeyError in b")),
            ("c", signature(["type:DiskFull", "frame:ops.backup|run|"], "Disk full")),
            ("e", signature(FRAMES, "KeyError in e")),
        ],
    )


def workflow_answers(backend) -> dict:
    def fps(**kw):
        data = issue_queries.list_issues(backend, **kw)
        return [i["fingerprint"] for i in data["issues"]], data["total"]

    return {
        "default": fps(),
        "by_count": fps(sort="count"),
        "asc": fps(sort="count", order="asc", limit=2, offset=1),
        "priority_sort": fps(sort="priority"),
        "unresolved": fps(status="unresolved"),
        "resolved": fps(status="resolved"),
        "ignored": fps(status="ignored"),
        "merged": fps(status="merged"),
        "high": fps(priority="high"),
        "fatal": fps(level="fatal"),
        "text": fps(q="disk"),
        "prefix": fps(q="b"),
        "first_seen_before": fps(until=T - 1),
        "rows": issue_queries.list_issues(backend, sort="count")["issues"],
        "audit_b": issue_queries.issue_audit(backend, "b"),
        "similar_a": issue_queries.similar_issues(backend, "a"),
    }


@pytest.fixture
def backend(tmp_path):
    b = ChdbBackend(str(tmp_path / "clickhouse"), "errorstream")
    migrate(b, 90)
    load_workflow(b)
    yield b
    b.close()


def test_workflow_queries_on_the_embedded_engine(backend):
    got = workflow_answers(backend)
    assert got["default"] == (["a", "b", "c", "d"], 4)  # last_seen desc, then fingerprint
    assert got["by_count"] == (["a", "d", "b", "c"], 4)
    assert got["asc"] == (["b", "d"], 4)
    assert got["priority_sort"][0][:2] == ["b", "d"]  # high first
    assert got["unresolved"] == (["a", "d"], 2)  # new / ongoing / regressed
    assert got["resolved"] == (["b"], 1) and got["ignored"] == (["c"], 1)
    assert got["merged"] == (["e"], 1)
    assert got["high"][1] == 2 and got["fatal"] == (["d"], 1)
    assert got["text"] == (["d"], 1) and got["prefix"] == (["b"], 1)
    assert got["first_seen_before"] == (["c"], 1)
    b = next(r for r in got["rows"] if r["fingerprint"] == "b")
    assert (b["status"], b["priority"], b["priority_source"], b["assignee"]) == (
        "resolved",
        "high",
        "manual",
        "bob",
    )
    assert [a["action"] for a in got["audit_b"]] == ["assign", "resolve"]
    assert got["audit_b"][1]["details"] == {"release": "shop@2"}
    similar = got["similar_a"]
    assert [s["fingerprint"] for s in similar][0] == "b"  # e is merged away: left out
    assert "e" not in [s["fingerprint"] for s in similar]
    assert all(0 < s["score"] <= 1 for s in similar)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"status": "open"}, "status"),
        ({"priority": "urgent"}, "priority"),
        ({"level": "loud"}, "level"),
        ({"category": "misc"}, "category"),
        ({"sort": "title"}, "sort"),
        ({"order": "up"}, "order"),
        ({"tag": "x"}, "tag"),
    ],
)
def test_unknown_values_name_the_parameter(backend, kwargs, name):
    with pytest.raises(ValueError, match=name):
        issue_queries.list_issues(backend, **kwargs)
