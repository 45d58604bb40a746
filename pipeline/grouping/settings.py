"""The grouping configuration the worker runs, from the settings object (one place).

``grouping_version``, ``grouping_fallback_version`` + ``grouping_transition_until`` (a
transition, docs/grouping.md), ``grouping_patterns`` (the user's own placeholders) and
``grouping_rules_file`` (server-side rules, reloaded while the worker runs: ``RulesWatcher``).
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.grouping.config import GroupingConfig
from pipeline.grouping.rules import Rules, load_rules

_SEPARATOR = re.compile(r"\n|\s;;\s")


def parse_patterns(text: str) -> tuple[tuple[str, str], ...]:
    """``"order_id=ORD-\\d+ ;; ticket=T\\d+"`` (or one per line) → ((name, regex), ...)."""
    out = []
    for part in _SEPARATOR.split(text):
        part = part.strip()
        if not part or part.startswith("#"):
            continue
        name, sep, regex = part.partition("=")
        if not sep or not name.strip() or not regex.strip():
            raise ValueError(f"grouping_patterns: expected name=regex, got {part!r}")
        out.append((name.strip(), regex.strip()))
    return tuple(out)


def grouping_config(settings: Any, rules: Rules | None = None) -> GroupingConfig:
    """Raises ``ValueError`` (``PatternError``, ``RulesError``) naming what is wrong.
    ``rules``: already loaded (by a ``RulesWatcher``); else read from ``grouping_rules_file``."""
    s = settings
    if rules is None and s.grouping_rules_file:
        rules = load_rules(s.grouping_rules_file)
    return GroupingConfig(
        version=s.grouping_version,
        fallback_version=s.grouping_fallback_version or None,
        transition_until=s.grouping_transition_until or None,
        custom_patterns=parse_patterns(s.grouping_patterns),
        rules=rules,
    )
