"""The pure parts of bench/soak.py: metric sums by label set and the markdown report."""

import pytest

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


def test_spike_start_keeps_the_spike_inside_one_minute():
    from bench.soak import spike_start

    base = 6000.0  # a whole minute in epoch seconds
    assert spike_start(base, 105.0, 20.0, 150.0) == 122.0  # 45 s in: wait for 2 s past
    assert spike_start(base, 62.0, 20.0, 150.0) == 62.0  # 2 s in: fits as it is
    assert spike_start(base, 61.0, 20.0, 150.0) == 62.0  # inside the margin: 1 s later
    for tenth in range(600):  # every start phase: inside one minute, as early as possible
        start = base + tenth / 10
        at = spike_start(start, 105.0, 20.0, 150.0)
        first, last = start + at, start + at + 20.0
        assert at >= 105.0 and at + 20.0 <= 150.0
        assert first // 60 == last // 60 and first % 60 >= 2.0 - 1e-9 and last % 60 <= 58.0 + 1e-9
        assert at - 105.0 <= 20.0 + 2 * 2.0 + 1e-9  # waits at most the length and margins


def test_spike_start_refuses_what_cannot_fit():
    from bench.soak import spike_start

    with pytest.raises(ValueError, match="does not fit in one minute"):
        spike_start(6000.0, 10.0, 57.0, 600.0)
    with pytest.raises(ValueError, match="does not fit in a 130 s run"):
        spike_start(6000.0, 105.0, 20.0, 130.0)  # 45 s in: it would start at 122 s


def test_short_variant_spike_always_fits():
    from bench.soak import spike_start

    cfg = SoakConfig.short()
    for tenth in range(600):
        spike_start(6000.0 + tenth / 10, cfg.spike_at, cfg.spike_length, cfg.duration)
