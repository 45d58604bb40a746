"""The same migrations and queries on a ClickHouse server as on the embedded engine.

Runs where a server exists: ``ERRORSTREAM_TEST_CLICKHOUSE_URL=http://user:pass@host:8123`` (a
server you run), or ``ERRORSTREAM_TEST_CLICKHOUSE=testcontainers`` (a ClickHouse container
started through testcontainers; needs a Docker engine and the ``docker`` extra). Skipped
otherwise, with the reason: this machine has no server (docs/storage.md).

The server gets its own database per run; the same generated rows as
``test_query_rollups.py`` go into chDB and the server, and every timeline, top-issues and
issue-detail answer must be equal.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from pipeline.storage import ChdbBackend
from pipeline.storage.backend import ServerBackend
from pipeline.storage.migrate import migrate
from tests.integration.test_issue_queries import load_workflow, workflow_answers
from tests.integration.test_query_rollups import answers, generate, load

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    url = os.environ.get("ERRORSTREAM_TEST_CLICKHOUSE_URL", "")
    if url:
        yield url
        return
    if os.environ.get("ERRORSTREAM_TEST_CLICKHOUSE", "").lower() == "testcontainers":
        try:
            from testcontainers.clickhouse import ClickHouseContainer  # type: ignore
        except ImportError as exc:
            pytest.fail(f"ERRORSTREAM_TEST_CLICKHOUSE=testcontainers needs testcontainers: {exc}")
        # the HTTP port, which clickhouse-connect speaks (this path needs a Docker engine, so it
        # has not run on the machines without one where the embedded engine is tested)
        with ClickHouseContainer(port=8123) as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(8123)
            yield f"http://{container.username}:{container.password}@{host}:{port}"
        return
    pytest.skip(
        "no ClickHouse server: set ERRORSTREAM_TEST_CLICKHOUSE_URL=http://… or "
        "ERRORSTREAM_TEST_CLICKHOUSE=testcontainers (needs a Docker engine)"
    )


@pytest.fixture(scope="module")
def server(server_url: str) -> Iterator[ServerBackend]:
    database = f"es_test_{uuid.uuid4().hex[:10]}"
    backend = ServerBackend(server_url, database)
    try:
        yield backend
    finally:
        backend.command(f"DROP DATABASE IF EXISTS {database}")
        backend.close()


def test_migrations_run_twice_are_a_no_op_on_a_server(server):
    assert migrate(server, 90)
    tables = server.query(f"SHOW CREATE TABLE {server.database}.events")
    assert migrate(server, 90) == []
    assert server.query(f"SHOW CREATE TABLE {server.database}.events") == tables


def test_server_answers_equal_embedded_answers(server, tmp_path):
    migrate(server, 90)  # a no-op after the test above; applies everything when run alone
    batches, bodies, _ = generate(1500, seed=11)
    embedded = ChdbBackend(str(tmp_path / "clickhouse"), server.database)
    try:
        migrate(embedded, 90)
        load(embedded, batches, bodies)
        load(server, batches, bodies)
        expected = answers(embedded)
    finally:
        embedded.close()
    assert answers(server) == expected


def test_workflow_queries_answer_the_same_on_a_server(server, tmp_path):
    """Migration 0008 and the issue workflow queries: same DDL, same answers."""
    migrate(server, 90)
    embedded = ChdbBackend(str(tmp_path / "clickhouse-workflow"), server.database)
    try:
        migrate(embedded, 90)
        load_workflow(embedded)
        expected = workflow_answers(embedded)
    finally:
        embedded.close()
    load_workflow(server)
    assert workflow_answers(server) == expected
