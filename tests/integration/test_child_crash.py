"""`errorstream worker` runs one process per role: SIGKILL of any one child mid-stream is
visible (log and restart counter), the child is restarted, and nothing is lost or counted
twice — issue counts, stored rows and alerts are exact."""

from __future__ import annotations

import collections
import os
import signal
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import WorkerProcess, pipeline_env
from tests.integration.test_stream_agents import (
    fingerprint,
    issue_counts,
    mixed_events,
    produce,
    read_all,
    wait_counts,
)

pytestmark = pytest.mark.integration


def restarts(worker: WorkerProcess, role: str) -> float:
    with urllib.request.urlopen(f"{worker.api}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "errorstream_worker_child_restarts_total" and s.labels == {"role": role}:
                return s.value
    return 0.0


@pytest.mark.parametrize("role", ["decoder", "agent", "sink"])
def test_sigkill_of_one_child_is_restarted_and_counts_stay_exact(kafka_bootstrap, tmp_path, role):
    env = pipeline_env(kafka_bootstrap, tmp_path / "data")
    events = mixed_events(3000, services=3, kinds=5)
    duplicates = events[50:250]  # a producer retry: the same event_ids again
    expected = collections.Counter(fingerprint(e) for e in events)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        victim = worker.child_pid(role)
        assert victim is not None, worker.log()
        produce(env, events[:1500])
        assert worker.wait_for(lambda: sum(issue_counts(worker).values()) >= 300, timeout=60)
        produce(env, events[1500:] + duplicates)  # still flowing when the child dies
        os.kill(victim, signal.SIGKILL)
        assert worker.wait_for(lambda: restarts(worker, role) >= 1, timeout=60), worker.log()
        replacement = worker.child_pid(role)
        assert replacement is not None and replacement != victim
        assert worker.wait_for(lambda: worker.get("/readyz")["ready"], timeout=90), worker.log()
        wait_counts([worker], len(events))

        def stored():
            counts = worker.get("/api/counts")
            return counts if counts["events"] >= len(events) else None

        assert worker.wait_for(stored, timeout=90), worker.get("/api/counts")
        time.sleep(2)  # replays or duplicates would show up as extra counts now
        counts = issue_counts(worker)
        rows = worker.get("/api/counts")
        alerts = read_all(env, "ERRORSTREAM_TOPIC_ALERTS", idle=1.0)
        log = worker.log_path.read_text(errors="replace")  # the whole log: .log() is its tail
    finally:
        code = worker.stop()
    assert counts == dict(expected)
    assert rows == {"events": len(events), "issues": len(expected)}
    assert f"{role} exited unasked with signal 9" in log
    # one new_issue per issue; a repeat (kill between an alert and the state that remembers
    # it) always carries the same alert_id
    ids_by_fp: dict[str, set] = collections.defaultdict(set)
    for a in alerts:
        if a["kind"] == "new_issue":
            ids_by_fp[a["fingerprint"]].add(a["alert_id"])
    assert sorted(ids_by_fp) == sorted(expected)
    assert all(len(ids) == 1 for ids in ids_by_fp.values())
    assert code == 0
