"""The version registry and the transition between two grouping versions."""

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

from .samples import log_event, python_event


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
