"""The pure parts of bench/soak.py: metric sums by label set and the markdown report."""

from bench.soak import SoakConfig, markdown, metric_totals

METRICS = """# HELP errorstream_worker_child_restarts_total restarts
# TYPE errorstream_worker_child_restarts_total counter
errorstream_worker_child_restarts_total{role="agent"} 1.0
errorstream_worker_child_restarts_total{role="sink"} 2.0
# HELP errorstream_sink_insert_retries_total retries
# TYPE errorstream_sink_insert_retries_total counter
errorstream_sink_insert_retries_total 33.0
"""


def test_metric_totals_by_label_set():
    totals = metric_totals(
        METRICS,
        ("errorstream_worker_child_restarts_total", "errorstream_sink_insert_retries_total"),
    )
    assert totals == {
        'errorstream_worker_child_restarts_total{role="agent"}': 1.0,
        'errorstream_worker_child_restarts_total{role="sink"}': 2.0,
        "errorstream_sink_insert_retries_total": 33.0,
    }


def test_markdown_names_each_failed_check():
    report = {
        "ok": False,
        "config": {"rate": 100.0, "duration": 60.0, "gateway_share": 0.2},
        "timeline": [{"phase": "kill_agent", "at_s": 8.0, "recovered_s": 61.0}],
        "checks": [
            {"check": "issue_counts_exact", "ok": False, "differing": {"fp": {"clickhouse": 3}}},
            {"check": "no_duplicate_alerts", "ok": True, "by_kind": {"new_issue": 2}},
        ],
        "peak_rss_mb": {"sink": 900.0},
        "sent": {},
        "metrics": {},
    }
    text = markdown(report, "python bench/soak.py", "load average: 1.00")
    assert "**FAIL** — 1/2 checks" in text
    assert "| issue_counts_exact | **FAILED** |" in text
    assert "| 8.0 | kill_agent | recovered_s=61.0 |" in text
    assert "| sink | 900.0 |" in text


def test_short_phases_run_in_order_before_the_end():
    cfg = SoakConfig.short()
    times = list(cfg.fault_times().values())
    assert times == sorted(times) and times[-1] < cfg.spike_at < cfg.duration
