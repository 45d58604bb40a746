"""The internal record contract (pipeline/stages/records.py) against its JSON Schemas, and
the by-fingerprint split: the agent reads only the facts, the body reaches the sink whole."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.control import make_command
from pipeline.stages.records import (
    FACT_FIELDS,
    SAMPLE,
    by_fingerprint_line,
    command_line,
    issue_state_line,
    processed_line,
    read_by_fingerprint_line,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
META = {
    "ts": 1_700_000_000.5,
    "received_at": 1_700_000_001.0,
    "fingerprint": "f" * 32,
    "secondary_fingerprints": [],
    "grouping_variant": "exception",
    "title": "KeyError: 'order'",
    "culprit": "app.cart in total",
    "category": "bug",
}
ISSUE = {
    "fingerprint": "f" * 32,
    "service": "checkout",
    "title": "KeyError: 'order'",
    "culprit": "app.cart in total",
    "category": "bug",
    "status": "new",
    "first_seen": 1_700_000_000.5,
    "last_seen": 1_700_000_000.5,
    "count": 1,
    "users": 1,
    "levels": ["error"],
    "resolved_at": None,
    "resolved_in_release": None,
    "version": 1,
}
AGENT_META = {
    "body_stored": True,
    "shed_reason": None,
    "sample_rate": 1.0,
    "minute": 1_699_999_980,
    "minute_count": 1,
    "user_hash": 12345,
    "issue": ISSUE,
}


def event() -> dict:
    return {
        "event_id": "a" * 32,
        "timestamp": 1_700_000_000.5,
        "service": "checkout",
        "level": "error",
        "release": "app@1.0",
        "environment": "prod",
        "user": {"id": "u1"},
        "tags": {"region": "eu"},
        "platform": "python",
        "exception": {
            "values": [
                {
                    "type": "KeyError",
                    "value": "'order'" * 100,
                    "stacktrace": {"frames": [{"filename": "app/cart.py", "lineno": 3}]},
                }
            ]
        },
        "breadcrumbs": [{"message": "clicked"}],
    }


def schema(name: str) -> jsonschema.Draft7Validator:
    from referencing import Registry, Resource

    docs = [json.loads(p.read_text()) for p in SCHEMAS.glob("*.v1.json")]
    registry = Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in docs)
    return jsonschema.Draft7Validator(
        json.loads((SCHEMAS / f"{name}.v1.json").read_text()), registry=registry
    )


def test_the_agent_reads_only_facts_and_the_sink_gets_the_whole_event():
    original = event()
    line = by_fingerprint_line(event(), dict(META))
    assert b"\n" not in line and line.count(b"\t") == 1
    facts, rest = read_by_fingerprint_line(line)
    assert set(facts) == set(FACT_FIELDS) | {SAMPLE, "_meta"}
    assert b"stacktrace" not in line.split(b"\t")[0]
    assert facts[SAMPLE][0].startswith("KeyError: 'order'")
    assert len(facts[SAMPLE][0]) == 300 and facts[SAMPLE][1] is None
    facts["_meta"].update(AGENT_META)
    processed = orjson.loads(processed_line(facts, rest))
    assert {k: v for k, v in processed.items() if k != "_meta"} == original
    schema("processed").validate(processed)


def test_a_shed_body_and_a_whole_record_from_an_older_decoder():
    facts, rest = read_by_fingerprint_line(by_fingerprint_line(event(), dict(META)))
    facts["_meta"].update(AGENT_META, body_stored=False, shed_reason="fingerprint_limit")
    lean = orjson.loads(processed_line(facts, None))
    assert "exception" not in lean and lean["tags"] == {"region": "eu"}
    schema("processed").validate(lean)
    whole = orjson.dumps({**event(), "_meta": META})
    record, rest = read_by_fingerprint_line(whole)
    assert rest is None and record["exception"]["values"][0]["type"] == "KeyError"


def test_issue_state_and_command_lines_match_their_schemas():
    schema("issue_state").validate(orjson.loads(issue_state_line(ISSUE)))
    for command in (
        make_command("resolve", "f" * 32, release="app@1.1"),
        make_command("ignore", "f" * 32, until_count=100),
        make_command("merge", "f" * 32, into="e" * 32),
    ):
        schema("command").validate(orjson.loads(command_line(command)))
    with pytest.raises(jsonschema.ValidationError):
        schema("command").validate({"_command": {"command": "explode"}})
    with pytest.raises(jsonschema.ValidationError):
        schema("processed").validate({"event_id": "a" * 32})


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in FACT_FIELDS and k != "_meta"),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_the_splice_equals_a_whole_serialization(extra):
    body = {**event(), **extra}
    facts, rest = read_by_fingerprint_line(by_fingerprint_line(dict(body), dict(META)))
    assert orjson.loads(processed_line(facts, rest)) == {**body, "_meta": META}
