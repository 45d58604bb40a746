"""Message normalization: replace the variable parts of a message with typed placeholders.

    "Connection to 10.0.0.7:5432 timed out after 30s"  ->  "Connection to <ip> timed out after <duration>"

Steps, in order:
  1. cut the raw text to ``MAX_INPUT_CHARS`` (cost guard against megabyte messages);
  2. keep the first two non-empty lines (stripped); append "..." when lines were dropped;
  3. user patterns (config), one combined regex, one pass; then one left-to-right pass of
     the single combined built-in regex from ``patterns.py``; HTTP status codes after
     "status"/"HTTP"/... are kept;
  4. cut the result to ``MAX_OUTPUT_CHARS`` at a space.

The output is a fixed point: normalizing it again returns it unchanged (placeholders contain
no digits or separators any pattern could match). The built-in regex is compiled once at import, the
user regex once per set of custom patterns; results are cached on the (text, custom patterns) pair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from pipeline.grouping.patterns import (
    BLANKS,
    BUILTIN_PATTERNS,
    BUILTIN_PATTERNS_V2,
    DISPATCH_CLASSES,
    FIRST_CHARS,
    FIRST_CHARS_V2,
    KEEP,
    NEEDS_DIGIT,
    NEEDS_DIGIT_V2,
    TAKES_BLANKS,
    WORD_TAIL,
)

MAX_INPUT_CHARS = 8192
MAX_OUTPUT_CHARS = 1024
MAX_LINES = 2

_CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

CustomPatterns = tuple[tuple[str, str], ...]


class PatternError(ValueError):
    """A custom pattern has a bad name or a regex that does not compile."""


def validate_custom_patterns(custom_patterns: Sequence[Sequence[str]]) -> CustomPatterns:
    """Check names and regexes of user patterns; return them as a tuple of pairs."""
    checked = []
    for index, pair in enumerate(custom_patterns):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise PatternError(f"custom pattern #{index}: expected (name, regex), got {pair!r}")
        name, regex = pair
        if not isinstance(name, str) or not _CUSTOM_NAME.match(name):
            raise PatternError(
                f"custom pattern #{index}: name {name!r} must match [a-z][a-z0-9_]* (max 32)"
            )
        try:
            compiled = re.compile(regex)
        except (re.error, TypeError) as exc:
            raise PatternError(f"custom pattern {name!r}: invalid regex {regex!r}: {exc}") from exc
        if compiled.match(""):
            raise PatternError(f"custom pattern {name!r}: regex {regex!r} matches the empty string")
        checked.append((name, regex))
    return tuple(checked)


def _starts_with(name: str, chars: str, first_chars: dict[str, str] = FIRST_CHARS) -> bool:
    first = re.compile(f"[{first_chars[name]}]")
    return any(first.match(char) for char in chars)


def _alternative(name: str, regex: str, tag: str) -> str:
    # The group that names a match comes last: failed attempts set no group, and patterns
    # whose matches are kept verbatim need none (``lastgroup`` is then None). It is empty,
    # or holds the blanks that follow the match (``TAKES_BLANKS``), kept after the placeholder.
    if name in KEEP:
        return f"(?:{regex})"
    if name in TAKES_BLANKS:
        return f"(?:{regex})(?P<{name}__{tag}__b>{BLANKS}*)"
    return f"(?:{regex})(?P<{name}__{tag}>)"


def _compile(
    with_digit_patterns: bool,
    builtin: tuple[tuple[str, str], ...] = BUILTIN_PATTERNS,
    first_chars: dict[str, str] = FIRST_CHARS,
    needs_digit: frozenset[str] = NEEDS_DIGIT,
) -> re.Pattern[str]:
    """The built-in patterns as one regex, dispatched on the character at each position.

    Equivalent to ``"|".join(patterns)`` (tests compare with it): at a position whose
    character is in one of ``DISPATCH_CLASSES`` only the patterns that can start with such a
    character are tried, in their order; so the first pattern that matches is the same.
    Inside a word (``WORD_TAIL``) no pattern can match, and the text is copied.
    """
    patterns = [
        (name, regex) for name, regex in builtin if with_digit_patterns or name not in needs_digit
    ]
    branches = [WORD_TAIL]
    for index, char_class in enumerate(DISPATCH_CLASSES):
        chars = [chr(code) for code in range(128) if re.match(f"[{char_class}]", chr(code))]
        alternatives = [
            _alternative(name, regex, str(index))
            for name, regex in patterns
            if _starts_with(name, "".join(chars), first_chars)
        ]
        if alternatives:
            branches.append(f"(?=[{char_class}])(?:{'|'.join(alternatives)})")
    rest = "|".join(_alternative(name, regex, "x") for name, regex in patterns)
    branches.append(f"(?![{''.join(DISPATCH_CLASSES)}])(?:{rest})")
    return re.compile("|".join(branches))


_HAS_DIGIT = re.compile(r"\d").search
# Without a digit only these patterns can replace anything (e-mail, URL, host name, path,
# quoted string, bool); text with none of their characters is its own normalization.
_MAY_CHANGE_WITHOUT_DIGIT = re.compile(r"[@./\\=]").search
# Placeholders glued to hex digits, ":", "." or "-" ("17a::<hex>", "<hex>::fe80",
# "<hex>-0xa"): the junctions where replacing a neighbour can change what a look-ahead /
# look-behind of a pattern saw ("0xa-0xa": the second "-0xa" may start a match after
# "<hex>" but not after "a"). (Written to start with "<" or ">" so that the search only
# stops at those characters; it finds what "(?:[0-9a-fA-F][:.]{0,2}|[:.])<[a-z]|[a-z0-9]>[\w:.-]"
# finds.)
_GLUED_PLACEHOLDER = re.compile(r"<(?<=[0-9a-fA-F:.]<)[a-z]|>(?<=[a-z0-9]>)[\w:.-]").search


class Normalizer:
    """One set of built-in patterns compiled for the single pass, with its own caches.

    Grouping v1 uses ``BUILTIN_PATTERNS`` (frozen: its fingerprints are stored in issues),
    v2 ``BUILTIN_PATTERNS_V2``. ``normalize(text, custom_patterns)`` is the cached entry point.
    """

    def __init__(
        self,
        name: str,
        builtin: tuple[tuple[str, str], ...],
        first_chars: dict[str, str],
        needs_digit: frozenset[str],
    ) -> None:
        self.name = name
        self.builtin = builtin
        self.needs_digit = needs_digit
        # Text without any digit (common for exception values) goes through a smaller regex.
        self.all_patterns = all_patterns = _compile(True, builtin, first_chars, needs_digit)
        self.no_digit_patterns = no_digit = _compile(False, builtin, first_chars, needs_digit)
        placeholders = {name: None if name in KEEP else f"<{name}>" for name, _ in builtin}
        placeholders["plain_int"] = "<int>"
        groups = [group for regex in (all_patterns, no_digit) for group in regex.groupindex]
        # group -> placeholder: groups that are empty / groups holding blanks kept after it
        fixed = {g: placeholders[g.partition("__")[0]] for g in groups if not g.endswith("__b")}
        with_blanks = {g: placeholders[g.partition("__")[0]] for g in groups if g.endswith("__b")}

        def substitute(match: re.Match[str]) -> str:
            group = match.lastgroup
            if group is None:
                return match.group()
            placeholder = with_blanks.get(group)
            if placeholder is not None:
                return placeholder + match.group(group)
            return fixed[group]  # type: ignore[return-value]

        all_sub, no_digit_sub = all_patterns.sub, no_digit.sub
        has_digit, may_change, glued = _HAS_DIGIT, _MAY_CHANGE_WITHOUT_DIGIT, _GLUED_PLACEHOLDER

        @lru_cache(maxsize=16384)
        def fixed_point(result: str) -> str:
            """Re-run the built-in pass until nothing changes (at most 4 more times).

            A placeholder glued to other text ("3.<hex>", "17a::<hex>") can let a neighbour
            match that its original digits prevented; re-running makes the output a fixed
            point. Cached: these outputs repeat ("dial tcp <ip>: connect: ..."), while the raw
            messages do not.
            """
            for _ in range(4):
                if not glued(result):
                    break
                again = all_sub(substitute, result)
                if again == result:
                    break
                result = again
            return result

        @lru_cache(maxsize=65536)
        def normalize(text: str, custom_patterns: CustomPatterns) -> str:
            text = text[:MAX_INPUT_CHARS]
            trimmed = text.strip() if "\n" not in text and "\r" not in text else trim_lines(text)
            if custom_patterns:
                regex, replacement = _custom_regex(custom_patterns)
                trimmed = regex.sub(lambda m: replacement[m.lastgroup], trimmed)  # type: ignore[index]
            if not has_digit(trimmed):
                if not may_change(trimmed):
                    return _cut(trimmed)
                return _cut(no_digit_sub(substitute, trimmed))
            result = all_sub(substitute, trimmed)
            if glued(result):
                result = fixed_point(result)
            return result if len(result) <= MAX_OUTPUT_CHARS else _cut(result)

        self.substitute = substitute
        self.fixed_point = fixed_point
        self.normalize = normalize

    def __call__(self, text: str, custom_patterns: CustomPatterns = ()) -> str:
        """Normalize ``text`` with already validated custom patterns."""
        if not text:
            return ""
        return self.normalize(text, custom_patterns)

    def cache_clear(self) -> None:
        self.normalize.cache_clear()
        self.fixed_point.cache_clear()


V1 = Normalizer("v1", BUILTIN_PATTERNS, FIRST_CHARS, NEEDS_DIGIT)
V2 = Normalizer("v2", BUILTIN_PATTERNS_V2, FIRST_CHARS_V2, NEEDS_DIGIT_V2)
NORMALIZERS = (V1, V2)
# v1's pieces under their historical names (tests and benchmarks read them)
_ALL_PATTERNS = V1.all_patterns
_NO_DIGIT_PATTERNS = V1.no_digit_patterns
_substitute_builtin = V1.substitute
_normalize = V1.normalize
_fixed_point = V1.fixed_point
_normalize_v2 = V2.normalize


@lru_cache(maxsize=64)
def _custom_regex(custom_patterns: CustomPatterns) -> tuple[re.Pattern[str], dict[str, str]]:
    """User patterns OR-ed into one regex (tried in their order); group name -> placeholder."""
    parts = []
    replacement = {}
    for index, (name, regex) in enumerate(custom_patterns):
        group = f"c{index}_{name}"
        parts.append(f"(?P<{group}>{regex})")
        replacement[group] = f"<{name}>"
    return re.compile("|".join(parts)), replacement


def first_line(text: str) -> str:
    """The first non-empty line, stripped."""
    if "\n" not in text and "\r" not in text:
        return text.strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def trim_lines(text: str) -> str:
    """First ``MAX_LINES`` non-empty lines, stripped, plus "..." if anything was dropped."""
    if "\n" not in text and "\r" not in text:
        return text.strip()
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line]
    if len(kept) <= MAX_LINES:
        return "\n".join(kept)
    return "\n".join(kept[:MAX_LINES]) + "..."


def _cut(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    head = text[:MAX_OUTPUT_CHARS]
    space = head.rfind(" ")
    return head[:space] if space > MAX_OUTPUT_CHARS // 2 else head


def normalize_text(text: str, custom_patterns: CustomPatterns = ()) -> str:
    """Normalize ``text`` with v1's patterns and already validated custom patterns."""
    if not text:
        return ""
    return _normalize(text, custom_patterns)


def normalize_text_v2(text: str, custom_patterns: CustomPatterns = ()) -> str:
    """Normalize ``text`` with v2's patterns (Sentry's newest categories) and custom patterns."""
    if not text:
        return ""
    return _normalize_v2(text, custom_patterns)


def message_cache_info() -> tuple[int, int]:
    """(hits, misses) of the normalized-message caches of every pattern set together."""
    infos = [normalizer.normalize.cache_info() for normalizer in NORMALIZERS]
    return sum(i.hits for i in infos), sum(i.misses for i in infos)
