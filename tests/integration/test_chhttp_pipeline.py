"""The pipeline's sink stores events from the real broker into chDB; the same process serves
the ClickHouse HTTP interface (as the sink process mounts it) and the query API, and
clickhouse-connect pointed at the interface reads the counts ``errorstream query`` prints."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import clickhouse_connect
import orjson
import pytest
from aiohttp import web

from pipeline.api import build_api
from pipeline.chhttp import ClickHouseHttpService
from pipeline.kafka_local import free_ports
from pipeline.metrics import Metrics
from pipeline.storage import ChdbBackend
from pipeline.storage.migrate import migrate
from tests.integration.test_sink_contract import (
    BASE,
    RunningSink,
    contract_records,
    create_topics,
    produce,
    sink_settings,
    wait_until,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def errorstream_query(api_url: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRORSTREAM_")}
    env["ERRORSTREAM_API_URL"] = api_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline.cli",
        "query",
        *args,
        "--json",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return orjson.loads(out)


async def test_clickhouse_connect_reads_what_errorstream_query_prints(kafka_bootstrap, tmp_path):
    tag = uuid.uuid4().hex[:8]
    api_port, http_port = free_ports(2)
    s = sink_settings(
        kafka_bootstrap, tag, clickhouse_http_port=http_port, clickhouse_http_password="pw"
    )
    await create_topics(kafka_bootstrap, s.topic_processed, s.topic_alerts, s.topic_dlq)
    records, expected = contract_records(1200, seed=21)
    await produce(kafka_bootstrap, s.topic_processed, records)

    backend = ChdbBackend(str(tmp_path / "clickhouse"), "errorstream")
    migrate(backend, 90)
    assert ClickHouseHttpService.enabled(backend, s)
    service = ClickHouseHttpService(backend, s, Metrics())
    api = web.AppRunner(build_api(backend, Metrics(), lambda: {"clickhouse": True}))
    try:
        await service.start()
        await api.setup()
        await web.TCPSite(api, "127.0.0.1", api_port).start()
        async with RunningSink(s, backend) as sink:
            assert await wait_until(lambda: sink.committed_messages >= len(records))
            since, until = str(BASE - 120), str(BASE + 1920)
            top = await errorstream_query(
                f"http://127.0.0.1:{api_port}", "top", "--since", since, "--until", until
            )
            timeline = await errorstream_query(
                f"http://127.0.0.1:{api_port}",
                "timeline",
                "--since",
                since,
                "--until",
                until,
                "--bucket",
                "60",
            )

            def read():
                client = clickhouse_connect.get_client(
                    host="127.0.0.1", port=http_port, username="default", password="pw"
                )
                per_issue = client.query(
                    "SELECT fingerprint, sum(events) AS n, uniqMerge(users) AS u "
                    "FROM event_minutes FINAL GROUP BY fingerprint ORDER BY fingerprint"
                ).result_rows
                per_minute = client.query(
                    "SELECT toUnixTimestamp(minute) AS m, sum(events) AS n "
                    "FROM event_minutes FINAL GROUP BY m ORDER BY m"
                ).result_rows
                stored = client.command("SELECT count() FROM events")
                return per_issue, per_minute, stored

            per_issue, per_minute, stored = await asyncio.to_thread(read)
    finally:
        await api.cleanup()
        await service.stop()
        backend.close()

    assert {fp: n for fp, n, _ in per_issue} == {
        i["fingerprint"]: i["events"] for i in top["issues"]
    }
    assert {fp: u for fp, _, u in per_issue} == {
        i["fingerprint"]: i["users"] for i in top["issues"]
    }
    assert dict(per_minute) == {p["ts"]: p["events"] for p in timeline["points"] if p["events"]}
    assert sum(n for _, n, _ in per_issue) == timeline["total"] == expected["total"]
    assert dict(per_minute) == expected["minutes"]
    assert stored == expected["stored"]
