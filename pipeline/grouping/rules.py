"""Server-side grouping rules: an ordered file of "when the event looks like this, group it so".

TOML (YAML works the same when PyYAML is installed)::

    [[rules]]
    name = "database unreachable"
    match = { type = "OperationalError", message = "re:could not connect|connection refused" }
    fingerprint = ["database-unreachable", "{{ tags.region }}"]
    title = "Database unreachable"
    category = "network"

Matchers (all given ones must match; a value is a glob, ``re:<regex>``, or a list of those of
which any may match): ``type`` (any exception in the chain), ``message`` (outermost exception
value or log message), ``module`` / ``function`` / ``path`` (any frame), ``service``, ``level``,
``platform``, ``logger``, ``tags`` (table of tag name -> pattern). The first matching rule wins.
Errors raise ``RulesError`` naming the file, the line of the offending rule and the problem.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.grouping.categorize import CATEGORIES
from pipeline.grouping.event import EventView

EVENT_MATCHERS = ("type", "message", "module", "function", "path", "service", "level")
EVENT_MATCHERS += ("platform", "logger")
RULE_KEYS = frozenset({"name", "match", "fingerprint", "title", "category"})
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")
KNOWN_VARIABLES = frozenset(
    {"default", "type", "module", "function", "level", "message", "service", "logger"}
)
KNOWN_VARIABLES |= {"platform"}


class RulesError(ValueError):
    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {problem}")


Predicate = Callable[[str], bool]


@dataclass(frozen=True)
class Rule:
    name: str
    line: int | None
    matchers: tuple[tuple[str, str | None, tuple[Predicate, ...]], ...]  # (field, tag, preds)
    fingerprint: tuple[str, ...] | None
    title: str | None
    category: str | None

    def matches(self, view: EventView) -> bool:
        for field, tag, predicates in self.matchers:
            values = _field_values(view, field, tag)
            if not any(p(v) for v in values for p in predicates):
                return False
        return True


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    source: str = "<memory>"

    def first_match(self, view: EventView) -> Rule | None:
        for rule in self.rules:
            if rule.matches(view):
                return rule
        return None

    def __len__(self) -> int:
        return len(self.rules)


def _field_values(view: EventView, field: str, tag: str | None) -> list[str]:
    exceptions = view.exceptions
    if field == "type":
        return [e.type for e in exceptions] + [e.type.rpartition(".")[2] for e in exceptions]
    if field == "message":
        outer = view.outermost
        return [outer.value if outer and outer.value else view.message]
    if field == "module":
        return [v for e in exceptions for f in e.frames for v in (f.raw_module, f.location)]
    if field == "function":
        return [f.function for e in exceptions for f in e.frames]
    if field == "path":
        return [v for e in exceptions for f in e.frames for v in (f.raw_path, f.location)]
    if field == "tags":
        value = view.tags.get(tag or "")
        return [] if value is None else [value]
    return [getattr(view, field)]


def _predicate(pattern: Any, where: str) -> Predicate:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{where}: expected a non-empty string pattern, got {pattern!r}")
    if pattern.startswith("re:"):
        try:
            return re.compile(pattern[3:]).search  # type: ignore[return-value]
        except re.error as exc:
            raise ValueError(f"{where}: invalid regex {pattern[3:]!r}: {exc}") from None
    return re.compile(fnmatch.translate(pattern)).match  # type: ignore[return-value]


def _predicates(value: Any, where: str) -> tuple[Predicate, ...]:
    patterns = value if isinstance(value, list) else [value]
    if not patterns:
        raise ValueError(f"{where}: empty list of patterns")
    return tuple(_predicate(p, where) for p in patterns)


def _check_template(text: Any, where: str) -> str:
    if not isinstance(text, str) or not text:
        raise ValueError(f"{where}: expected a non-empty string, got {text!r}")
    for variable in VARIABLE.findall(text):
        if variable not in KNOWN_VARIABLES and not variable.startswith("tags."):
            raise ValueError(f"{where}: unknown variable {{{{ {variable} }}}}")
    return text


def build_rule(raw: Any, index: int, line: int | None) -> Rule:
    """Validate one rule table; raises ``ValueError`` with the problem (no location)."""
    label = f"rule #{index + 1}"
    if not isinstance(raw, dict):
        raise ValueError(f"{label}: expected a table, got {type(raw).__name__}")
    name = raw.get("name", label)
    if not isinstance(name, str):
        raise ValueError(f"{label}: name must be a string")
    label = f"rule #{index + 1} ({name})" if "name" in raw else label
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise ValueError(f"{label}: unknown key(s) {', '.join(unknown)}")
    match = raw.get("match")
    if not isinstance(match, dict) or not match:
        raise ValueError(f"{label}: needs a non-empty 'match' table")
    matchers: list[tuple[str, str | None, tuple[Predicate, ...]]] = []
    for key, value in match.items():
        if key == "tags":
            if not isinstance(value, dict) or not value:
                raise ValueError(f"{label}: match.tags must be a table of tag -> pattern")
            for tag, pattern in value.items():
                matchers.append(("tags", tag, _predicates(pattern, f"{label}: match.tags.{tag}")))
        elif key in EVENT_MATCHERS:
            matchers.append((key, None, _predicates(value, f"{label}: match.{key}")))
        else:
            known = ", ".join((*EVENT_MATCHERS, "tags"))
            raise ValueError(f"{label}: unknown matcher {key!r} (known: {known})")
    fingerprint = raw.get("fingerprint")
    if fingerprint is not None:
        if not isinstance(fingerprint, list) or not fingerprint:
            raise ValueError(f"{label}: fingerprint must be a non-empty list of strings")
        fingerprint = tuple(_check_template(p, f"{label}: fingerprint") for p in fingerprint)
    title = raw.get("title")
    if title is not None:
        title = _check_template(title, f"{label}: title")
    category = raw.get("category")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"{label}: category {category!r} is not one of {', '.join(CATEGORIES)}")
    if fingerprint is None and title is None and category is None:
        raise ValueError(f"{label}: sets nothing (give fingerprint, title and/or category)")
    return Rule(name, line, tuple(matchers), fingerprint, title, category)


def _toml_rule_lines(text: str) -> list[int]:
    """1-based line numbers of each ``[[rules]]`` header, in order."""
    header = re.compile(r"^\s*\[\[\s*rules\s*\]\]")
    return [n for n, line in enumerate(text.splitlines(), 1) if header.match(line)]


def _parse_toml(text: str, path: str) -> tuple[Any, list[int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        raise RulesError(path, int(found.group(1)) if found else None, str(exc)) from None
    lines = _toml_rule_lines(text)
    if not lines:  # rules = [ {...}, ... ] written inline
        start = re.search(r"^\s*rules\s*=", text, re.MULTILINE)
        lines = [text[: start.start()].count("\n") + 1] if start else []
    return data, lines


def _parse_yaml(text: str, path: str) -> tuple[Any, list[int]]:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a pipeline dependency
        raise RulesError(path, None, "YAML rules need PyYAML; use TOML instead") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RulesError(path, mark.line + 1 if mark else None, str(exc)) from None
    lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "rules" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return data, lines


def parse_rules(text: str, path: str = "<memory>", syntax: str = "toml") -> Rules:
    data, lines = (_parse_yaml if syntax == "yaml" else _parse_toml)(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(path, 1, "expected a table/mapping with a 'rules' list at the top")
    unknown = sorted(set(data) - {"rules", "version"})
    if unknown:
        raise RulesError(path, None, f"unknown top-level key(s) {', '.join(unknown)}")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RulesError(path, lines[0] if lines else None, "'rules' must be a list of tables")
    rules = []
    for index, raw in enumerate(raw_rules):
        line = lines[index] if index < len(lines) else (lines[0] if lines else None)
        try:
            rules.append(build_rule(raw, index, line))
        except ValueError as exc:
            raise RulesError(path, line, str(exc)) from None
    return Rules(tuple(rules), path)


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file (``.toml``; ``.yaml`` / ``.yml`` with PyYAML)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(name, None, f"cannot read rules file: {exc}") from None
    syntax = "yaml" if name.endswith((".yaml", ".yml")) else "toml"
    return parse_rules(text, name, syntax)
