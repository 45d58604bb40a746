"""``group_event``: event dict -> fingerprint, variant, title, culprit, category.

    event ─ view_event ─┬─ rule = rules.first_match(view)
                        ├─ default = algorithm(version).compute(view)      (strategies_v1)
                        ├─ fingerprint: rule > event "fingerprint" > default
                        ├─ secondary: the same with the fallback version, during a transition
                        ├─ title / culprit (display), category (categorize; a rule may override)
                        └─ GroupingResult

Custom fingerprints (from the event or a rule) hash in a namespace of their own that does
not depend on the grouping version, so they survive version changes; ``{{ default }}`` inside
them expands to the version's default hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipeline.grouping.categorize import categorize
from pipeline.grouping.config import GroupingConfig, GroupingResult, new_result
from pipeline.grouping.display import culprit_frame, culprit_of, title_of
from pipeline.grouping.event import EventView, view_event
from pipeline.grouping.parameterize import normalize_text
from pipeline.grouping.rules import VARIABLE, Rule
from pipeline.grouping.versions import GroupingAlgorithm, get_algorithm, hash_components

Normalize = Callable[[str, tuple[tuple[str, str], ...]], str]

DEFAULT_MARKERS = frozenset({"{{ default }}", "{{default}}"})


def _variables(
    view: EventView, config: GroupingConfig, default_hash: str, normalize: Normalize
) -> dict[str, str]:
    outer = view.outermost
    frame = culprit_frame(view)
    message = outer.value if outer and outer.value else view.message
    return {
        "default": default_hash,
        "type": outer.type if outer else "",
        "module": frame.location if frame else "",
        "function": frame.function if frame else "",
        "level": view.level,
        "message": normalize(message, config.custom_patterns),
        "service": view.service,
        "logger": view.logger,
        "platform": view.platform,
    }


def expand(template: str, variables: dict[str, str], tags: dict[str, str]) -> str:
    if "{{" not in template:
        return template

    def value(match: Any) -> str:
        name = match.group(1)
        if name.startswith("tags."):
            return tags.get(name[5:], "")
        return variables.get(name, match.group(0))

    return VARIABLE.sub(value, template)


def _fingerprint(
    view: EventView, config: GroupingConfig, algorithm: GroupingAlgorithm, rule: Rule | None
) -> tuple[str, str, tuple[str, ...], dict[str, str]]:
    """(hash, variant, components, variables) for one algorithm version."""
    default = algorithm.compute(view, config)
    namespace = algorithm.hash_namespace or algorithm.version
    default_hash = hash_components(f"{namespace}:{default.variant}", default.components)
    custom = rule.fingerprint if rule and rule.fingerprint else None
    variant = "rule"
    if (
        custom is None
        and view.fingerprint
        and not all(part.strip() in DEFAULT_MARKERS for part in view.fingerprint)
    ):
        custom, variant = view.fingerprint, "custom"
    if custom is None:
        return default_hash, default.variant, default.components, {"default": default_hash}
    variables = _variables(view, config, default_hash, algorithm.normalize or normalize_text)
    parts = tuple(expand(part, variables, view.tags) for part in custom)
    return hash_components("custom", parts), variant, parts, variables


def group_event(
    event: dict[str, Any], config: GroupingConfig | None = None, *, now: float | None = None
) -> GroupingResult:
    """Group one event. Never raises on odd but schema-valid input."""
    config = config or GroupingConfig()
    algorithm = get_algorithm(config.version)
    overrides = (config.in_app_include, config.in_app_exclude)
    view = view_event(event, overrides, algorithm.frames)
    rule = config.rules.first_match(view) if config.rules else None
    fingerprint, variant, components, variables = _fingerprint(view, config, algorithm, rule)
    secondary: tuple[str, ...] = ()
    if config.fallback_version and config.in_transition(time.time() if now is None else now):
        old_algorithm = get_algorithm(config.fallback_version)
        old_view = (
            view
            if old_algorithm.frames is algorithm.frames
            else view_event(event, overrides, old_algorithm.frames)
        )
        old, old_variant = _fingerprint(old_view, config, old_algorithm, rule)[:2]
        # v1's `fallback` hash is one value shared by unrelated events (nothing to group on):
        # an issue known by it must not absorb events that the new version tells apart.
        if old != fingerprint and old_variant != "fallback":
            secondary = (old,)
    normalize = algorithm.normalize or normalize_text
    title = title_of(view, config.custom_patterns, normalize)
    if rule and rule.title:
        if len(variables) == 1:
            variables = _variables(view, config, variables["default"], normalize)
        title = expand(rule.title, variables, view.tags)
    return new_result(  # GroupingResult(...), faster
        fingerprint,
        variant,
        title,
        culprit_of(view),
        rule.category if rule and rule.category else categorize(view, normalize),
        secondary,
        components,
        config.version,
        rule.name if rule else None,
    )


def clear_caches() -> None:
    """Empty every memo of the grouping code (frames, messages, keywords): for benchmarks."""
    from pipeline.grouping import event, frames, parameterize, platforms
    from pipeline.grouping.categorize import _keyword_rank

    for normalizer in parameterize.NORMALIZERS:
        normalizer.cache_clear()
    platforms.clear_caches()
    for cached in (
        event._frame_view,
        frames.frame_key,
        frames.normalize_path,
        frames.normalize_module,
        frames.normalize_function,
        frames.normalize_context_line,
        frames.looks_third_party,
        _keyword_rank,
        hash_components,
    ):
        cached.cache_clear()
    event._KNOWN_FRAMES.clear()


def clear_message_cache() -> None:
    """Empty the memo of normalized messages (raw text -> normalized): for benchmarks that want
    every message to be new. (Keyword ranks and fixed points are keyed on normalized text,
    which repeats even when raw messages do not; they stay.)"""
    from pipeline.grouping import parameterize

    for normalizer in parameterize.NORMALIZERS:
        normalizer.normalize.cache_clear()


def normalize_message(text: str, config: GroupingConfig | None = None) -> str:
    """Replace the variable parts of a message with typed placeholders (idempotent)."""
    if not isinstance(text, str):
        return ""
    config = config or GroupingConfig()
    normalize = get_algorithm(config.version).normalize or normalize_text
    return normalize(text, config.custom_patterns)
