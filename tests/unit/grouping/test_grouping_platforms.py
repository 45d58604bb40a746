"""Grouping v2's platform rules (Sentry's default grouping), on events shaped like each SDK's.

Each rule is checked both ways where it can be: what varies between occurrences of one bug
does not split it, and what tells two bugs apart still does.
"""

from __future__ import annotations

import copy

import pytest

from pipeline.grouping import GroupingConfig, group_event

from . import sdk_payloads as sdk

V2 = GroupingConfig(version="v2")
V1 = GroupingConfig(version="v1")


def result(event, config=V2):
    return group_event(event, config)


def fp(event, config=V2):
    return group_event(event, config).fingerprint


def frames(event):
    return event["exception"]["values"][0]["stacktrace"]["frames"]


# --- Java / Kotlin ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        # CGLIB, Spring's CGLIB (5.x and 6.x), Guice
        ("OrderService$$EnhancerByCGLIB$$1a2b3c4d", "OrderService$$EnhancerByCGLIB$$77aa88bb_2"),
        ("OrderService$$EnhancerBySpringCGLIB$$1a2b", "OrderService$$EnhancerBySpringCGLIB$$9f"),
        ("OrderService$$SpringCGLIB$$0", "OrderService$$SpringCGLIB$$1"),
        (
            "OrderService$$FastClassBySpringCGLIB$$5e6f",
            "OrderService$$FastClassBySpringCGLIB$$7a8b",
        ),
        ("OrderService$EnhancerByGuice$ae46b1bf", "OrderService$EnhancerByGuice$caceacd2"),
        # javassist (Hibernate < 5, Weld): ProxyFactory names and the older forms
        ("OrderService_$$_jvst3d9_1a", "OrderService_$$_jvst7e2_4"),
        ("OrderService_$$_javassist_74", "OrderService_$$_javassist_seam_12"),
        # Hibernate proxies (ByteBuddy)
        ("OrderService$HibernateProxy$oRWxjAWT", "OrderService$HibernateProxy$En8hKwh8"),
        # lambdas: JDK 8 (decimal), 17 (0x...), 21 (no counter)
        ("OrderService$$Lambda$123/0x0000000800c03000", "OrderService$$Lambda/0x00007f3a2c1b4d58"),
        ("OrderService$$Lambda$1/1234567", "OrderService$$Lambda$88/7654321"),
        # Clojure: anonymous functions and eval classes are numbered
        ("orders.core$fn__1234", "orders.core$fn__5678"),
        ("orders.core$eval123", "orders.core$eval456"),
    ],
)
def test_java_generated_class_names_do_not_split(one, other):
    a = sdk.java_event(service_class=f"com.acme.orders.{one}")
    b = sdk.java_event(service_class=f"com.acme.orders.{other}")
    assert fp(a) == fp(b)
    # ... but a different class is a different bug
    assert fp(a) != fp(sdk.java_event(service_class=f"com.acme.billing.{one}"))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("sun.reflect.GeneratedMethodAccessor123", "sun.reflect.GeneratedMethodAccessor456"),
        ("sun.reflect.GeneratedConstructorAccessor12", "sun.reflect.GeneratedConstructorAccessor7"),
        (
            "sun.reflect.GeneratedSerializationConstructorAccessor31",
            "sun.reflect.GeneratedSerializationConstructorAccessor2",
        ),
        (
            "jdk.internal.reflect.GeneratedMethodAccessor5",
            "jdk.internal.reflect.GeneratedMethodAccessor99",
        ),
        ("jdk.proxy3.$Proxy12", "jdk.proxy2.$Proxy140"),
    ],
)
def test_java_reflection_accessors_and_proxies_do_not_split(one, other):
    # what the stack looks like when nothing in-app is on it: they are part of the hash
    def event(accessor):
        e = sdk.java_event()
        for frame in frames(e):
            frame["in_app"] = False
        frames(e).append({"module": accessor, "function": "invoke", "in_app": False})
        return e

    assert result(event(one)).grouping_variant == "stacktrace"
    assert fp(event(one)) == fp(event(other))
    assert fp(event(one)) != fp(event("com.acme.Other"))


def test_java_context_lines_do_not_count_but_functions_do():
    assert fp(sdk.java_event(context="a();")) == fp(sdk.java_event(context="b();"))
    assert fp(sdk.java_event(function="place")) != fp(sdk.java_event(function="cancel"))
    # v1 used them: this is one of v2's changes
    assert fp(sdk.java_event(context="a();"), V1) != fp(sdk.java_event(context="b();"), V1)


def test_java_sdk_and_framework_frames():
    # io.sentry frames never group; org.springframework frames are not in-app even when marked
    assert fp(sdk.java_event(sentry_frames=True)) == fp(sdk.java_event())
    event = sdk.java_event()
    frames(event)[1]["in_app"] = True
    assert fp(event) == fp(sdk.java_event())
    assert result(event).culprit == "com.acme.orders.OrderService in place"


# --- JavaScript / Node ----------------------------------------------------------------------


def test_browser_url_frames_ignore_origin_and_bundle_hash():
    a = sdk.browser_event(origin="https://cdn.shop.example.com", bundle="3f2a9c1b")
    b = sdk.browser_event(origin="https://d111.cloudfront.net", bundle="9d8e7f60")
    assert fp(a) == fp(b)
    assert fp(a) != fp(sdk.browser_event(function="Cart.remove"))


def test_browser_url_frames_use_the_module_when_given():
    # the file name of a URL frame is ignored in favour of its module (Sentry)
    a = sdk.browser_event(origin="https://a.example.com", module="shop/cart")
    b = sdk.browser_event(origin="https://b.example.com", bundle="c0ffee42", module="shop/cart")
    assert fp(a) == fp(b)
    assert fp(a) != fp(sdk.browser_event(module="shop/orders"))


def test_page_and_blob_urls_do_not_split():
    def inline(url):
        extra = [{"filename": url, "abs_path": url, "function": "submitOrder", "in_app": True}]
        return sdk.browser_event(extra_frames=extra)

    pages = [
        "https://shop.example.com/orders/12345?tab=items",
        "https://shop.example.com/orders/67890",
        "https://shop.example.com/",
        "blob:https://shop.example.com/7f7aaadf-a006-4217-9ed5-5fbf8585c6c0",
        "blob:https://shop.example.com/88ee7c66-29a9-4a4a-bc26-c72d76c5de14",
    ]
    assert len({fp(inline(url)) for url in pages}) == 1
    assert fp(inline(pages[0])) != fp(inline("https://shop.example.com/static/js/other.js"))


def test_javascript_function_names_are_trimmed_and_anonymous_ones_ignored():
    # Chrome says "Cart.checkout", Firefox "checkout"; anonymous functions have many spellings
    assert fp(sdk.browser_event(function="Cart.checkout")) == fp(
        sdk.browser_event(function="checkout")
    )
    spellings = ["?", "<anonymous>", "Object.<anonymous>", "Anonymous function", "x/<", ""]
    assert len({fp(sdk.browser_event(function=name)) for name in spellings}) == 1
    assert fp(sdk.browser_event(function="?")) != fp(sdk.browser_event(function="checkout"))


def test_javascript_prefers_the_context_line_when_a_source_map_gave_it():
    line = "const id = cart.items[0].id;"
    mapped = [
        sdk.browser_event(function=name, context=line, sourcemap=True) for name in ("a", "tk", "e")
    ]
    assert len({fp(event) for event in mapped}) == 1
    assert fp(mapped[0]) != fp(sdk.browser_event(function="a", context="other();", sourcemap=True))
    # without a source map the (minified) function names still count
    assert fp(sdk.browser_event(function="a", context=line)) != fp(
        sdk.browser_event(function="tk", context=line)
    )
    # a minified line (over 120 characters) never counts
    long_line = "var a=" + "x" * 200
    assert fp(sdk.browser_event(context=long_line)) == fp(sdk.browser_event())


def test_javascript_low_quality_frames_are_left_out():
    noise = [
        {"filename": "[native code]", "abs_path": "[native code]", "function": "forEach", "in_app": True},
        {"filename": "https://x/y.js", "abs_path": "https://x/y.js", "function": "eval", "in_app": True},
    ]  # fmt: skip
    assert fp(sdk.browser_event(extra_frames=noise)) == fp(sdk.browser_event())


def test_a_lone_anonymous_url_frame_does_not_group():
    url = "https://cdn.example.com/app.js"
    event = sdk.browser_event()
    event["exception"]["values"][0]["stacktrace"]["frames"] = [
        {"filename": url, "abs_path": url, "lineno": 1, "colno": 5, "in_app": True}
    ]
    grouped = result(event)
    assert grouped.grouping_variant == "exception_message"


def test_node_task_queue_frames_never_group():
    assert fp(sdk.node_event(ticks_in_app=True)) == fp(sdk.node_event())
    assert fp(sdk.node_event(root="/app")) == fp(sdk.node_event(root="/home/ci/build/app"))
    assert fp(sdk.node_event(function="loadUser")) != fp(sdk.node_event(function="saveUser"))


def test_node_modules_are_not_in_app_even_when_marked():
    event = sdk.node_event()
    frames(event).append(
        {"filename": "/srv/app/node_modules/pg/lib/client.js", "function": "query", "in_app": True}
    )
    assert fp(event) == fp(sdk.node_event())


# --- Cocoa / native ----------------------------------------------------------------------


def test_cocoa_addresses_and_install_paths_do_not_split():
    a = sdk.cocoa_event()
    b = sdk.cocoa_event(bundle_id="0F0F0F0F-1111-2222-3333-444455556666", slide=0x4000)
    assert fp(a) == fp(b)
    assert fp(a) != fp(sdk.cocoa_event(app_function="-[CheckoutViewController cancel:]"))


def test_cocoa_in_app_by_package_path():
    # frames of the app bundle are in-app whatever the SDK said (Sentry's +app rule) ...
    grouped = result(sdk.cocoa_event(app_in_app=False))
    assert grouped.grouping_variant == "in_app_stacktrace"
    assert grouped.culprit == "-[CheckoutViewController pay:]"
    # ... except Sentry's own framework inside it, whose frames do not group either
    sentry = {
        "package": "/private/var/containers/Bundle/Application/X/Shop.app/Frameworks/Sentry.framework/Sentry",
        "function": "-[SentryCrashIntegration capture]", "instruction_addr": "0x1", "in_app": True,
    }  # fmt: skip
    assert fp(sdk.cocoa_event(extra=[sentry])) == fp(sdk.cocoa_event())


def test_cocoa_frames_past_the_throw_do_not_group():
    # objc_exception_throw: what it called (exception preprocessing) is noise
    event = sdk.cocoa_event()
    frames(event)[-1]["function"] = "__exceptionPreprocessOther"
    frames(event)[-1]["in_app"] = True
    assert fp(event) == fp(sdk.cocoa_event())


def test_native_function_signatures_are_trimmed():
    variants = [
        "void shop::Server::handle(shop::Request const&)",
        "shop::Server::handle(shop::Request const&) const",
        "shop::Server::handle",
    ]
    assert len({fp(sdk.native_event(function=name)) for name in variants}) == 1
    assert fp(sdk.native_event(function="shop::Server::close()")) != fp(
        sdk.native_event(function="shop::Server::handle")
    )


def test_native_unsymbolicated_frames_group_by_package_not_address():
    a = sdk.native_event(slide=0)
    b = sdk.native_event(app="/home/deploy/shop-2.4.1/bin/server", slide=0x9000)
    assert "frame:server|<anonymous>|" in result(a).components
    assert fp(a) == fp(b)
    assert fp(a) != fp(sdk.native_event(app="/opt/shop/bin/worker"))
    for name in ("<redacted>", "<unknown>", "0x55d0a123"):
        assert fp(sdk.native_event(function=name)) == fp(a)


def test_native_frames_past_cxa_throw_do_not_group():
    event = sdk.native_event()
    frames(event)[-1]["function"] = "_Unwind_Something_Else"
    assert fp(event) == fp(sdk.native_event())
    assert not any("Unwind" in c for c in result(event).components)


# --- Dart / Flutter ------------------------------------------------------------------------


def test_dart_sdk_flutter_and_sentry_frames_are_not_in_app():
    grouped = result(sdk.dart_event(sdk_in_app=True))
    assert grouped.components == ("type:StateError", "frame:page.dart|_CheckoutPageState._pay|")
    assert fp(sdk.dart_event(sdk_in_app=True)) == fp(sdk.dart_event())
    assert fp(sdk.dart_event(function="_CheckoutPageState._pay")) != fp(
        sdk.dart_event(function="_CheckoutPageState._retry")
    )


def test_dart_context_lines_do_not_count():
    assert fp(sdk.dart_event(context="a();")) == fp(sdk.dart_event(context="b();"))


# --- Ruby --------------------------------------------------------------------------------


def test_ruby_erb_template_methods_and_blocks_do_not_split():
    a = sdk.ruby_event()
    b = sdk.ruby_event(template_numbers="_4011829447029410436_47311396473320")
    c = sdk.ruby_event(template_numbers="123_456")
    assert fp(a) == fp(b) == fp(c)
    assert fp(sdk.ruby_event(block="block (2 levels) in show")) == fp(a)
    assert fp(sdk.ruby_event(root="/home/deploy/current")) == fp(a)
    other = sdk.ruby_event()
    frames(other)[1]["function"] = "_app_views_users_edit_html_erb___27876453_70099011"
    assert fp(other) != fp(a)


# --- PHP ---------------------------------------------------------------------------------


def test_php_closures_and_anonymous_classes_do_not_split():
    a = sdk.php_event(closure="{closure:/var/www/routes/web.php:15}")
    b = sdk.php_event(closure="{closure:/var/www/routes/web.php:17}")
    assert fp(a) == fp(b) == fp(sdk.php_event(closure="{closure}"))
    c = sdk.php_event(anonymous="class@anonymous\x00/var/www/app/Jobs.php:12$1f::handle")
    assert fp(c) == fp(sdk.php_event())
    assert fp(sdk.php_event(closure="App\\Http\\Kernel::handle")) != fp(a)


# --- Python ------------------------------------------------------------------------------


def test_python_groups_as_in_v1():
    # module + function + context line, library frames out: v2 changes nothing, same hash
    for event in (sdk.python_event(), sdk.python_event(venv="/opt/venv")):
        assert fp(event) == fp(event, V1)
    assert fp(sdk.python_event(context="a()")) != fp(sdk.python_event(context="b()"))


# --- nothing to group on -----------------------------------------------------------------


def _bare(**fields):
    return {"service": "app", "timestamp": "2024-05-01T10:00:00Z", **fields}


def test_events_with_nothing_to_group_on_are_issues_of_their_own():
    a = _bare(event_id="a" * 32, message="")
    b = _bare(event_id="b" * 32, message="   ")
    assert result(a).grouping_variant == "event_id"
    assert fp(a) != fp(b)
    assert fp(a) == fp(copy.deepcopy(a))  # stable: the same event, the same fingerprint
    # v1 merged them into one issue
    assert fp(a, V1) == fp(b, V1)


def test_events_without_an_id_fall_back_to_their_payload():
    a, b = _bare(message="", release="1.0"), _bare(message="", release="1.1")
    assert result(a).grouping_variant == "payload"
    assert fp(a) != fp(b)
    assert fp(a) == fp(_bare(release="1.0", message=""))


def test_a_message_of_only_placeholders_is_taken_as_it_is():
    a, b = _bare(message="12345"), _bare(message="2024-05-01T10:00:00Z 42")
    assert result(a).grouping_variant == "raw_message"
    assert fp(a) != fp(b)
    assert fp(a) == fp(_bare(message="12345", event_id="c" * 32))
    # a message with words is parameterized as usual
    assert result(_bare(message="retry 1 failed")).grouping_variant == "message"
    assert fp(_bare(message="retry 1 failed")) == fp(_bare(message="retry 2 failed"))


def test_an_untyped_exception_of_only_placeholders_is_taken_as_it_is():
    def untyped(value):
        return _bare(exception={"values": [{"value": value}]})

    assert result(untyped("42")).grouping_variant == "raw_message"
    assert fp(untyped("42")) != fp(untyped("43"))
    # a type is something to group on
    typed = [_bare(exception={"values": [{"type": "Timeout", "value": v}]}) for v in ("1", "2")]
    assert fp(typed[0]) == fp(typed[1])
    assert result(typed[0]).grouping_variant == "exception_message"


def test_frames_that_all_never_group_fall_back_to_the_exception():
    event = sdk.node_event()
    del frames(event)[1]  # only processTicksAndRejections left: it never groups
    assert result(event).grouping_variant == "exception_message"


def test_the_type_of_a_synthetic_exception_does_not_count():
    # sentry-javascript on `throw {code: 1}`: an exception made up to carry the stack trace
    def thrown(exc_type, synthetic):
        event = sdk.browser_event()
        exc = event["exception"]["values"][0]
        exc["type"] = exc_type
        exc["mechanism"] = {
            "type": "onunhandledrejection",
            "handled": False,
            "synthetic": synthetic,
        }
        return event

    assert fp(thrown("Error", True)) == fp(thrown("UnhandledRejection", True))
    assert fp(thrown("Error", False)) != fp(thrown("UnhandledRejection", False))
    assert result(thrown("Error", True)).title.startswith("Error: ")  # still shown


def test_cocoa_nserrors_without_a_stack_group_by_domain_and_code():
    # sentry-cocoa's SentrySDK.capture(error:): the code is what tells errors apart
    def nserror(code, value="The operation couldn't be completed."):
        meta = {"ns_error": {"domain": "NSURLErrorDomain", "code": code}}
        exc = {"type": "NSURLErrorDomain", "value": value,
               "mechanism": {"type": "NSError", "meta": meta}}  # fmt: skip
        return {"service": "ios", "platform": "cocoa", "exception": {"values": [exc]}}

    assert fp(nserror(-1009)) == fp(nserror(-1009, value="Code=-1009 (offline)"))
    assert fp(nserror(-1009)) != fp(nserror(-1001))
    # v1 grouped by the message, so the two codes merged
    assert fp(nserror(-1009), V1) == fp(nserror(-1001), V1)


def test_the_sdk_shaped_payloads_are_valid_schema_v1_events():
    import orjson

    from pipeline.stages.decode import DecodedEvent, Invalid, decode_event

    payloads = [
        sdk.java_event(), sdk.browser_event(context="x", sourcemap=True, module="m"),
        sdk.node_event(), sdk.cocoa_event(), sdk.native_event(function="f"), sdk.dart_event(),
        sdk.ruby_event(), sdk.php_event(), sdk.python_event(),
    ]  # fmt: skip
    for payload in payloads:
        decoded = decode_event(orjson.dumps(payload))
        assert isinstance(decoded, DecodedEvent), decoded
    # (the check is live: a payload the schema refuses is not decoded)
    assert isinstance(decode_event(orjson.dumps({**payloads[0], "level": "loud"})), Invalid)
