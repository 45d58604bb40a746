import os
import textwrap
from pathlib import Path

import pytest

from pipeline.grouping import GroupingConfig, RulesError, RulesWatcher, group_event, load_rules
from pipeline.grouping.rules import parse_rules

from .samples import go_event, log_event, python_event

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "grouping-rules.example.toml"

RULES = textwrap.dedent(
    """\
    # grouping rules
    version = 1

    [[rules]]
    name = "payment gateway down"
    match = { type = "ConnectionError", module = "shop.payments.*" }
    fingerprint = ["gateway-down", "{{ tags.region }}"]
    title = "Payment gateway unreachable ({{ tags.region }})"
    category = "api"

    [[rules]]
    name = "db refused"
    fingerprint = ["db-refused", "{{ service }}", "{{ default }}"]
    [rules.match]
    message = "re:connection refused$"
    service = ["ingest", "billing-*"]

    [[rules]]
    name = "noisy warnings"
    match = { level = "warning", message = "*cache miss*" }
    fingerprint = ["cache-miss", "{{ message }}"]
    """
)


def write(tmp_path, text, name="rules.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_first_matching_rule_sets_fingerprint_title_category(tmp_path):
    rules = load_rules(write(tmp_path, RULES))
    assert len(rules) == 3
    config = GroupingConfig(rules=rules)
    eu = group_event(python_event(), config)
    us = python_event()
    us["tags"]["region"] = "us-east-1"
    us_result = group_event(us, config)
    assert eu.grouping_variant == "rule" and eu.rule == "payment gateway down"
    assert eu.title == "Payment gateway unreachable (eu-west-1)"
    assert eu.category == "api"
    assert eu.components == ("gateway-down", "eu-west-1")
    assert eu.fingerprint != us_result.fingerprint
    # a different function still matches the module glob and groups with the same rule
    assert group_event(python_event(function="refund"), config).fingerprint == eu.fingerprint


def test_default_variable_and_service_list(tmp_path):
    config = GroupingConfig(rules=load_rules(write(tmp_path, RULES)))
    result = group_event(go_event(), config)
    default = group_event(go_event(), GroupingConfig()).fingerprint
    assert result.rule == "db refused"
    assert result.components == ("db-refused", "ingest", default)
    assert result.category == "network"  # rule sets no category: the computed one stays


def test_message_variable_is_normalized(tmp_path):
    config = GroupingConfig(rules=load_rules(write(tmp_path, RULES)))
    a = group_event(log_event("cache miss for user 17"), config)
    b = group_event(log_event("cache miss for user 99821"), config)
    assert a.components == ("cache-miss", "cache miss for user <int>")
    assert a.fingerprint == b.fingerprint
    assert group_event(log_event("cache miss", level="error"), config).rule is None


def test_event_fingerprint_and_rule_precedence(tmp_path):
    custom = python_event()
    custom["fingerprint"] = ["{{ type }}", "{{ function }}", "static"]
    result = group_event(custom, GroupingConfig())
    assert result.grouping_variant == "custom"
    assert result.components == ("ConnectionError", "charge", "static")
    # a server-side rule wins over the event's own fingerprint
    ruled = group_event(custom, GroupingConfig(rules=load_rules(write(tmp_path, RULES))))
    assert ruled.grouping_variant == "rule"
    # "{{ default }}" alone means the default grouping
    only_default = python_event()
    only_default["fingerprint"] = ["{{ default }}"]
    assert group_event(only_default, GroupingConfig()).grouping_variant == "in_app_stacktrace"


def test_yaml_rules(tmp_path):
    path = write(
        tmp_path,
        """\
        rules:
          - name: db
            match: {type: "*OpError"}
            fingerprint: ["db"]
          - match: {tags: {region: "eu-*"}}
            category: configuration
        """,
        "rules.yaml",
    )
    rules = load_rules(path)
    assert group_event(go_event(), GroupingConfig(rules=rules)).components == ("db",)
    assert group_event(python_event(), GroupingConfig(rules=rules)).category == "configuration"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            '[[rules]]\nmatch = { type = "X" }\nfingerprint = ["a"]\n\n[[rules]]\nfingerprint = ["b"]\n',
            5,
            "needs a non-empty 'match'",
        ),
        (
            '\n\n[[rules]]\nmatch = { colour = "red" }\nfingerprint = ["a"]\n',
            3,
            "unknown matcher 'colour'",
        ),
        ('[[rules]]\nmatch = { message = "re:(" }\nfingerprint = ["a"]\n', 1, "invalid regex"),
        (
            '[[rules]]\nname = "x"\nmatch = { type = "X" }\ncategory = "weird"\n',
            1,
            "category 'weird'",
        ),
        (
            '[[rules]]\nmatch = { type = "X" }\nfingerprint = ["{{ nope }}"]\n',
            1,
            "unknown variable",
        ),
        ('[[rules]]\nmatch = { type = "X" }\n', 1, "sets nothing"),
        ('[[rules]]\nmatch = { type = "X" }\nfingerprint = "a"\n', 1, "non-empty list"),
        (
            '[[rules]]\nmatch = { type = "X" }\nfingerprint = ["a"]\nextra = 1\n',
            1,
            "unknown key(s) extra",
        ),
        ('[[rules]]\nmatch = { type = "X"\n', 2, "at line 2"),
    ],
)
def test_invalid_rules_name_file_line_and_problem(tmp_path, text, line, problem):
    path = write(tmp_path, text)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    error = caught.value
    assert error.path == str(path)
    assert error.line == line
    assert problem in error.problem
    assert str(error).startswith(f"{path}:{line}: ")


def test_yaml_error_line(tmp_path):
    path = write(
        tmp_path,
        "rules:\n  - match: {type: X}\n    fingerprint: [a]\n  - match: {}\n    title: t\n",
        "r.yml",
    )
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert caught.value.line == 4 and "rule #2" in caught.value.problem


def test_missing_file_is_a_rules_error(tmp_path):
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "absent.toml")


def test_watcher_reloads_on_change_and_keeps_last_good(tmp_path):
    path = write(tmp_path, RULES)
    watcher = RulesWatcher(path)
    assert len(watcher.rules) == 3
    assert watcher.poll().reloaded is False

    def touch(text, bump):
        path.write_text(text)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump))

    touch('[[rules]]\nmatch = { type = "X" }\nfingerprint = ["x"]\n', 10**9)
    outcome = watcher.poll()
    assert outcome.reloaded and outcome.error is None and len(watcher.rules) == 1

    touch('[[rules]]\nmatch = { type = "X" }\ncategory = "bogus"\n', 2 * 10**9)
    outcome = watcher.poll()
    assert not outcome.reloaded and outcome.error is not None and outcome.error.line == 1
    assert len(watcher.rules) == 1 and watcher.last_error is outcome.error
    assert watcher.poll().error is None  # reported once, until the file changes again

    path.unlink()
    assert watcher.poll().error is not None and len(watcher.rules) == 1


def test_inline_rules_array_reports_its_line():
    with pytest.raises(RulesError) as caught:
        parse_rules('# c\nrules = [ { match = { type = "X" } } ]\n', "inline.toml")
    assert caught.value.line == 2


def test_example_rules_file_is_valid():
    rules = load_rules(EXAMPLE)
    assert len(rules) >= 3
