"""Issue workflow queries: the issues list with filters, the audit trail, similar issues.

Parameterized SQL only: every value is a server-side parameter; the SQL text is assembled
from the constant fragments below (sort columns come from a fixed map, never from input).

Status as people see it (``public_status``): ``unresolved`` (the stream stage's new, ongoing
and regressed), ``resolved``, ``ignored``, ``merged`` (an issue merged into another: its
row keeps ``merged_into``).
"""

from __future__ import annotations

from typing import Any

import orjson

from pipeline import queries
from pipeline.queries import _sql
from pipeline.stages.priority import PRIORITIES
from pipeline.stages.similar import PERMUTATIONS
from pipeline.storage import Backend

STATUSES = ("unresolved", "resolved", "ignored", "merged")
LEVELS = ("fatal", "critical", "error", "warning", "info", "debug")  # most severe first
SORTS = {
    "last_seen": "last_seen",
    "first_seen": "first_seen",
    "count": "count",
    "users": "users",
    # priority "desc" = high first
    "priority": "-indexOf(['high', 'medium', 'low'], priority)",
}
ORDERS = ("desc", "asc")
STATUS_SQL = {
    "unresolved": "status IN ('new', 'ongoing', 'regressed') AND merged_into = ''",
    "resolved": "status = 'resolved' AND merged_into = ''",
    "ignored": "status = 'ignored' AND merged_into = ''",
    "merged": "merged_into != ''",
}
FILTER_SQL = {
    "priority": "priority = {priority:String}",
    "service": "service = {service:String}",
    "category": "category = {category:String}",
    "level": "has(levels, {level:String})",
    "release": "fingerprint IN (SELECT DISTINCT fingerprint FROM {db}.event_minutes "
    "WHERE release = {release:String})",
    "environment": "fingerprint IN (SELECT DISTINCT fingerprint FROM {db}.event_minutes "
    "WHERE environment = {environment:String})",
    "q": "(positionCaseInsensitiveUTF8(title, {q:String}) > 0 "
    "OR positionCaseInsensitiveUTF8(culprit, {q:String}) > 0 "
    "OR startsWith(fingerprint, {q:String}))",
    "since": "last_seen >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')",
    "until": "first_seen < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')",
}
ISSUE_FIELDS = """fingerprint, service, title, culprit, category, status, levels,
       toUnixTimestamp64Milli(first_seen) / 1000 AS first_seen,
       toUnixTimestamp64Milli(last_seen) / 1000 AS last_seen,
       count, users, priority, priority_source, assignee, merged_into"""
LIST_SQL = f"""
SELECT {ISSUE_FIELDS}
FROM {{db}}.issues FINAL
WHERE __WHERE__
ORDER BY __SORT__ __ORDER__, fingerprint
LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
"""
# the environment an issue was seen in last (the issues table has none: events carry it)
ENVIRONMENTS_SQL = """
SELECT fingerprint, argMax(environment, minute) AS environment
FROM {db}.event_minutes
WHERE fingerprint IN {fingerprints:Array(String)}
GROUP BY fingerprint
"""
TOTAL_SQL = """
SELECT count() AS total FROM {db}.issues FINAL WHERE __WHERE__
"""
AUDIT_SQL = """
SELECT toUnixTimestamp64Milli(at) / 1000 AS at, actor, action, reason, source, details,
       command_id
FROM {db}.issue_audit FINAL
WHERE fingerprint = {fingerprint:String}
ORDER BY at DESC, command_id DESC
LIMIT {limit:UInt32}
"""
SIGNATURE_SQL = """
SELECT minhash FROM {db}.issue_signatures FINAL WHERE fingerprint = {fingerprint:String}
"""
SIMILAR_SQL = """
SELECT s.fingerprint AS fingerprint, i.title AS title, i.culprit AS culprit,
       arrayCount((a, b) -> a = b, s.minhash, {signature:Array(UInt32)}) / {k:UInt32} AS score
FROM {db}.issue_signatures AS s FINAL
INNER JOIN (SELECT fingerprint, title, culprit FROM {db}.issues FINAL
            WHERE merged_into = '') AS i ON i.fingerprint = s.fingerprint
WHERE s.fingerprint != {fingerprint:String} AND length(s.minhash) = {k:UInt32}
  AND score >= {min_score:Float64}
ORDER BY score DESC, fingerprint
LIMIT {limit:UInt32}
"""


def public_status(status: str, merged_into: str | None) -> str:
    if merged_into:
        return "merged"
    if status in ("resolved", "ignored"):
        return status
    return "unresolved"


def top_level(levels: list[str]) -> str:
    """The most severe level an issue has seen."""
    for level in LEVELS:
        if level in levels:
            return level
    return levels[0] if levels else "error"


def issue_row(r: dict[str, Any]) -> dict[str, Any]:
    levels = list(r.get("levels") or [])
    return {
        "fingerprint": r["fingerprint"],
        "title": r["title"],
        "culprit": r["culprit"],
        "category": r["category"],
        "level": top_level(levels),
        "levels": levels,
        "service": r["service"],
        "environment": r.get("environment") or None,
        "status": public_status(r["status"], r.get("merged_into")),
        "priority": r.get("priority") or "medium",
        "priority_source": r.get("priority_source") or "auto",
        "assignee": r.get("assignee") or None,
        "merged_into": r.get("merged_into") or None,
        "count": int(r["count"]),
        "users": int(r["users"]),
        "first_seen": float(r["first_seen"]),
        "last_seen": float(r["last_seen"]),
    }


def _choice(name: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(allowed)}, got {value!r}")
    return value


def list_issues(
    backend: Backend,
    *,
    status: str = "",
    sort: str = "last_seen",
    order: str = "desc",
    limit: int = 50,
    offset: int = 0,
    since: float | None = None,
    until: float | None = None,
    **filters: str,
) -> dict[str, Any]:
    """Issues matching the filters (``FILTER_SQL``; ``status`` as people see it; no status:
    every issue that was not merged away), sorted, one page, with the total."""
    _choice("sort", sort, tuple(SORTS))
    _choice("order", order, ORDERS)
    unknown = set(filters) - set(FILTER_SQL)
    if unknown:
        raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    if filters.get("priority"):
        _choice("priority", filters["priority"], PRIORITIES)
    if filters.get("level"):
        _choice("level", filters["level"], LEVELS)
    if filters.get("category"):
        from pipeline.grouping.categorize import CATEGORIES

        _choice("category", filters["category"], CATEGORIES)
    clauses = [STATUS_SQL[_choice("status", status, STATUSES)] if status else "merged_into = ''"]
    params: dict[str, Any] = {"limit": int(limit), "offset": int(offset)}
    for name, value in filters.items():
        if value:
            clauses.append(FILTER_SQL[name])
            params[name] = value
    if since is not None:
        clauses.append(FILTER_SQL["since"])
        params["since_ms"] = round(since * 1000)
    if until is not None:
        clauses.append(FILTER_SQL["until"])
        params["until_ms"] = round(until * 1000)
    where = " AND ".join(clauses)
    sql = _sql(LIST_SQL, backend, where=where, sort=SORTS[sort], order=order.upper())
    rows = backend.query(sql, params)
    with_environment(backend, rows)
    total = backend.query(_sql(TOTAL_SQL, backend, where=where), params)[0]["total"]
    return {"issues": [issue_row(r) for r in rows], "total": int(total)}


def with_environment(backend: Backend, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    found = backend.query(
        _sql(ENVIRONMENTS_SQL, backend), {"fingerprints": [r["fingerprint"] for r in rows]}
    )
    by_fp = {r["fingerprint"]: r["environment"] for r in found}
    for r in rows:
        r["environment"] = by_fp.get(r["fingerprint"])


def issue_audit(backend: Backend, fingerprint: str, limit: int = 200) -> list[dict[str, Any]]:
    """The audit trail of one issue, newest first."""
    rows = backend.query(_sql(AUDIT_SQL, backend), {"fingerprint": fingerprint, "limit": limit})
    return [
        {
            "at": float(r["at"]),
            "actor": r["actor"],
            "action": r["action"],
            "reason": r["reason"],
            "source": r["source"],
            "details": orjson.loads(r["details"] or "{}"),
            "command_id": r["command_id"],
        }
        for r in rows
    ]


def similar_issues(
    backend: Backend, fingerprint: str, limit: int = 10, min_score: float = 0.05
) -> list[dict[str, Any]]:
    """Issues whose signatures agree most with this one's (estimated Jaccard similarity of
    their shingle sets), highest first; merged-away issues are left out."""
    own = backend.query(_sql(SIGNATURE_SQL, backend), {"fingerprint": fingerprint})
    if not own:
        return []
    params = {
        "fingerprint": fingerprint,
        "signature": [int(v) for v in own[0]["minhash"]],
        "k": PERMUTATIONS,
        "min_score": float(min_score),
        "limit": int(limit),
    }
    rows = backend.query(_sql(SIMILAR_SQL, backend), params)
    return [
        {
            "fingerprint": r["fingerprint"],
            "title": r["title"],
            "culprit": r["culprit"],
            "score": round(float(r["score"]), 4),
        }
        for r in rows
    ]


def issue_exists(backend: Backend, fingerprint: str) -> dict[str, Any] | None:
    rows = backend.query(
        _sql(
            f"SELECT {ISSUE_FIELDS} FROM {{db}}.issues FINAL "
            "WHERE fingerprint = {fingerprint:String}",
            backend,
        ),
        {"fingerprint": fingerprint},
    )
    with_environment(backend, rows)
    return issue_row(rows[0]) if rows else None


def issue_view(
    backend: Backend, fingerprint: str, since: float = 0.0, until: float | None = None
) -> dict[str, Any] | None:
    """``queries.issue_detail`` with the workflow state (status as people see it, priority,
    assignee, merged_into), the audit trail (newest first) and the similar issues."""
    data = queries.issue_detail(backend, fingerprint, since, until)
    if data is None:
        return None
    state = issue_exists(backend, fingerprint)
    data["audit"] = issue_audit(backend, fingerprint)
    data["similar"] = similar_issues(backend, fingerprint, 10)
    if state is not None:
        for key in ("title", "culprit", "category", "level", "service", "environment", "count"):
            data[key] = state[key]
        for key in ("status", "priority", "priority_source", "assignee", "merged_into"):
            data[key] = state[key]
    else:  # counted events whose issue snapshot has not reached the table yet
        data.update(
            status="unresolved",
            priority="medium",
            priority_source="auto",
            assignee=None,
            merged_into=None,
        )
    return data
