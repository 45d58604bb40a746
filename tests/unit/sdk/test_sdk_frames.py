from __future__ import annotations

import json
import os
import sys

import errorstream_sdk
from errorstream_sdk.capture import extract_chain
from errorstream_sdk.frames import InAppRules, relative_filename


def level3() -> None:
    raise ValueError("innermost")


def level2() -> None:
    level3()


def level1() -> None:
    level2()


def _caught(fn):  # type: ignore[no-untyped-def]
    try:
        fn()
    except BaseException as e:  # noqa: BLE001
        return e
    raise AssertionError("no exception")


def test_frames_oldest_call_first_innermost_last(sdk, sent_events):
    exc = _caught(level1)
    errorstream_sdk.capture_exception(exc)
    [event] = sent_events(sdk)
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert [f["function"] for f in frames] == ["_caught", "level1", "level2", "level3"]
    inner = frames[-1]
    assert inner["module"] == __name__
    assert inner["filename"] == "tests/unit/sdk/test_sdk_frames.py"  # module tests.unit.sdk...
    assert inner["abs_path"] == os.path.abspath(__file__)
    assert inner["lineno"] == level3.__code__.co_firstlineno + 1
    assert inner["context_line"] == '    raise ValueError("innermost")'
    assert inner["pre_context"][-1] == "def level3() -> None:"
    assert inner["colno"] == 5
    assert inner["in_app"] is True
    assert "vars" not in inner


def test_chain_order_cause_first_raised_last(sdk, sent_events):
    def raise_chain() -> None:
        try:
            try:
                raise KeyError("root")
            except KeyError as e:
                raise OSError("middle") from e
        except OSError:
            raise RuntimeError("top")  # noqa: B904 - implicit __context__ on purpose

    errorstream_sdk.capture_exception(_caught(raise_chain))
    [event] = sent_events(sdk)
    values = event["exception"]["values"]
    assert [(v["type"], v["value"]) for v in values] == [
        ("KeyError", "'root'"),
        ("OSError", "middle"),
        ("RuntimeError", "top"),
    ]
    assert all(v["mechanism"] == {"type": "generic", "handled": True} for v in values)


def test_suppress_context_is_honoured():
    def raise_from_none() -> None:
        try:
            raise KeyError("hidden")
        except KeyError:
            raise ValueError("shown") from None

    chain = extract_chain(_caught(raise_from_none))
    assert [e.type for e in chain] == ["ValueError"]


def test_cyclic_chain_terminates():
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert [e.value for e in extract_chain(a)] == ["b", "a"]


def test_include_locals_reprs_and_scrubs(make_sdk, sent_events):
    client = make_sdk(include_locals=True)

    def with_locals() -> None:
        password = "hunter2-secret"  # noqa: F841
        user_name = "bob"  # noqa: F841
        raise ValueError("x")

    errorstream_sdk.capture_exception(_caught(with_locals))
    [event] = sent_events(client)
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["vars"] == {"password": "[Filtered]", "user_name": "'bob'"}
    assert "hunter2" not in json.dumps(event)


def test_in_app_rules():
    stdlib = os.path.dirname(os.__file__)
    rules = InAppRules(include=("vendored.ours",), exclude=("myapp.generated",))
    assert rules.is_in_app("myapp.views", "/srv/myapp/views.py") is True
    assert (
        rules.is_in_app("requests.api", "/venv/lib/python3.11/site-packages/requests/api.py")
        is False
    )
    assert rules.is_in_app("yaml", "/usr/lib/python3/dist-packages/yaml/__init__.py") is False
    assert rules.is_in_app("json.decoder", os.path.join(stdlib, "json", "decoder.py")) is False
    assert rules.is_in_app("importlib._bootstrap", "<frozen importlib._bootstrap>") is False
    assert rules.is_in_app("myapp.generated.pb2", "/srv/myapp/generated/pb2.py") is False
    assert (
        rules.is_in_app("vendored.ours.x", "/venv/lib/python3.11/site-packages/vendored/ours/x.py")
        is True
    )
    # prefix match is by module path component, not by string prefix
    assert rules.is_in_app("myapp.generatedness", "/srv/myapp/generatedness.py") is True


def test_stdlib_frames_are_not_in_app(sdk, sent_events):
    errorstream_sdk.capture_exception(_caught(lambda: json.loads("{")))
    [event] = sent_events(sdk)
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[0]["in_app"] is True
    assert frames[-1]["module"].startswith("json")
    assert frames[-1]["in_app"] is False


def test_relative_filename():
    assert relative_filename("pkg.sub.mod", "/srv/app/pkg/sub/mod.py") == "pkg/sub/mod.py"
    assert relative_filename("pkg", "/srv/app/pkg/__init__.py") == "pkg/__init__.py"
    assert relative_filename("__main__", "/srv/app/run.py") == "run.py"
    assert relative_filename(None, "<string>") == "<string>"


def test_message_key_uses_innermost_in_app_frame(sdk):
    errorstream_sdk.capture_exception(_caught(lambda: json.loads("{")))
    [(key, _)] = sdk.transport.messages if sdk.transport.drain() is None else []
    assert (
        key
        == f"unit-svc:JSONDecodeError:{__name__}.test_message_key_uses_innermost_in_app_frame.<locals>.<lambda>".encode()
    )


def test_deep_recursion_is_bounded(sdk, sent_events):
    def recurse(n: int) -> None:
        recurse(n + 1)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(600)
    try:
        exc = _caught(lambda: recurse(0))
    finally:
        sys.setrecursionlimit(limit)
    errorstream_sdk.capture_exception(exc)
    [event] = sent_events(sdk)
    assert len(event["exception"]["values"][0]["stacktrace"]["frames"]) == 250


def test_frame_cache_hands_out_independent_frames():
    from errorstream_sdk.frames import build_frame

    raw = extract_chain(_caught(level1))[0].frames[-1]
    rules, cache = InAppRules(), {}
    first = build_frame(raw, rules, 5, cache, scrub_line=str.upper)
    plain = build_frame(raw, rules, 5)
    assert first["pre_context"] == [line.upper() for line in plain["pre_context"]]
    assert {k: v for k, v in first.items() if "context" not in k} == {
        k: v for k, v in plain.items() if "context" not in k
    }
    assert first["context_line"] == '    RAISE VALUEERROR("INNERMOST")'  # scrubbed once
    first.pop("pre_context")  # trimming an event must not reach the cached template
    first["vars"] = {"x": "1"}
    second = build_frame(raw, rules, 5, cache, scrub_line=str.upper)
    assert second is not first and "pre_context" in second and "vars" not in second
    assert len(cache) == 1


def test_same_raise_site_twice_gives_identical_frames(sdk, sent_events):
    for _ in range(2):
        errorstream_sdk.capture_exception(_caught(level1))
    a, b = sent_events(sdk)
    assert a["exception"] == b["exception"]
