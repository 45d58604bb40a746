"""pipeline.sentry: every payload shape Sentry's SDKs and docs use -> a schema v1 event that
the grouping engine reads (titles, culprits, variants checked through group_event)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.grouping import GroupingConfig, group_event
from pipeline.sentry import NO_GROUPING_INFO, fix_exception_tree, format_params, to_event_v1
from pipeline.stages.decode import DecodedEvent, validate_event

NOW = 1_760_000_000.0
EID = "7c9ae2a0b3e44b0f9d1c2e3f4a5b6c7d"


def convert(payload, **kw):
    kw.setdefault("service", "checkout")
    kw.setdefault("received_at", NOW)
    event = to_event_v1(payload, **kw)
    checked = validate_event(copy.deepcopy(event))
    assert isinstance(checked, DecodedEvent), checked
    return event


def grouped(event):
    return group_event(event, GroupingConfig())


def py_frames(*names):
    return [
        {
            "filename": f"app/{n}.py",
            "abs_path": f"/srv/app/{n}.py",
            "module": f"app.{n}",
            "function": n,
            "lineno": 10 + i,
            "context_line": f"    {n}()",
            "in_app": True,
        }
        for i, n in enumerate(names)
    ]


def test_exception_as_values_and_as_plain_list_convert_the_same():
    exc = {"type": "KeyError", "value": "'sku'", "stacktrace": {"frames": py_frames("a", "b")}}
    a = convert({"event_id": EID, "exception": {"values": [exc]}})
    b = convert({"event_id": EID, "exception": [exc]})
    assert a == b
    assert a["exception"]["values"][0]["stacktrace"]["frames"][-1]["function"] == "b"
    result = grouped(a)
    assert result.title == "KeyError: 'sku'"
    assert result.culprit == "app.b in b"
    assert result.grouping_variant == "in_app_stacktrace"


def test_legacy_interface_names_are_read():
    exc = {"type": "ValueError", "value": "bad", "stacktrace": {"frames": py_frames("x")}}
    event = convert(
        {
            "sentry.interfaces.Exception": {"values": [exc]},
            "sentry.interfaces.Http": {"url": "https://shop/cart", "method": "post"},
            "sentry.interfaces.User": {"id": 42, "email": "a@b.io"},
            "sentry.interfaces.Message": {"message": "checkout %s", "params": ["failed"]},
        }
    )
    assert event["exception"]["values"][0]["type"] == "ValueError"
    assert event["request"] == {"url": "https://shop/cart", "method": "POST"}
    assert event["user"] == {"id": 42, "email": "a@b.io"}
    assert event["message"]["formatted"] == "checkout failed"
    assert grouped(event).culprit == "app.x in x"


def test_legacy_stacktrace_interface_without_exception():
    event = convert(
        {
            "message": "slow query",
            "sentry.interfaces.Stacktrace": {"frames": py_frames("query", "run")},
        }
    )
    result = grouped(event)
    assert result.grouping_variant == "in_app_stacktrace"
    assert result.title == "slow query"
    assert result.culprit == "app.run in run"


def test_top_level_stacktrace_groups_on_frames_and_is_titled_by_message():
    a = convert({"message": "cache miss 1", "stacktrace": {"frames": py_frames("get", "load")}})
    b = convert({"message": "disk full", "stacktrace": {"frames": py_frames("write", "flush")}})
    ra, rb = grouped(a), grouped(b)
    assert ra.grouping_variant == rb.grouping_variant == "in_app_stacktrace"
    assert ra.fingerprint != rb.fingerprint
    assert ra.title == "cache miss <int>" and rb.title == "disk full"
    assert ra.culprit == "app.load in load"
    assert a["exception"]["values"][0]["mechanism"] == {"type": "stacktrace", "synthetic": True}


def test_threads_crashed_thread_stack_is_used():
    payload = {
        "threads": {
            "values": [
                {"id": 1, "name": "main", "stacktrace": {"frames": py_frames("idle")}},
                {"id": 2, "crashed": True, "stacktrace": {"frames": py_frames("crash")}},
            ]
        },
        "message": "ANR",
    }
    result = grouped(convert(payload))
    assert result.culprit == "app.crash in crash"
    assert result.grouping_variant == "in_app_stacktrace"


def test_threads_as_list_current_thread_and_exception_thread_id():
    threads = [
        {"id": 7, "current": True, "stacktrace": {"frames": py_frames("current")}},
        {"id": 9, "stacktrace": {"frames": py_frames("worker")}},
    ]
    event = convert({"threads": threads, "logentry": {"formatted": "x"}})
    assert grouped(event).culprit == "app.current in current"
    # an exception without frames takes the stack of the thread it names
    event = convert(
        {"threads": threads, "exception": [{"type": "E", "value": "v", "thread_id": 9}]}
    )
    assert grouped(event).culprit == "app.worker in worker"
    assert "thread_id" not in event["exception"]["values"][0]


def test_chained_exceptions_keep_sentry_order_outermost_last():
    payload = {
        "exception": {
            "values": [
                {
                    "type": "KeyError",
                    "value": "'id'",
                    "stacktrace": {"frames": py_frames("load")},
                    "mechanism": {"type": "chained", "exception_id": 1, "parent_id": 0},
                },
                {
                    "type": "RuntimeError",
                    "value": "load failed",
                    "stacktrace": {"frames": py_frames("handler")},
                    "mechanism": {"type": "generic", "handled": False, "exception_id": 0},
                },
            ]
        }
    }
    event = convert(payload)
    values = event["exception"]["values"]
    assert [v["type"] for v in values] == ["KeyError", "RuntimeError"]
    assert values[0]["mechanism"] == {"type": "chained", "exception_id": 1, "parent_id": 0}
    result = grouped(event)
    assert result.title == "RuntimeError: load failed"
    assert result.culprit == "app.handler in handler"


@pytest.mark.parametrize(
    "mechanisms, kept",
    [
        # a cycle 0 -> 1 -> 0: one link is dropped so the rest is a tree
        ([{"exception_id": 0, "parent_id": 1}, {"exception_id": 1, "parent_id": 0}], 1),
        # a parent that is itself
        ([{"exception_id": 0, "parent_id": 0}], 0),
        # a parent that does not exist, and ids that are not numbers
        ([{"exception_id": 0, "parent_id": 5}, {"exception_id": "x", "parent_id": -1}], 0),
        # a repeated id names no one
        ([{"exception_id": 3}, {"exception_id": 3}, {"exception_id": 4, "parent_id": 3}], 0),
    ],
)
def test_bad_or_cyclic_exception_ids_are_tolerated(mechanisms, kept):
    values = [
        {"type": f"E{i}", "value": "v", "mechanism": {"type": "chained", **m}}
        for i, m in enumerate(mechanisms)
    ]
    event = convert({"exception": values})
    parents = [v.get("mechanism", {}).get("parent_id") for v in event["exception"]["values"]]
    assert sum(p is not None for p in parents) == kept
    ids = {
        v["mechanism"]["exception_id"]: v
        for v in event["exception"]["values"]
        if "exception_id" in v.get("mechanism", {})
    }
    for v in event["exception"]["values"]:  # every remaining parent exists, no cycles
        seen, node = set(), v.get("mechanism", {}).get("parent_id")
        while node is not None:
            assert node in ids and node not in seen
            seen.add(node)
            node = ids[node]["mechanism"].get("parent_id")


@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "exception_id": st.one_of(st.integers(-2, 5), st.text(max_size=2), st.none()),
                "parent_id": st.one_of(st.integers(-2, 5), st.booleans(), st.none()),
            },
        ),
        max_size=8,
    )
)
@settings(max_examples=200, deadline=None)
def test_exception_tree_repair_terminates_and_leaves_a_forest(mechanisms):
    excs = [{"type": "E", "mechanism": {"type": "x", **m}} for m in mechanisms]
    for e in excs:  # what convert_exception would have kept
        mech = e["mechanism"]
        for k in ("exception_id", "parent_id"):
            if (
                not (isinstance(mech.get(k), int) and not isinstance(mech.get(k), bool))
                or mech[k] < 0
            ):
                mech.pop(k, None)
    fix_exception_tree(excs)
    ids = {
        e["mechanism"]["exception_id"]: e for e in excs if "exception_id" in e.get("mechanism", {})
    }
    assert len(ids) == sum("exception_id" in e.get("mechanism", {}) for e in excs)
    for e in excs:
        seen, node = set(), e.get("mechanism", {}).get("parent_id")
        while node is not None:
            assert node in ids and node not in seen
            seen.add(node)
            node = ids[node]["mechanism"].get("parent_id")


def test_message_string_object_and_logentry_params():
    assert convert({"message": "plain text"})["message"] == "plain text"
    event = convert({"logentry": {"message": "user %s failed %d times", "params": ["bob", 3]}})
    assert event["message"] == {
        "message": "user %s failed %d times",
        "formatted": "user bob failed 3 times",
        "params": ["bob", 3],
    }
    assert grouped(event).title == "user bob failed <int> times"
    event = convert({"message": {"formatted": "already formatted", "message": "t %s"}})
    assert event["message"]["formatted"] == "already formatted"
    # the Python SDK: message string beside a logentry template
    event = convert({"message": "Order 17 failed", "logentry": {"message": "Order %s failed"}})
    assert event["message"]["formatted"] == "Order 17 failed"


def test_format_params_styles():
    assert format_params("a {} b {}", ["x", "y"]) == "a x b y"
    assert format_params("a {1} b {0}", ["x", "y"]) == "a y b x"
    assert format_params("hi {name}", {"name": "bo"}) == "hi bo"
    assert format_params("%(n)s items, 100%%", {"n": 3}) == "3 items, 100%"
    assert format_params("%s and %s", ["only one"]) is None


def test_template_interface_gives_a_frame():
    event = convert(
        {
            "message": "TemplateSyntaxError",
            "template": {
                "filename": "shop/cart.html",
                "abs_path": "/srv/templates/shop/cart.html",
                "lineno": 12,
                "context_line": "{% for item in cart %}",
            },
        }
    )
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert frame["filename"] == "shop/cart.html" and frame["in_app"] is True
    assert grouped(event).grouping_variant == "in_app_stacktrace"


@pytest.mark.parametrize(
    "raw, level",
    [
        ("warn", "warning"),
        ("WARNING", "warning"),
        ("critical", "fatal"),
        ("fatal", "fatal"),
        ("log", "info"),
        ("trace", "debug"),
        (30, "warning"),
        (50, "fatal"),
        (10, "debug"),
        ("nonsense", "error"),
        (None, "error"),
    ],
)
def test_levels(raw, level):
    assert convert({"message": "m", "level": raw})["level"] == level


def test_tags_dict_and_pairs_and_bounds():
    assert convert({"message": "m", "tags": [["a", "1"], ["b", 2], ["bad"]]})["tags"] == {
        "a": "1",
        "b": "2",
    }
    tags = convert({"message": "m", "tags": {f"k{i}": "v" * 500 for i in range(100)}})["tags"]
    assert len(tags) == 64 and all(len(v) == 200 for v in tags.values())


def test_breadcrumbs_list_and_values_user_request_contexts_sdk_release():
    crumbs = [{"category": "http", "message": f"GET /{i}", "timestamp": NOW} for i in range(250)]
    a = convert({"message": "m", "breadcrumbs": crumbs})
    b = convert({"message": "m", "breadcrumbs": {"values": crumbs}})
    assert a["breadcrumbs"] == b["breadcrumbs"]
    assert len(a["breadcrumbs"]["values"]) == 200
    assert a["breadcrumbs"]["values"][-1]["message"] == "GET /249"  # the newest are kept
    event = convert(
        {
            "message": "m",
            "user": {"id": "u1", "ip_address": "{{auto}}"},
            "request": {
                "url": "https://x/y",
                "query_string": [["q", "1"]],
                "headers": [["A", "b"]],
            },
            "contexts": {"os": {"name": "Linux"}, "bad": "not an object"},
            "sdk": {"name": "sentry.python", "version": "2.75.0", "integrations": ["logging"]},
            "release": "shop@1.2.3",
            "environment": "production",
            "platform": "Python",
            "server_name": "web-1",
            "logger": "shop.cart",
        },
        client_ip="10.1.2.3",
    )
    assert event["user"] == {"id": "u1", "ip_address": "10.1.2.3"}
    assert event["request"]["query_string"] == {"q": "1"}
    assert event["contexts"] == {"os": {"name": "Linux"}}
    assert event["sdk"]["name"] == "sentry.python"
    assert (event["release"], event["environment"], event["platform"]) == (
        "shop@1.2.3",
        "production",
        "python",
    )


def test_fingerprint_with_default_marker_is_kept_for_the_engine():
    event = convert({"message": "m", "fingerprint": ["{{ default }}", "tenant-a"]})
    assert event["fingerprint"] == ["{{ default }}", "tenant-a"]
    plain = grouped(convert({"message": "m"}))
    custom = grouped(event)
    assert custom.grouping_variant == "custom" and custom.fingerprint != plain.fingerprint


def test_ids_timestamps_and_service():
    event = convert(
        {"event_id": "7C9AE2A0-B3E4-4B0F-9D1C-2E3F4A5B6C7D", "timestamp": "2026-01-02T03:04:05Z"}
        | {"message": "m"},
        service="my service!",
    )
    assert event["event_id"] == EID
    assert event["timestamp"] == 1767323045.0
    assert event["service"] == "my-service-"
    bad = convert({"event_id": "nope", "timestamp": "yesterday", "message": "m"}, event_id=EID)
    assert bad["event_id"] == EID and bad["timestamp"] == NOW


def test_values_are_cut_to_the_schema_bounds():
    frames = [{"function": f"f{i}", "module": "m" * 2000, "lineno": "12"} for i in range(600)]
    exc = {"type": "T" * 1000, "value": "v" * 70000, "stacktrace": {"frames": frames}}
    event = convert({"exception": [exc] * 40, "release": "r" * 300, "fingerprint": ["x"] * 20})
    values = event["exception"]["values"]
    assert len(values) == 32 and len(values[0]["stacktrace"]["frames"]) == 512
    assert values[0]["stacktrace"]["frames"][-1]["function"] == "f599"  # the innermost kept
    assert values[0]["stacktrace"]["frames"][0]["lineno"] == 12
    assert len(event["release"]) == 200 and len(event["fingerprint"]) == 16


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"extra": {"a": 1}},
        {"message": "   "},
        {"exception": {"values": [{}]}},
        {"exception": [{"stacktrace": {"frames": [{"lineno": 3}]}}]},
        {"threads": {"values": [{"id": 1}]}},
        {"logentry": {"params": [1]}},
    ],
)
def test_events_with_nothing_to_group_on_never_share_a_fingerprint(payload):
    a, b = convert(dict(payload)), convert(dict(payload))
    assert a["message"] == NO_GROUPING_INFO
    ra, rb = grouped(a), grouped(b)
    assert ra.fingerprint != rb.fingerprint
    assert ra.grouping_variant == "custom"
    # and never with an event of the same service that has a real message
    assert ra.fingerprint != grouped(convert({"message": NO_GROUPING_INFO + " x"})).fingerprint


def test_nothing_to_group_on_with_default_marker_and_with_a_client_fingerprint():
    a = convert({"fingerprint": ["{{ default }}", "x"]})
    b = convert({"fingerprint": ["{{ default }}", "x"]})
    assert grouped(a).fingerprint != grouped(b).fingerprint
    # the client named the issue: that is kept (same fingerprint on purpose)
    c, d = convert({"fingerprint": ["my-issue"]}), convert({"fingerprint": ["my-issue"]})
    assert grouped(c).fingerprint == grouped(d).fingerprint


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
KEYS = st.sampled_from(
    ["exception", "message", "logentry", "threads", "stacktrace", "tags", "user", "request",
     "breadcrumbs", "level", "fingerprint", "timestamp", "event_id", "sdk", "contexts",
     "template", "platform", "sentry.interfaces.Exception", "release", "extra"]
)  # fmt: skip


@given(st.dictionaries(KEYS, JSON, max_size=8))
@settings(max_examples=300, deadline=None)
def test_any_payload_converts_to_a_valid_event(payload):
    event = convert(payload)  # convert() asserts schema validity
    grouped(event)
