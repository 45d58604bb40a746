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
    DISPATCH_CLASSES,
    FIRST_CHARS,
    KEEP,
    NEEDS_DIGIT,
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


def _starts_with(name: str, chars: str) -> bool:
    first = re.compile(f"[{FIRST_CHARS[name]}]")
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


def _compile(with_digit_patterns: bool) -> re.Pattern[str]:
    """The built-in patterns as one regex, dispatched on the character at each position.

    Equivalent to ``"|".join(patterns)`` (tests compare with it): at a position whose
    character is in one of ``DISPATCH_CLASSES`` only the patterns that can start with such a
    character are tried, in their order; so the first pattern that matches is the same.
    Inside a word (``WORD_TAIL``) no pattern can match, and the text is copied.
    """
    patterns = [
        (name, regex)
        for name, regex in BUILTIN_PATTERNS
        if with_digit_patterns or name not in NEEDS_DIGIT
    ]
    branches = [WORD_TAIL]
    for index, char_class in enumerate(DISPATCH_CLASSES):
        chars = [chr(code) for code in range(128) if re.match(f"[{char_class}]", chr(code))]
        alternatives = [
            _alternative(name, regex, str(index))
            for name, regex in patterns
            if _starts_with(name, "".join(chars))
        ]
        if alternatives:
            branches.append(f"(?=[{char_class}])(?:{'|'.join(alternatives)})")
    rest = "|".join(_alternative(name, regex, "x") for name, regex in patterns)
    branches.append(f"(?![{''.join(DISPATCH_CLASSES)}])(?:{rest})")
    return re.compile("|".join(branches))


# Text without any digit (common for exception values) goes through a smaller regex.
_ALL_PATTERNS = _compile(with_digit_patterns=True)
_NO_DIGIT_PATTERNS = _compile(with_digit_patterns=False)
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
_PLACEHOLDER = {name: None if name in KEEP else f"<{name}>" for name, _ in BUILTIN_PATTERNS}
_PLACEHOLDER["plain_int"] = "<int>"
_GROUPS = [group for regex in (_ALL_PATTERNS, _NO_DIGIT_PATTERNS) for group in regex.groupindex]
# group -> placeholder: groups that are empty / groups holding blanks kept after it
_FIXED = {g: _PLACEHOLDER[g.partition("__")[0]] for g in _GROUPS if not g.endswith("__b")}
_WITH_BLANKS = {g: _PLACEHOLDER[g.partition("__")[0]] for g in _GROUPS if g.endswith("__b")}


def _substitute_builtin(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group is None:
        return match.group()
    placeholder = _WITH_BLANKS.get(group)
    if placeholder is not None:
        return placeholder + match.group(group)
    return _FIXED[group]  # type: ignore[return-value]


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


@lru_cache(maxsize=65536)
def _normalize(text: str, custom_patterns: CustomPatterns) -> str:
    text = text[:MAX_INPUT_CHARS]
    trimmed = text.strip() if "\n" not in text and "\r" not in text else trim_lines(text)
    if custom_patterns:
        regex, replacement = _custom_regex(custom_patterns)
        trimmed = regex.sub(lambda m: replacement[m.lastgroup], trimmed)  # type: ignore[index]
    if not _HAS_DIGIT(trimmed):
        if not _MAY_CHANGE_WITHOUT_DIGIT(trimmed):
            return _cut(trimmed)
        return _cut(_NO_DIGIT_PATTERNS.sub(_substitute_builtin, trimmed))
    result = _ALL_PATTERNS.sub(_substitute_builtin, trimmed)
    if _GLUED_PLACEHOLDER(result):
        result = _fixed_point(result)
    return result if len(result) <= MAX_OUTPUT_CHARS else _cut(result)


@lru_cache(maxsize=16384)
def _fixed_point(result: str) -> str:
    """Re-run the built-in pass until nothing changes (at most 4 more times).

    A placeholder glued to other text ("3.<hex>", "17a::<hex>") can let a neighbour match
    that its original digits prevented; re-running makes the output a fixed point. Cached:
    these outputs repeat ("dial tcp <ip>: connect: ..."), while the raw messages do not.
    """
    for _ in range(4):
        if not _GLUED_PLACEHOLDER(result):
            break
        again = _ALL_PATTERNS.sub(_substitute_builtin, result)
        if again == result:
            break
        result = again
    return result


def normalize_text(text: str, custom_patterns: CustomPatterns = ()) -> str:
    """Normalize ``text`` with already validated custom patterns (the hot path)."""
    if not text:
        return ""
    return _normalize(text, custom_patterns)
