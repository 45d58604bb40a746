"""The worker's grouping configuration comes from the settings; rules reload while it runs."""

from __future__ import annotations

import os
import time

import orjson
import pytest

from pipeline.decoder import Decoder, decode_batch
from pipeline.grouping.settings import grouping_config, parse_patterns
from pipeline.grouping.watcher import RulesWatcher
from pipeline.metrics import Metrics
from pipeline.settings import ConfigError, Settings, load_settings
from pipeline.stages.records import read_by_fingerprint_line

RULES = """
[[rules]]
name = "db"
fingerprint = ["{name}"]
[rules.match]
type = "OperationalError"
"""


def event(i: int, kind: str = "OperationalError", value: str = "could not connect") -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{i:032x}",
            "timestamp": time.time(),
            "service": "api",
            "level": "error",
            "exception": {"values": [{"type": kind, "value": value}]},
        }
    )


def fingerprints(decoder: Decoder, raws: list[bytes]) -> list[str]:
    envelopes, dead = decode_batch(
        [("t", 0, i, raw, ()) for i, raw in enumerate(raws)], decoder.grouping, 1
    )
    assert not dead
    return [
        read_by_fingerprint_line(line)[0]["_meta"]["fingerprint"]
        for _, lines in envelopes.values()
        for line in lines
    ]


def test_patterns_parse_from_lines_and_separators():
    assert parse_patterns("order=ORD-\\d+ ;; ticket=T\\d+\n# a comment\nsku = SKU[0-9]+") == (
        ("order", "ORD-\\d+"),
        ("ticket", "T\\d+"),
        ("sku", "SKU[0-9]+"),
    )
    with pytest.raises(ValueError, match="expected name=regex"):
        parse_patterns("no-equals-sign")


def test_user_patterns_reach_the_grouping_config_and_merge_messages():
    config = grouping_config(Settings(grouping_patterns="order=ORD-[0-9]+"))
    assert config.custom_patterns == (("order", "ORD-[0-9]+"),)
    decoder = Decoder(Settings(), Metrics(), config)
    a, b = fingerprints(
        decoder,
        [event(1, "ValueError", "bad ORD-1234 here"), event(2, "ValueError", "bad ORD-99 here")],
    )
    assert a == b
    plain = Decoder(Settings(), Metrics(), grouping_config(Settings()))
    c, d = fingerprints(
        plain,
        [event(1, "ValueError", "bad ORD-1234 here"), event(2, "ValueError", "bad ORDX here")],
    )
    assert c != d


def test_bad_grouping_settings_are_config_errors_naming_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="grouping:.*invalid regex"):
        load_settings(env={"ERRORSTREAM_GROUPING_PATTERNS": "broken=("})
    with pytest.raises(ConfigError, match="grouping:.*v9"):
        load_settings(env={"ERRORSTREAM_GROUPING_VERSION": "v9"})
    with pytest.raises(ConfigError, match="transition_until"):
        load_settings(env={"ERRORSTREAM_GROUPING_TRANSITION_UNTIL": "1800000000"})
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rules]]\nname = "x"\nfingerprint = ["a"]\n[rules.match]\nnope = "y"\n')
    with pytest.raises(ConfigError, match="rules.toml"):
        load_settings(env={"ERRORSTREAM_GROUPING_RULES_FILE": str(bad)})


def test_the_decoder_reloads_a_changed_rules_file_and_keeps_rules_on_a_bad_edit(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES.format(name="database-v1"))
    settings = Settings(grouping_rules_file=str(path))
    decoder = Decoder(settings, Metrics(), grouping_config(settings), RulesWatcher(path))
    first = fingerprints(decoder, [event(1)])

    path.write_text(RULES.format(name="database-v2"))
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new mtime even within one tick
    decoder.reload_rules(now=10.0)
    second = fingerprints(decoder, [event(2)])
    assert second != first

    path.write_text("[[rules]]\nthis is not toml")
    os.utime(path, (time.time() + 10, time.time() + 10))
    decoder.reload_rules(now=20.0)
    assert fingerprints(decoder, [event(3)]) == second  # the last good rules stay
