"""Same bug -> same fingerprint, different bug -> different fingerprint, per platform."""

import copy

import pytest

from pipeline.grouping import GroupingConfig, group_event

from .samples import go_event, java_event, js_event, log_event, node_event, python_event, with_


def fp(event, config=None):
    return group_event(event, config or GroupingConfig()).fingerprint


# --- Python -----------------------------------------------------------------------------


def test_python_same_bug_across_deploys_groups_together():
    base = python_event()
    variants = [
        python_event(venv="/opt/venvs/shop-3", root="/app"),
        python_event(line_offset=17),
        python_event(order_id=99887766, host="10.9.8.7"),
        python_event(venv="C:/Users/ci/venv", root="/home/deploy/releases/20240501"),
    ]
    assert {fp(v) for v in variants} == {fp(base)}


def test_python_result_fields():
    result = group_event(python_event(), GroupingConfig())
    assert result.grouping_variant == "in_app_stacktrace"
    assert len(result.fingerprint) == 32 and int(result.fingerprint, 16) >= 0
    assert result.culprit == "shop.payments.gateway in charge"
    assert result.title == (
        "ConnectionError: HTTPSConnectionPool(host=<quoted_str>, port=<int>): "
        "Max retries exceeded with url: /v1/charges/<int>"
    )
    assert result.category == "network"
    assert "frame:shop.payments.gateway|charge|resp = self.session.post(url, json=payload)" in (
        result.components
    )
    assert not any("requests" in c for c in result.components)  # only in-app frames


def test_python_different_function_or_type_is_a_different_bug():
    assert fp(python_event(function="refund")) != fp(python_event())
    assert fp(python_event(exc_type="Timeout")) != fp(python_event())


def test_python_changed_context_line_is_a_different_bug():
    event = python_event()
    event["exception"]["values"][0]["stacktrace"]["frames"][1]["context_line"] = "raise X()"
    assert fp(event) != fp(python_event())


def test_chained_exceptions_use_every_link_with_in_app_frames():
    cause = copy.deepcopy(python_event()["exception"]["values"][0])
    outer = {
        "type": "PaymentFailed",
        "value": "charge failed",
        "stacktrace": {
            "frames": [{"module": "shop.api.views", "function": "create_payment", "in_app": True}]
        },
    }
    chained = with_(python_event(), exception={"values": [cause, outer]})
    result = group_event(chained, GroupingConfig())
    assert result.title == "PaymentFailed: charge failed"
    assert result.culprit == "shop.api.views in create_payment"
    assert "type:ConnectionError" in result.components and "type:PaymentFailed" in result.components
    assert result.fingerprint != fp(python_event())


def test_recursion_collapses_and_frames_are_capped():
    frame = {"module": "app.tree", "function": "walk", "in_app": True, "context_line": "walk(n)"}
    shallow = {
        "service": "s",
        "exception": [{"type": "RecursionError", "stacktrace": {"frames": [frame] * 3}}],
    }
    deep = {
        "service": "s",
        "exception": [{"type": "RecursionError", "stacktrace": {"frames": [frame] * 900}}],
    }
    assert fp(shallow) == fp(deep)
    distinct = [dict(frame, function=f"f{i}") for i in range(100)]
    capped = {"service": "s", "exception": [{"type": "E", "stacktrace": {"frames": distinct}}]}
    result = group_event(capped, GroupingConfig(max_frames=30))
    frames = [c for c in result.components if c.startswith("frame:")]
    assert len(frames) == 30 and frames[-1].startswith("frame:app.tree|f99|")


def test_no_in_app_frames_uses_all_frames():
    event = python_event()
    for frame in event["exception"]["values"][0]["stacktrace"]["frames"]:
        frame["in_app"] = False
    result = group_event(event, GroupingConfig())
    assert result.grouping_variant == "stacktrace"
    assert any("requests.adapters|send" in c for c in result.components)


def test_in_app_overrides():
    event = python_event()
    for frame in event["exception"]["values"][0]["stacktrace"]["frames"]:
        frame.pop("in_app")
    config = GroupingConfig(in_app_include=("requests.",), in_app_exclude=("shop.",))
    result = group_event(event, config)
    assert result.culprit == "requests.adapters in send"
    assert all("shop." not in c for c in result.components)


# --- JavaScript / node --------------------------------------------------------------------


def test_js_new_bundle_hash_and_columns_group_together():
    assert fp(js_event(bundle_hash="9c8d7e6f", col=1200, line=3, user="7")) == fp(js_event())
    result = group_event(js_event(), GroupingConfig())
    assert result.culprit == "static/js/main.js in computeTotals"
    assert result.category == "business_logic"


def test_js_different_function_differs():
    event = js_event()
    event["exception"]["values"][0]["stacktrace"]["frames"][2]["function"] = "applyCoupon"
    assert fp(event) != fp(js_event())


def test_node_app_location_does_not_matter():
    assert fp(node_event(app_root="/srv/gw", line=99)) == fp(node_event())
    result = group_event(node_event(), GroupingConfig())
    assert result.title == "Error: connect ECONNREFUSED <ip>"
    assert result.culprit == "cache/session.js in loadSession"
    assert result.category == "network"


# --- Java / Go ----------------------------------------------------------------------------


def test_java_generated_classes_and_lambda_numbers_do_not_split():
    assert fp(java_event(cglib="ffee0011", proxy=345, lambda_no=3)) == fp(java_event())
    result = group_event(java_event(), GroupingConfig())
    assert result.culprit == "com.acme.orders.Notifier in notify"
    assert result.category == "business_logic"


def test_go_closure_numbers_and_module_cache_do_not_split():
    assert fp(go_event(closure=3, gopath="/root/go", line=80)) == fp(go_event())
    result = group_event(go_event(), GroupingConfig())
    assert result.culprit == "github.com/acme/ingest/internal/store in (*Store).Open.func"
    assert result.category == "network"


def test_platforms_do_not_collide():
    prints = [fp(e) for e in (python_event(), js_event(), node_event(), java_event(), go_event())]
    assert len(set(prints)) == 5


# --- exceptions without frames, log messages ----------------------------------------------


def test_exception_without_frames_groups_on_type_and_normalized_value():
    def exc(value, exc_type="ValueError"):
        return {"service": "s", "exception": {"values": [{"type": exc_type, "value": value}]}}

    first = group_event(exc("invalid literal for int() with base 10: '12ab'"), GroupingConfig())
    assert first.grouping_variant == "exception_message"
    assert fp(exc("User 12 not found")) == fp(exc("User 9981 not found"))
    assert fp(exc("User 12 not found")) != fp(exc("User 12 not found", "KeyError"))
    assert fp(exc("User 12 not found")) != fp(exc("Order 12 not found"))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Payment 8812 failed for bob@shop.com", "Payment 17 failed for eve@corp.org"),
        ("Job 3f2a-ignored took 1532ms", "Job 3f2a-ignored took 12ms"),
        ("cache miss for key user:8821:profile", "cache miss for key user:17:profile"),
        (
            "Worker pid=4412 exited at 2024-05-01T10:00:00Z",
            "Worker pid=18 exited at 2024-06-11T22:10:07Z",
        ),
        ("upstream 10.0.0.1:8080 returned 503", "upstream 10.0.0.9:9090 returned 503"),
        (
            "request a1b2c3d4-0000-4000-8000-000000000001 slow",
            "request ffffffff-1111-4111-9111-111111111111 slow",
        ),
    ],
)
def test_log_messages_with_variable_parts_group_together(first, second):
    assert fp(log_event(first)) == fp(log_event(second))
    assert group_event(log_event(first), GroupingConfig()).grouping_variant == "message"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("upstream returned 503", "upstream returned 404"),
        ("status 500 from billing", "status 502 from billing"),
        ("Payment failed", "Refund failed"),
    ],
)
def test_different_log_messages_differ(first, second):
    assert fp(log_event(first)) != fp(log_event(second))


# --- odd but schema-valid input ----------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"service": "s"},
        {"service": "s", "exception": None, "message": None, "tags": None, "fingerprint": None},
        {"service": "s", "exception": {"values": []}},
        {"service": "s", "exception": {"values": [None, {}]}},
        {"service": "s", "exception": {"values": [{"type": "E", "stacktrace": {"frames": []}}]}},
        {
            "service": "s",
            "exception": {"values": [{"stacktrace": {"frames": [None, {}, {"lineno": 3}]}}]},
        },
        {
            "service": "s",
            "exception": {"values": [{"type": None, "value": 12, "stacktrace": None}]},
        },
        {
            "service": "s",
            "message": {"formatted": None, "message": "x %s"},
            "tags": [["a", "b"], "bad"],
        },
        {"service": "s", "level": None, "platform": 5, "fingerprint": [None, 3, "x"]},
        {"service": "s", "message": "\n\n  \n"},
    ],
)
def test_odd_events_never_raise(event):
    result = group_event(event, GroupingConfig())
    assert len(result.fingerprint) == 32
    assert result.title and result.category


# --- in-app frames are read without building the others --------------------------------


@pytest.mark.parametrize("in_app", [True, False, None, 0, 1, "yes"])
@pytest.mark.parametrize(
    "overrides",
    [((), ()), (("requests.",), ()), ((), ("shop.",)), (("shop.",), ("requests.",))],
)
@pytest.mark.parametrize("make", [python_event, java_event, go_event, js_event, node_event])
def test_app_frames_are_the_in_app_frames(make, in_app, overrides):
    from pipeline.grouping.event import view_event

    event = make()
    exceptions = event["exception"]
    exceptions = exceptions["values"] if isinstance(exceptions, dict) else exceptions
    for index, frame in enumerate(exceptions[0]["stacktrace"]["frames"]):
        if index % 2:
            frame["in_app"] = in_app
    first, second = view_event(event, overrides), view_event(event, overrides)
    for lazy, full in zip(first.exceptions, second.exceptions, strict=True):
        expected = tuple(f for f in full.frames if f.in_app)
        assert lazy.app_frames == expected  # built before (and without) .frames
        assert lazy.frames == full.frames
        assert full.app_frames == expected


def test_fast_constructors_build_what_the_dataclass_constructors_build():
    import dataclasses

    from pipeline.grouping.config import GroupingResult, new_result
    from pipeline.grouping.event import EventView, view_event

    args = ("f" * 32, "message", "title", "culprit", "network", ("s",), ("c",), "v1", "rule")
    fast, slow = new_result(*args), GroupingResult(*args)
    assert fast == slow and repr(fast) == repr(slow) and hash(fast) == hash(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.title = "x"  # type: ignore[misc]
    view = view_event(python_event())
    values = {f.name: getattr(view, f.name) for f in dataclasses.fields(EventView)}
    assert EventView(**values) == view
    assert repr(EventView(**values)) == repr(view)


def test_frame_views_are_remembered_per_type_of_in_app():
    # 0 == False and 1 == True: frames that differ only so must not share a remembered view
    # (a bool in_app is taken as it is, anything else is guessed from the path and module)
    from pipeline.grouping.engine import clear_caches
    from pipeline.grouping.event import view_event

    def views(in_app, overrides=((), ())):
        frame = {"module": "lib.x", "abs_path": "/srv/shop/x.py", "function": "f", "in_app": in_app}
        event = {"platform": "python", "exception": [{"type": "E", "stacktrace": [frame]}]}
        exception = view_event(event, overrides).exceptions[0]
        return exception.frames, exception.app_frames

    values = (False, 0, 0.0, True, 1, 1.0, None, "yes")
    fresh = {}
    for in_app in values:
        clear_caches()
        fresh[repr(in_app)] = views(in_app)
    assert fresh["False"][0][0].in_app is False and fresh["0"][0][0].in_app is True
    for order in (values, values[::-1]):
        clear_caches()
        for in_app in order:
            assert views(in_app) == fresh[repr(in_app)], in_app
