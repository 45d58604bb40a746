"""A fixed mix of events of every shape the tests know (SDK-shaped payloads with their knobs,
the per-platform samples, log messages and odd ones), for comparing whole versions."""

from __future__ import annotations

from typing import Any

from . import samples
from . import sdk_payloads as sdk


def events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        sdk.java_event(),
        sdk.java_event(service_class="com.acme.orders.OrderService$$EnhancerByCGLIB$$1a2b_2"),
        sdk.java_event(service_class="com.acme.orders.OrderService_$$_jvst3d9_1a"),
        sdk.java_event(service_class="orders.core$fn__1234", context="x"),
        sdk.java_event(sentry_frames=True),
        sdk.browser_event(),
        sdk.browser_event(function="Object.<anonymous>", context="a();", sourcemap=True),
        sdk.browser_event(module="shop/cart"),
        sdk.node_event(),
        sdk.node_event(ticks_in_app=True),
        sdk.cocoa_event(),
        sdk.cocoa_event(app_in_app=False),
        sdk.native_event(),
        sdk.native_event(function="void shop::Server::handle(int) const"),
        sdk.dart_event(),
        sdk.dart_event(sdk_in_app=True),
        sdk.ruby_event(),
        sdk.php_event(),
        sdk.php_event(closure="{closure:/var/www/routes/web.php:15}"),
        sdk.python_event(),
        samples.python_event(),
        samples.python_event(venv="/opt/venvs/shop-3", root="/app", order_id=99887766),
        samples.js_event(),
        samples.node_event(),
        samples.java_event(),
        samples.java_event(cglib="1b2c3d4e", proxy=7, lambda_no=3),
        samples.go_event(),
        samples.go_event(closure=3, gopath="/root/go"),
        samples.log_event("Payment 12 failed for bob@shop.com at 2024-05-01T10:00:00Z"),
        samples.log_event("tx0123456789abcdef01234-0a1b2c3d4e failed with a1b2"),
        samples.log_event("12345"),
        samples.log_event(""),
        {"service": "s", "exception": [{"type": "ValueError", "value": "bad id 7f3a"}]},
        {"service": "s", "exception": [{"value": "42"}]},
        {"service": "s", "event_id": "ab" * 16, "message": ""},
        {"service": "s", "fingerprint": ["{{ default }}", "{{ tags.x }}"], "tags": {"x": "é"}},
    ]
    return out
