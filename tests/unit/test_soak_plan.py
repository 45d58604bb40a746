"""The soak's planned spike through the pure stages, for start times across a minute.

bench/soak.py asserts that the planned spike raises exactly one alert. Whether it can depends
only on the load plan and the rules (event time, one-minute windows), not on Kafka: this
replays the soak's raw-Kafka plan through decode → fingerprint → ``process_event`` with the
soak's worker settings, in plan order, for start times spread over a minute. It fails if a
plan or a rule change leaves the spike too weak against its baseline, lets it move to other
bugs, or lets it join an incident opened by the run's first minutes.
"""

import collections

import orjson
import pytest

from bench.soak import SoakConfig, kafka_profile, worker_settings
from pipeline.grouping import GroupingConfig
from pipeline.loadgen import LoadPlan
from pipeline.settings import load_settings
from pipeline.stages.aggregate import process_event
from pipeline.stages.decode import decode_event
from pipeline.stages.envelope import partition_for
from pipeline.stages.fingerprint import enrich
from pipeline.stages.rules import StreamRules
from pipeline.stages.windows import minute_of

MINUTE0 = 1_800_000_000 // 60 * 60  # a whole minute of the plan clock


def replay(cfg: SoakConfig, start: float):
    rules = StreamRules.from_settings(load_settings(env={}, overrides=worker_settings(cfg)))
    plan = LoadPlan(kafka_profile(cfg, start), start)
    grouping = GroupingConfig()
    issues, services, seen = {}, {}, {}
    offsets = collections.Counter()
    fp_of_bug = collections.defaultdict(set)
    alerts = []
    step = 0.25
    for k in range(int(cfg.duration / step)):
        for item in plan.items(k * step, (k + 1) * step):
            if item.event is None:
                continue
            decoded = decode_event(orjson.dumps(item.event))
            record = enrich(decoded, grouping, decoded.ts)
            fp = record["_meta"]["fingerprint"]
            if item.bug is not None:
                fp_of_bug[item.bug.id].add(fp)
            part = partition_for(fp.encode(), rules.partitions)
            offsets[part] += 1
            skey = (record["service"], part)
            out = process_event(
                record,
                fp,
                offsets[part],
                seen=seen.get(record["event_id"]),
                issue_state=issues.get(fp),
                service_state=services.get(skey),
                minute_value=None,
                rules=rules,
                now=start + k * step,
                watermark_minute=0,
            )
            if out.issue is not None:
                issues[fp] = out.issue
            if out.service is not None:
                services[skey] = out.service
            if out.dedup is not None:
                seen[record["event_id"]] = out.dedup
            alerts.extend(out.alerts)
    return plan, issues, fp_of_bug, alerts


@pytest.mark.parametrize("second", [0, 20, 40, 52, 58])
def test_short_soak_spike_fires_once_whatever_the_start_second(second):
    cfg = SoakConfig.short()
    start = MINUTE0 + second + 0.5
    plan, issues, fp_of_bug, alerts = replay(cfg, start)
    spike = plan.profile.spikes[0]
    bug = plan.spike_bugs[0]
    assert bug is not None and bug.appeared_at == 0  # a bug of the start, not a new one
    (fp,) = fp_of_bug[bug.id]
    fired = [
        a
        for a in alerts
        if (a["kind"] == "spike" and a["fingerprint"] == fp)
        or (a["kind"] == "incident" and fp in a.get("fingerprints", []))
    ]
    assert len(fired) == 1, (second, [a["kind"] for a in fired])
    # and by a margin: the spike's minute holds well over 5x the minute before it
    ring = issues[fp]["ring"]
    age = ring["m"] - minute_of(start + spike.at)
    window, before = ring["r"][age], ring["r"][age + 1]
    assert window >= 1.4 * 5 * before, (window, before)
