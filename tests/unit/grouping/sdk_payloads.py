"""Schema v1 events shaped like what each Sentry SDK sends, with knobs for what varies between
occurrences of one bug (install paths, addresses, generated names, line numbers)."""

from __future__ import annotations

from typing import Any


def _event(platform: str, exc_type: str, value: str, frames: list[dict[str, Any]], **extra: Any):
    event = {
        "event_id": extra.pop("event_id", "0" * 32),
        "timestamp": "2024-05-01T10:00:00Z",
        "service": extra.pop("service", "app"),
        "platform": platform,
        "level": "error",
        "exception": {
            "values": [{"type": exc_type, "value": value, "stacktrace": {"frames": frames}}]
        },
    }
    event.update(extra)
    return event


def java_event(
    *,
    service_class: str = "com.acme.orders.OrderService",
    function: str = "place",
    context: str = "repository.save(order);",
    sentry_frames: bool = False,
) -> dict[str, Any]:
    """sentry-java: ``module`` is the class, ``filename`` the source file, in_app by package."""
    frames = [
        {"module": "java.lang.Thread", "function": "run", "filename": "Thread.java", "lineno": 840,
         "in_app": False},
        {"module": "org.springframework.web.servlet.FrameworkServlet", "function": "service",
         "filename": "FrameworkServlet.java", "lineno": 897, "in_app": False},
        {"module": "com.acme.orders.OrderController", "function": "create",
         "filename": "OrderController.java", "lineno": 41, "in_app": True},
        {"module": service_class, "function": function, "filename": "OrderService.java",
         "lineno": 88, "in_app": True, "context_line": context},
    ]  # fmt: skip
    if sentry_frames:
        frames.append({"module": "io.sentry.SentryClient", "function": "captureEvent",
                       "filename": "SentryClient.java", "lineno": 120, "in_app": True})  # fmt: skip
    return _event("java", "java.lang.IllegalStateException", "Order 42 cannot be placed", frames)


def browser_event(
    *,
    origin: str = "https://cdn.shop.example.com",
    bundle: str = "3f2a9c1b",
    function: str = "Cart.checkout",
    context: str | None = None,
    sourcemap: bool = False,
    module: str | None = None,
    extra_frames: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """sentry-javascript in a browser: URL frames (``filename`` = ``abs_path`` = the URL)."""
    url = f"{origin}/static/js/main.{bundle}.js"
    frame: dict[str, Any] = {"filename": url, "abs_path": url, "function": function,
                             "lineno": 1, "colno": 31337, "in_app": True}  # fmt: skip
    if context is not None:
        frame["context_line"] = context
    if sourcemap:
        frame["data"] = {"sourcemap": f"{url}.map"}
    if module is not None:
        frame["module"] = module
    frames = [
        {"filename": f"{origin}/static/js/vendor.{bundle}.js", "abs_path": f"{origin}/static/js/vendor.{bundle}.js",
         "function": "HTMLButtonElement.dispatch", "lineno": 2, "colno": 4100, "in_app": False},
        {"filename": url, "abs_path": url, "function": "onClick", "lineno": 1, "colno": 900,
         "in_app": True},
        *(extra_frames or []),
        frame,
    ]  # fmt: skip
    return _event(
        "javascript", "TypeError", "Cannot read properties of undefined (reading 'id')", frames
    )


def node_event(
    *, root: str = "/srv/app", function: str = "loadUser", ticks_in_app: bool = False
) -> dict[str, Any]:
    """sentry-node: path frames with ``module`` derived from the file, context lines."""
    frames = [
        {"filename": "node:internal/process/task_queues", "abs_path": "node:internal/process/task_queues",
         "module": "task_queues", "function": "processTicksAndRejections", "lineno": 95,
         "in_app": ticks_in_app},
        {"filename": f"{root}/src/handlers/users.js", "abs_path": f"{root}/src/handlers/users.js",
         "module": "src.handlers:users", "function": function, "lineno": 27, "colno": 11,
         "in_app": True, "context_line": "    const user = await db.find(id);"},
    ]  # fmt: skip
    return _event("node", "Error", "user not found", frames)


def cocoa_event(
    *,
    bundle_id: str = "6A1B2C3D-0000-4444-8888-ABCDEF012345",
    slide: int = 0,
    app_function: str = "-[CheckoutViewController pay:]",
    app_in_app: bool = True,
    extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """sentry-cocoa: ``package`` is the image path, ``instruction_addr`` per frame."""
    app = f"/private/var/containers/Bundle/Application/{bundle_id}/Shop.app/Shop"
    frames = [
        {"package": "/usr/lib/system/libdyld.dylib", "function": "start",
         "instruction_addr": hex(0x1B2C3D4E + slide), "in_app": False},
        {"package": app, "function": "main", "instruction_addr": hex(0x100004000 + slide),
         "in_app": app_in_app},
        {"package": "/System/Library/PrivateFrameworks/UIKitCore.framework/UIKitCore",
         "function": "-[UIApplication sendAction:to:from:forEvent:]",
         "instruction_addr": hex(0x1C2D3E4F + slide), "in_app": False},
        {"package": app, "function": app_function, "symbol_addr": hex(0x100008000 + slide),
         "instruction_addr": hex(0x100008123 + slide), "in_app": app_in_app},
        *(extra or []),
        {"package": "/usr/lib/libobjc.A.dylib", "function": "objc_exception_throw",
         "instruction_addr": hex(0x1A000000 + slide), "in_app": False},
        {"package": "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation",
         "function": "__exceptionPreprocess", "instruction_addr": hex(0x1A100000 + slide),
         "in_app": False},
    ]  # fmt: skip
    return _event(
        "cocoa", "NSInvalidArgumentException", "-[NSNull length]: unrecognized selector", frames
    )


def native_event(
    *, app: str = "/opt/shop/bin/server", function: str | None = None, slide: int = 0
) -> dict[str, Any]:
    """sentry-native (C++ on Linux): demangled functions with signatures, images, addresses."""
    handler: dict[str, Any] = {"package": app, "instruction_addr": hex(0x55D0A000 + slide),
                               "in_app": True}  # fmt: skip
    if function is not None:
        handler["function"] = function
    frames = [
        {"package": "/lib/x86_64-linux-gnu/libc.so.6", "function": "__libc_start_main",
         "instruction_addr": hex(0x7F0000 + slide)},
        {"package": app, "function": "main", "instruction_addr": hex(0x55D09000 + slide),
         "in_app": True},
        handler,
        {"package": "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "function": "__cxa_throw",
         "instruction_addr": hex(0x7F1000 + slide)},
        {"package": "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "function": "_Unwind_RaiseException",
         "instruction_addr": hex(0x7F2000 + slide), "in_app": True},
    ]  # fmt: skip
    return _event("native", "std::runtime_error", "bad order", frames)


def dart_event(
    *,
    function: str = "_CheckoutPageState._pay",
    sdk_in_app: bool = False,
    context: str = "await api.pay(order);",
) -> dict[str, Any]:
    """sentry-dart / sentry-flutter: event platform "other", frames "dart", ``package:`` URIs."""
    frames = [
        {"abs_path": "dart:async/zone.dart", "filename": "zone.dart", "function": "_rootRunUnary",
         "lineno": 1407, "in_app": sdk_in_app, "platform": "dart"},
        {"abs_path": "package:flutter/src/gestures/recognizer.dart", "filename": "recognizer.dart",
         "function": "GestureRecognizer.invokeCallback", "lineno": 275, "in_app": sdk_in_app,
         "platform": "dart"},
        {"abs_path": "package:shop/checkout/page.dart", "filename": "page.dart",
         "function": function, "lineno": 88, "colno": 7, "in_app": True, "platform": "dart",
         "context_line": context},
        {"abs_path": "package:sentry_flutter/src/integrations/flutter_error_integration.dart",
         "filename": "flutter_error_integration.dart", "function": "FlutterErrorIntegration.call",
         "lineno": 50, "in_app": True, "platform": "dart"},
    ]  # fmt: skip
    return _event("other", "StateError", "Bad state: no order", frames)


def ruby_event(
    *,
    template_numbers: str = "2787645335542224224_70099011093660",
    block: str = "block in show",
    root: str = "/srv/shop/releases/20240501",
) -> dict[str, Any]:
    """sentry-ruby (Rails): ERB template methods, blocks, context lines."""
    frames = [
        {"filename": "app/controllers/users_controller.rb",
         "abs_path": f"{root}/app/controllers/users_controller.rb", "function": block,
         "lineno": 12, "in_app": True, "context_line": "render :show"},
        {"filename": "app/views/users/show.html.erb", "abs_path": f"{root}/app/views/users/show.html.erb",
         "function": f"_app_views_users_show_html_erb___{template_numbers}", "lineno": 3,
         "in_app": True, "context_line": "<%= @user.name.upcase %>"},
    ]  # fmt: skip
    return _event("ruby", "NoMethodError", "undefined method `upcase' for nil:NilClass", frames)


def php_event(
    *,
    closure: str = "{closure}",
    anonymous: str = "class@anonymous\x00/var/www/app/Jobs.php:12$0::handle",
) -> dict[str, Any]:
    """sentry-php (Laravel): namespaced methods, closures, anonymous classes."""
    frames = [
        {"filename": "/var/www/vendor/laravel/framework/src/Illuminate/Pipeline/Pipeline.php",
         "abs_path": "/var/www/vendor/laravel/framework/src/Illuminate/Pipeline/Pipeline.php",
         "function": "Illuminate\\Pipeline\\Pipeline::Illuminate\\Pipeline\\{closure}", "lineno": 180,
         "in_app": False},
        {"filename": "/var/www/routes/web.php", "abs_path": "/var/www/routes/web.php",
         "function": closure, "lineno": 15, "in_app": True,
         "context_line": "return (new OrderJob)->handle($request);"},
        {"filename": "/var/www/app/Jobs.php", "abs_path": "/var/www/app/Jobs.php",
         "function": anonymous, "lineno": 14, "in_app": True,
         "context_line": "throw new RuntimeException('no order');"},
    ]  # fmt: skip
    return _event("php", "RuntimeException", "no order", frames)


def python_event(*, venv: str = "/srv/app/.venv", context: str = "raise ValueError(order_id)"):
    """sentry-python: ``module`` and ``context_line`` on every frame, in_app by the SDK."""
    frames = [
        {"filename": "django/core/handlers/base.py",
         "abs_path": f"{venv}/lib/python3.12/site-packages/django/core/handlers/base.py",
         "module": "django.core.handlers.base", "function": "_get_response", "lineno": 197,
         "in_app": False, "context_line": "response = wrapped_callback(request, *args)"},
        {"filename": "shop/views.py", "abs_path": "/srv/app/shop/views.py", "module": "shop.views",
         "function": "checkout", "lineno": 40, "in_app": True, "context_line": context},
    ]  # fmt: skip
    return _event("python", "ValueError", "order 12 is invalid", frames)
