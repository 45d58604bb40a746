"""The version registry and the transition between two grouping versions."""

import hashlib
import json

import pytest

from pipeline.grouping import (
    DefaultGrouping,
    GroupingAlgorithm,
    GroupingConfig,
    group_event,
    register_algorithm,
    registered_versions,
    strategies_v1,
)
from pipeline.grouping.versions import unregister_algorithm

from . import corpus
from . import sdk_payloads as sdk
from .samples import go_event, java_event, js_event, log_event, node_event, python_event


def _v2_compute(view, config):
    """A pretend v2: groups log messages by logger + message, otherwise like v1."""
    default = strategies_v1.compute(view, config)
    return DefaultGrouping(default.variant, ("logger:" + view.logger, *default.components))


@pytest.fixture
def v2():
    register_algorithm(GroupingAlgorithm("v2-test", _v2_compute, "test only"))
    yield "v2-test"
    unregister_algorithm("v2-test")


def test_v1_is_registered_and_unknown_versions_are_rejected():
    assert "v1" in registered_versions()
    with pytest.raises(ValueError, match="unknown grouping version 'v9'"):
        GroupingConfig(version="v9")
    with pytest.raises(ValueError, match="fallback_version"):
        GroupingConfig(transition_until=1.0)


def test_registering_a_version_twice_is_refused(v2):
    with pytest.raises(ValueError, match="already registered"):
        register_algorithm(GroupingAlgorithm(v2, _v2_compute))


def test_transition_reports_the_old_fingerprint_as_secondary(v2):
    event = log_event("User 42 not found")
    old = group_event(event, GroupingConfig()).fingerprint
    config = GroupingConfig(version=v2, fallback_version="v1", transition_until=2_000.0)
    during = group_event(event, config, now=1_000.0)
    assert during.grouping_version == v2
    assert during.fingerprint != old
    assert during.secondary_fingerprints == (old,)
    after = group_event(event, config, now=3_000.0)
    assert after.fingerprint == during.fingerprint
    assert after.secondary_fingerprints == ()


def test_no_secondary_when_both_versions_agree(v2):
    event = python_event()
    event["fingerprint"] = ["payments", "{{ type }}"]  # custom: independent of the version
    config = GroupingConfig(version=v2, fallback_version="v1", transition_until=None)
    result = group_event(event, config, now=10.0)
    assert result.grouping_variant == "custom"
    assert result.secondary_fingerprints == ()
    assert result.fingerprint == group_event(event, GroupingConfig()).fingerprint


def test_default_inside_custom_fingerprint_gets_a_secondary(v2):
    event = log_event("disk full")
    event["fingerprint"] = ["{{ default }}", "x"]
    config = GroupingConfig(version=v2, fallback_version="v1")
    result = group_event(event, config, now=10.0)
    assert result.secondary_fingerprints == (group_event(event, GroupingConfig()).fingerprint,)


# --- the built-in versions ---------------------------------------------------------------

# What v1 gave for every event of the corpus (fingerprint, variant, title, culprit, category,
# ...) before v2 existed, computed by the code of commit 6900d76: v1 must never change.
V1_CORPUS_DIGEST = "501179012c4b6592315113ced22579070d3bd57a73aba2fef132ea3a81e6c250"


def _results_digest(config):
    lines = [
        json.dumps(group_event(event, config).to_dict(), sort_keys=True)
        for event in corpus.events()
    ]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_v1_results_are_frozen():
    assert _results_digest(GroupingConfig(version="v1")) == V1_CORPUS_DIGEST
    # (the digest can fail: v2's results differ)
    assert _results_digest(GroupingConfig(version="v2")) != V1_CORPUS_DIGEST


def test_v2_is_the_default_and_keeps_v1_fingerprints_of_unchanged_shapes():
    assert GroupingConfig().version == "v2"
    assert registered_versions()[:2] == ("v1", "v2")
    for event in (python_event(), js_event(), node_event(), java_event(), go_event()):
        v1 = group_event(event, GroupingConfig(version="v1"))
        v2 = group_event(event, GroupingConfig())
        assert v2.components == v1.components
        assert v2.fingerprint == v1.fingerprint  # v2 hashes in v1's namespace


def test_transition_from_v1_to_v2_maps_changed_fingerprints_only():
    config = GroupingConfig(version="v2", fallback_version="v1", transition_until=None)
    unchanged = group_event(python_event(), config)
    assert unchanged.secondary_fingerprints == ()
    proxy = sdk.java_event(service_class="com.acme.orders.OrderService_$$_jvst3d9_1a")
    changed = group_event(proxy, config)
    old = group_event(proxy, GroupingConfig(version="v1")).fingerprint
    assert changed.fingerprint != old
    assert changed.secondary_fingerprints == (old,)
    # the v2 fingerprint is the one of the same bug behind another proxy class
    other = sdk.java_event(service_class="com.acme.orders.OrderService_$$_jvst7e2_4")
    assert group_event(other, config).fingerprint == changed.fingerprint


def test_transition_never_maps_onto_v1s_shared_fallback_fingerprint():
    # v1 gave every event with nothing to group on one fingerprint; during a transition those
    # events must not be attached to that one issue again (that is the merge v2 undoes)
    config = GroupingConfig(version="v2", fallback_version="v1", transition_until=None)
    bare = [{"service": "s", "event_id": c * 32, "message": ""} for c in "ab"]
    old = {group_event(e, GroupingConfig(version="v1")).fingerprint for e in bare}
    assert len(old) == 1  # v1: one shared fingerprint
    results = [group_event(e, config) for e in bare]
    assert results[0].fingerprint != results[1].fingerprint
    assert [r.secondary_fingerprints for r in results] == [(), ()]


def test_the_worker_groups_with_v2_by_default():
    from pipeline.grouping.settings import grouping_config
    from pipeline.settings import load_settings

    config = grouping_config(load_settings(env={}))
    assert (config.version, config.fallback_version) == ("v2", None)
