"""The grouping engine: pure functions that turn an error event into an issue fingerprint.

    from pipeline.grouping import GroupingConfig, group_event, load_rules
    config = GroupingConfig(rules=load_rules("deploy/grouping-rules.example.toml"))
    result = group_event(event, config)   # fingerprint, grouping_variant, title, culprit, category

No I/O apart from reading a rules file (``load_rules`` / ``RulesWatcher``). See docs/grouping.md.
"""

from pipeline.grouping.categorize import CATEGORIES, categorize
from pipeline.grouping.config import GroupingConfig, GroupingResult
from pipeline.grouping.engine import group_event, normalize_message
from pipeline.grouping.parameterize import PatternError
from pipeline.grouping.rules import Rule, Rules, RulesError, load_rules, parse_rules
from pipeline.grouping.versions import (
    DefaultGrouping,
    GroupingAlgorithm,
    register_algorithm,
    registered_versions,
)
from pipeline.grouping.watcher import ReloadOutcome, RulesWatcher

__all__ = [
    "CATEGORIES",
    "DefaultGrouping",
    "GroupingAlgorithm",
    "GroupingConfig",
    "GroupingResult",
    "PatternError",
    "ReloadOutcome",
    "Rule",
    "Rules",
    "RulesError",
    "RulesWatcher",
    "categorize",
    "group_event",
    "load_rules",
    "normalize_message",
    "parse_rules",
    "register_algorithm",
    "registered_versions",
]
