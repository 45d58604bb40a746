"""The grouping configuration (input) and the grouping result (output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.grouping.parameterize import CustomPatterns, validate_custom_patterns
from pipeline.grouping.slots import slot_setters

if TYPE_CHECKING:
    from pipeline.grouping.rules import Rules

DEFAULT_VERSION = "v2"


@dataclass(frozen=True)
class GroupingConfig:
    """How events are grouped. Validated on construction; raises ``ValueError`` when invalid.

    version / fallback_version / transition_until: while ``now < transition_until`` the
    fallback version's fingerprint is computed too and reported as a secondary fingerprint,
    so the worker can map the new hash onto the existing issue (see docs/grouping.md).
    """

    version: str = DEFAULT_VERSION
    fallback_version: str | None = None
    transition_until: float | None = None  # epoch seconds; None with a fallback = no end
    custom_patterns: CustomPatterns = ()  # (name, regex) pairs applied before the built-ins
    max_frames: int = 30  # innermost frames used per exception, after collapsing recursion
    in_app_include: tuple[str, ...] = ()  # module / path prefixes forced in-app
    in_app_exclude: tuple[str, ...] = ()  # module / path prefixes forced out of app
    use_context_lines: bool = True
    rules: Rules | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        from pipeline.grouping.versions import get_algorithm

        get_algorithm(self.version)
        if self.fallback_version is not None:
            get_algorithm(self.fallback_version)
        if self.transition_until is not None and self.fallback_version is None:
            raise ValueError("transition_until is set but fallback_version is not")
        if not isinstance(self.max_frames, int) or self.max_frames < 1:
            raise ValueError(f"max_frames must be a positive integer, got {self.max_frames!r}")
        object.__setattr__(self, "custom_patterns", validate_custom_patterns(self.custom_patterns))
        object.__setattr__(self, "in_app_include", tuple(self.in_app_include))
        object.__setattr__(self, "in_app_exclude", tuple(self.in_app_exclude))

    def in_transition(self, now: float) -> bool:
        if self.fallback_version is None or self.fallback_version == self.version:
            return False
        return self.transition_until is None or now < self.transition_until


@dataclass(frozen=True, slots=True)
class GroupingResult:
    fingerprint: str  # 32 hex chars
    grouping_variant: str  # custom | rule | in_app_stacktrace | stacktrace | exception_message | message | raw_message | event_id | payload (v2) | fallback (v1)
    title: str
    culprit: str
    category: str
    secondary_fingerprints: tuple[str, ...] = ()
    components: tuple[str, ...] = ()  # what was hashed, for debugging ("why did these group?")
    grouping_version: str = DEFAULT_VERSION
    rule: str | None = None  # name of the server-side rule that matched, if any

    def to_dict(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "grouping_variant": self.grouping_variant,
            "title": self.title,
            "culprit": self.culprit,
            "category": self.category,
            "secondary_fingerprints": list(self.secondary_fingerprints),
            "grouping_version": self.grouping_version,
            "rule": self.rule,
        }


(
    _set_fingerprint,
    _set_variant,
    _set_title,
    _set_culprit,
    _set_category,
    _set_secondary,
    _set_components,
    _set_version,
    _set_rule,
) = slot_setters(
    GroupingResult,
    (
        "fingerprint",
        "grouping_variant",
        "title",
        "culprit",
        "category",
        "secondary_fingerprints",
        "components",
        "grouping_version",
        "rule",
    ),
)


def new_result(
    fingerprint: str,
    grouping_variant: str,
    title: str,
    culprit: str,
    category: str,
    secondary_fingerprints: tuple[str, ...],
    components: tuple[str, ...],
    grouping_version: str,
    rule: str | None,
) -> GroupingResult:
    """``GroupingResult(...)`` (all fields, in order) at half the cost: the frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``; this sets the slots directly."""
    result = object.__new__(GroupingResult)
    _set_fingerprint(result, fingerprint)
    _set_variant(result, grouping_variant)
    _set_title(result, title)
    _set_culprit(result, culprit)
    _set_category(result, category)
    _set_secondary(result, secondary_fingerprints)
    _set_components(result, components)
    _set_version(result, grouping_version)
    _set_rule(result, rule)
    return result
