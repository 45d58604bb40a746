"""Grouping v2's frames: how each platform's stack frames are read, after Sentry's default
grouping (``newstyle:2023-01-11``: the frame strategy of ``strategies/newstyle.py`` and the
default stack trace rules of ``enhancement-configs/newstyle@2023-01-11.txt``).

A frame still becomes ``FrameView(location, function, context, in_app)``, as in v1, but:

  * in-app: the operator's include / exclude prefixes, then Sentry's default rules (which
    override the SDK's flag: ``/node_modules/``, ``/vendor/``, ``org.springframework.``,
    ``dart:`` and ``package:flutter/``, iOS app bundles ``+app``, ``/usr/lib/`` ``-app``, ...),
    then the SDK's ``in_app``, then v1's guess;
  * some frames never group (Sentry's ``-group``): sentry-dart and sentry-cocoa frames,
    ``io.sentry.``, Babel / core-js / tslib helpers, Node's task-queue functions, the Dart SDK
    seen from the web (``org-dartlang-sdk:``), JavaScript ``eval`` / ``[native code]`` frames;
    native "border" functions cut the stack (``__cxa_throw``: it and what it called;
    ``start`` / ``thread_start``: it and its callers);
  * context lines only for JavaScript, Node, Python, PHP and Ruby (and platforms Sentry does
    not know, as in v1); every other known platform groups by module / file and function;
  * per platform: JavaScript URL frames by module (else the URL's path), page / ``blob:``
    URLs by nothing, functions trimmed to their last dotted part, the function dropped when a
    source map gave the context line; Java / Kotlin / Clojure generated class names; native
    function names trimmed, the package as fallback, addresses never; Ruby blocks and ERB
    templates; PHP closures and anonymous classes.

Views are cached on the raw fields that matter, like v1's (``event._frame_view``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

from pipeline.grouping.event import FrameView, InAppOverrides, text
from pipeline.grouping.frames import (
    looks_third_party,
    normalize_context_line,
    normalize_function,
    normalize_module,
    normalize_path,
)

NATIVE = frozenset({"objc", "cocoa", "swift", "native", "c", "cpp"})
JAVASCRIPT = frozenset({"javascript", "node"})
# Sentry's platforms whose context lines it does not use (it uses them for javascript, node,
# python, php and ruby only). A platform it does not know ("other", none) keeps them, as v1.
NO_CONTEXT_LINE = NATIVE | {
    "java", "kotlin", "go", "dart", "csharp", "elixir", "perl", "as3", "cfml", "haskell",
    "groovy", "rust",
}  # fmt: skip

# Border kinds (``FrameView.border``), from Sentry's ``^`` / ``v`` rules:
CUT = (
    1  # this frame and the ones it called: not grouped, not in-app (``^-group -group ^-app -app``)
)
CUT_GROUP = 2  # this frame and the ones it called: not grouped (``^-group -group``)
AFTER = 3  # the frames it called: not grouped (``^-group``: abort, raise, objc_exception_throw)
APP = 4  # this frame and the ones it called: not in-app (``^-app -app``)
BEFORE = 5  # this frame and its callers: not grouped (thread bases: ``-group v-group``)

# --- Sentry's default stack trace rules -------------------------------------------------
# Paths (abs_path or filename) and modules, any platform: not in-app / not in-app nor grouped.
_NOT_APP_PATH = re.compile(
    r"(?:^|/)(?:vendor|site-packages|dist-packages|node_modules)/|/go/pkg/mod/|/\.pub-cache/"
    r"|^https?://(?:unpkg\.com|cdnjs\.cloudflare\.com|cdn\.jsdelivr\.net|esm\.run)/"
    r"|(?:^|/)packages/flutter/|^package:flutter/|^dart:"
    r"|^package:sentry_(?:link|firebase_remote_config)/",
    re.IGNORECASE,
)
_NOT_GROUPED_PATH = re.compile(
    r"^org-dartlang-sdk:/"
    r"|^package:sentry(?:_flutter|_logging|_dio|_file|_hive|_isar|_sqflite|_drift)?/"
    r"|/[^/]*(?:newrelic|logrocket)[^/]*/",
    re.IGNORECASE,
)
_NOT_APP_MODULE = re.compile(
    r"^(?:unpkg/|akka\.|com\.fasterxml\.|com\.microsoft\.|com\.sun\.|feign\.|io\.opentelemetry\."
    r"|jdk\.|oauth\.|org\.apache\.|org\.glassfish\.|org\.jboss\.|org\.jdesktop\."
    r"|org\.postgresql\.|org\.springframework\.|org\.web3j\.|reactor\.core\.|scala\.|sun\."
    r"|kotlin\.|kotlinx\.|io\.ktor\.|io\.netty\.)"
    r"|/packages/flutter/"
)
_NOT_GROUPED_MODULE = re.compile(
    r"^(?:@babel/|core-js/|regenerator-runtime/|tslib/|io\.sentry\.)|^newrelic$"
)
_NOT_GROUPED_FUNCTION = re.compile(
    r"^(?:runMicrotasks|queueMicrotask|processTicksAndRejections|runNextTicks|nextTick)$"
)
# Native (Apple, Linux, Windows, Android, Rust) packages and functions.
_APP_PACKAGE = re.compile(
    r"^/(?:private/)?var/containers/Bundle/Application/|/Developer/CoreSimulator/Devices/"
    r"|/Containers/Bundle/Application/|\.app/Contents/|^/Users/",
    re.IGNORECASE,
)
_NOT_APP_PACKAGE = re.compile(
    r"^/(?:usr/)?lib/|^linux-gate\.so|/Frameworks/libswift[^/]*\.dylib$"
    r"|/Frameworks/(?:KSCrash|SentrySwift|Sentry)\.framework/"
    r"|^/System/Library/|^[A-Z]:/Windows/|^/system/|^/vendor/|^/apex/com\.android\."
    r"|(?:^|/)(?:CoreFoundation|Foundation|CFNetwork|IOKit|QuartzCore|IOMobileFramebuffer"
    r"|WebKit|libdispatch\.dylib|libart\.so)$|(?:^|/)lib(?:objc|system)[^/]*$",
    re.IGNORECASE,
)
_NOT_APP_NATIVE_PATH = re.compile(r"^/usr/local/(?:lib|Cellar)/", re.IGNORECASE)
_NOT_APP_NATIVE_FUNCTION = re.compile(r"^(?:std|core|alloc)::|^__rust_|^rust_begin_unwind$")
_NOT_GROUPED_NATIVE_FUNCTION = re.compile(
    r"^(?:kscm_|sentrycrashcm_|kscrash_)|sentrycrash_|^.\[(?:KSCrash|RNSentry|Sentry)"
    r"|^__.*\[Sentry|^google_breakpad::|^_mh_execute_header$"
)
_NATIVE_BORDERS = (
    (
        CUT,
        r"(?:std|core)::panicking::begin_panic|failure::backtrace::Backtrace::new"
        r"|error_chain::make_backtrace|_CxxThrowException|__cxa_throw|__assert_rtn|_NSRaiseError",
    ),
    (
        CUT_GROUP,
        r"google_breakpad::ExceptionHandler::(?:SignalHandler|WriteMinidumpWithException)"
        r"|_sigtramp|RtlpExecuteHandlerForException|DispatchHookW|execute_onexit_table",
    ),
    (APP, r"(?:std|core)::panicking::panic_fmt"),
    (
        AFTER,
        r"abort|raise|std::terminate|RaiseException|RaiseComPlusException|TppRaiseInvalidParameter"
        r"|_CFThrowFormattedException|objc_exception_throw|AG::precondition_failure.*",
    ),
    (
        BEFORE,
        r"wWinMain|invoke_main|BaseThreadInitThunk|RtlUserThreadStart|thread_start"
        r"|_?_pthread_start|_pthread_body|_dispatch_worker_thread2|start_wqthread"
        r"|_pthread_wqthread|TppWorkerThread|TppWorkpExecuteCallback|RtlpTpWorkCallback"
        r"|boost::.*::thread_proxy|UIApplicationMain",
    ),
)
_NATIVE_BORDER = re.compile(
    "|".join(f"(?P<b{kind}>{regex})" for kind, regex in _NATIVE_BORDERS).join(("^(?:", ")$"))
)
_THREAD_START_PACKAGE = re.compile(r"libdyld\.dylib$|^/usr/lib/system/")


def _rules(
    native: bool, js: bool, module: str, path: str, function: str, package: str, abs_path: str
) -> tuple[bool | None, bool, int]:
    """(in-app by the default rules or None, grouped, border kind) of one frame."""
    app: bool | None = None
    grouped = True
    border = 0
    if native:
        if _APP_PACKAGE.search(package) or (
            package.startswith("/data/app/") and abs_path.endswith(".dart")
        ):
            app = True
        if (
            _NOT_APP_PACKAGE.search(package)
            or _NOT_APP_NATIVE_PATH.search(path)
            or _NOT_APP_NATIVE_FUNCTION.search(function)
        ):
            app = False
        if _NOT_GROUPED_NATIVE_FUNCTION.search(function):
            app, grouped = False, False
        match = _NATIVE_BORDER.match(function)
        if match:
            border = int(match.lastgroup[1:])  # type: ignore[index]
        elif function == "start" and _THREAD_START_PACKAGE.search(package):
            border = BEFORE
    elif js:
        if function == "_callSuper":
            app, grouped = False, False
        elif function == "reportError":
            border = APP
    if path:
        if _NOT_GROUPED_PATH.search(path):
            app, grouped = False, False
        elif _NOT_APP_PATH.search(path):
            app = False
    if module:
        if _NOT_GROUPED_MODULE.search(module):
            app, grouped = False, False
        elif _NOT_APP_MODULE.search(module):
            app = False
    if function and _NOT_GROUPED_FUNCTION.match(function):
        app, grouped = False, False
    return app, grouped, border


# --- Java / Kotlin / Scala / Clojure: generated class names -------------------------------
_JAVA_GENERATED_V2 = re.compile(
    # CGLIB / Spring / Guice: $$EnhancerBySpringCGLIB$$1a2b3c, $$FastClassByCGLIB$$.._2,
    # $EnhancerByGuice$ae46b1bf, Spring 6's $$SpringCGLIB$$0
    r"\$\$?(?:EnhancerBy|FastClassBy)\w*?\$?\$[0-9a-fA-F]+(?:_\d+)?"
    r"|\$\$\w*?CGLIB\$\$[0-9a-fA-F]+(?:_\d+)?"
    # Hibernate proxies (Foo$HibernateProxy$oRWxjAWT), ByteBuddy, Mockito
    r"|\$\$?HibernateProxy\$?\$\w+|\$(?:ByteBuddy|MockitoMock|auxiliary)\$\w+"
    # javassist: Foo_$$_jvst3d9_1a (ProxyFactory), Foo_$$_javassist_seam_74
    r"|_\$\$_jvst[0-9a-f]+_[0-9a-f]+|_?\$\$_javassist(?:_seam)?(?:_\d+)?"
    # lambdas: Foo$$Lambda$123/0x0000000800c03000, Foo$$Lambda/0x..., Foo$$Lambda$1/1234567
    r"|\$\$Lambda(?:\$\d+)?(?:/(?:0x)?[0-9a-fA-F]+)?"
)
# sun.reflect.GeneratedMethodAccessor123 / GeneratedConstructorAccessor45 /
# GeneratedSerializationConstructorAccessor12 (also under jdk.internal.reflect.), JDK
# proxies jdk.proxy3.$Proxy12, Clojure classes myapp.core$fn__1234, user$eval5678,
# myapp.core$reify__91: the numbers count classes generated at run time
_JAVA_NUMBERED = re.compile(
    r"(\.reflect\.Generated(?:Serialization)?(?:Method|Constructor)Accessor)\d+"
    r"|(\bjdk\.proxy)\d+(?=\.)|(\$(?:fn__|eval|reify__))\d+"
)


@lru_cache(maxsize=16384)
def normalize_module_v2(module: str) -> str:
    """v1's module normalization, plus the generated class names v1 does not know."""
    if not module:
        return ""
    if "$" in module or "Generated" in module or "proxy" in module:
        module = _JAVA_GENERATED_V2.sub("", module)
        module = _JAVA_NUMBERED.sub(lambda m: m.group(1) or m.group(2) or m.group(3), module)
    return normalize_module(module)


# --- function names ----------------------------------------------------------------------
_JS_UNKNOWN_FUNCTIONS = frozenset(
    {"?", "<anonymous function>", "<anonymous>", "Anonymous function"}
)
_JS_LOW_QUALITY_PATHS = frozenset({"[native code]", "native code", "eval code", "<anonymous>"})
# Ruby: ERB / Haml / Slim templates compile to methods named after the template plus two
# numbers (_app_views_users_show_html_erb___2787645335542224224_70099011093660); Sentry strips
# numbers of 4 digits or more, template methods lose any.
_RUBY_TEMPLATE = re.compile(r"_(?:erb|haml|slim|builder|jbuilder)__+-?\d+_\d+$")
_RUBY_GENERATED = re.compile(r"__\d{4,}_\d{4,}$")
# PHP 8.4 names closures after where they are: {closure:App\Foo::bar():12}, {closure:/x.php:3}
_PHP_CLOSURE = re.compile(r"\{closure:[^{}]*\}")
# native: Rust's symbol hash (::h0123456789abcdef), C++ lambda numbering ({lambda(int)#2})
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_CPP_LAMBDA = re.compile(r"\{lambda\([^{}]*\)#\d+\}")
_ADDRESS = re.compile(r"^(?:0x)?[0-9a-fA-F]{6,}$")


def _strip_arguments(function: str) -> str:
    """``void ns::f(int) const`` -> ``ns::f``: C++ return type, arguments and qualifiers."""
    name = function.strip()
    for suffix in (" const", " volatile", " &&", " &"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(")"):
        depth = 0
        for index in range(len(name) - 1, -1, -1):
            char = name[index]
            if char == ")":
                depth += 1
            elif char == "(":
                depth -= 1
                if depth == 0:
                    head = name[:index]
                    if head and not head.endswith("operator"):
                        name = head
                    break
    # the return type: what precedes the name at the top level (outside <> and ())
    depth = 0
    for index in range(len(name) - 1, -1, -1):
        char = name[index]
        if char in ">)":
            depth += 1
        elif char in "<(":
            depth -= 1
        elif char == " " and depth == 0 and not name[:index].endswith("operator"):
            return name[index + 1 :]
    return name


@lru_cache(maxsize=16384)
def normalize_function_v2(function: str, platform: str, js: bool, native: bool) -> str:
    """One frame's function as grouping v2 uses it; ``<anonymous>`` when it does not count."""
    if native:
        if function in ("<redacted>", "<unknown>") or _ADDRESS.match(function):
            return "<anonymous>"
        function = _RUST_HASH.sub("", _CPP_LAMBDA.sub("{lambda}", function))
        if "::" in function and "(" in function:
            function = _strip_arguments(function)
        return function or "<anonymous>"
    if platform == "ruby":
        if function.startswith("block "):
            return "block"
        function = _RUBY_TEMPLATE.sub(lambda m: m.group()[: m.group().index("__")], function)
        function = _RUBY_GENERATED.sub("", function)
    elif platform == "php":
        if function.startswith(("[Anonymous", "class@anonymous\x00")):
            return "<anonymous>"
        if function.startswith("class@anonymous"):
            function = function.rsplit("::", 1)[-1]
        function = _PHP_CLOSURE.sub("{closure}", function)
    function = normalize_function(function)
    if js:
        function = function.rsplit(".", 1)[-1]
        if function in _JS_UNKNOWN_FUNCTIONS or function.endswith("/<") or not function:
            return "<anonymous>"
    return function


# --- JavaScript URLs ---------------------------------------------------------------------
_URL = re.compile(r"^(?:blob:|[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#\s]+)")
_WEB_URL = re.compile(r"^(?:blob:|https?://)", re.IGNORECASE)
_PAGE_EXTENSIONS = frozenset({"", "html", "htm", "php", "asp", "aspx", "jsp", "cfm"})
_MODULE_HASH = re.compile(r"(?<=\w)[.-](?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,32}(?=/|\.|$)")


def has_url_origin(path: str) -> bool:
    """``https://cdn.example.com/x.js``, ``webpack://app/x.js``, ``blob:…`` (not ``file:///``)."""
    return bool(_URL.match(path))


def is_page_url(path: str) -> bool:
    """A web page's URL (an inline script's frame) or a ``blob:`` URL: its path varies with
    what was shown (``/orders/12345``), not with the code."""
    if path[:5].lower() == "blob:":
        return True
    if not _WEB_URL.match(path):
        return False
    rest = path.split("//", 1)[-1].split("?", 1)[0].split("#", 1)[0]
    segment = rest.rsplit("/", 1)[-1] if "/" in rest else ""
    extension = segment.rpartition(".")[2].lower() if "." in segment else ""
    return extension in _PAGE_EXTENSIONS


# --- one frame -------------------------------------------------------------------------
@lru_cache(maxsize=65536, typed=True)
def _frame_view(
    platform: str,
    overrides: InAppOverrides,
    module: Any,
    filename: Any,
    abs_path: Any,
    function: Any,
    context_line: Any,
    in_app: Any,
    frame_platform: Any,
    package: Any,
    sourcemap: bool,
    symbol: Any,
) -> FrameView | None:
    module, filename, abs_path, function = (
        text(module),
        text(filename),
        text(abs_path),
        text(function),
    )
    package, frame_platform = text(package), text(frame_platform).lower()
    platform = frame_platform or platform
    native, js = platform in NATIVE, platform in JAVASCRIPT
    if native and not function:
        function = text(symbol)  # an unsymbolicated frame's symbol (Sentry: the package then)
    path = abs_path or filename
    if not (module or path or function or (native and package)):
        return None
    package = package.replace("\\", "/")
    app, grouped, border = _rules(
        native, js, module, path.replace("\\", "/"), function, package, abs_path
    )
    if not grouped and border not in (CUT, CUT_GROUP):
        return None
    context = "" if platform in NO_CONTEXT_LINE else normalize_context_line(text(context_line))
    if js:
        if function == "eval" or path in _JS_LOW_QUALITY_PATHS:
            return None
        url = has_url_origin(path)
        if url and is_page_url(path):
            location = ""
        elif url and module:
            location = _MODULE_HASH.sub("", normalize_module_v2(module))
        else:
            location = normalize_path(filename or abs_path) or normalize_module(module)
            if location in _JS_LOW_QUALITY_PATHS:
                location = ""
        if not function and (url or path.startswith("file:")):
            context = ""
        func = normalize_function_v2(function, platform, js, native)
        if sourcemap and context:
            func = ""  # a source map's function names are unreliable; its context line is not
    elif native:
        func = normalize_function_v2(function, platform, js, native)
        location = normalize_path(filename or abs_path)
        if func == "<anonymous>" and not location:
            # nothing symbolicated: the binary it ran in (never the address)
            location = package.rsplit("/", 1)[-1].lower()
            if not location:
                return None
    else:
        if module:
            location = normalize_module_v2(module)
        else:
            location = normalize_path(filename or abs_path)
            if platform == "java" and "$$_" in location:
                location = _JAVA_GENERATED_V2.sub("", location)
        func = normalize_function_v2(function, platform, js, native)
    include, exclude = overrides
    name = module or path or package
    if name and exclude and name.startswith(exclude):
        in_app = False
    elif name and include and name.startswith(include):
        in_app = True
    elif app is not None:
        in_app = app
    elif not isinstance(in_app, bool):
        in_app = not looks_third_party(path, module)
    if border in (CUT, APP):
        in_app = False
    return FrameView(location, func, context, in_app, module, path, border)


_KNOWN: dict[tuple[Any, ...], FrameView | None] = {}
_KNOWN_MAX = 65536
_NOT_KNOWN = object()
_SCALARS = (str, bool, int, float)


def _view_of(key: tuple[Any, ...]) -> FrameView | None:
    try:
        view = _frame_view(*key)
    except TypeError:  # an unhashable (list / dict) value in an odd payload
        fields = tuple(v if isinstance(v, _SCALARS) else None for v in key[2:])
        return _frame_view(key[0], key[1], *fields)
    # (only keys whose fields are strings or None, in_app a bool or None, may go into the
    # plain dict: 1 == True must not let two frames share a view, as in v1's)
    if all(v is None or v.__class__ is str for v in key[2:7] + key[8:10] + key[11:]) and (
        key[7] is None or key[7].__class__ is bool
    ):
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        _KNOWN[key] = view
    return view


@lru_cache(maxsize=4096)
def _not_in_app(view: FrameView) -> FrameView:
    return replace(view, in_app=False)


def frames_of(
    raw: Any, platform: str, overrides: InAppOverrides, app_only: bool = False
) -> tuple[FrameView, ...]:
    """The frames' views as grouping v2 reads them; with ``app_only`` only the in-app ones."""
    if isinstance(raw, dict):
        raw = raw.get("frames")
    if not isinstance(raw, list):
        return ()
    lone = len(raw) == 1
    if app_only and not overrides[0]:
        # a frame marked in_app=False stays out, unless an include prefix or a native rule
        # (which reads its "package") may bring it in: left out first, in one quick pass
        raw = [
            f
            for f in raw
            if f.__class__ is not dict or f.get("in_app") is not False or "package" in f
        ]
    views: list[FrameView] = []
    not_in_app = False
    for frame in raw:
        if frame.__class__ is not dict:
            continue
        get = frame.get
        in_app = get("in_app")
        function = get("function")
        data = get("data")
        key = (
            platform,
            overrides,
            get("module"),
            get("filename"),
            get("abs_path"),
            function,
            get("context_line"),
            in_app,
            get("platform"),
            get("package"),
            data.__class__ is dict and data.get("sourcemap") is not None,
            None if function else get("symbol"),
        )
        if in_app is True or in_app is False or in_app is None:
            try:
                view = _KNOWN.get(key, _NOT_KNOWN)
            except TypeError:
                view = _NOT_KNOWN
        else:
            view = _NOT_KNOWN
        if view is _NOT_KNOWN:
            view = _view_of(key)
        if view is None:
            continue
        border = view.border
        if border:
            if border == CUT or border == CUT_GROUP:
                break
            if border == BEFORE:
                views.clear()
                continue
            if border == APP:
                not_in_app = True
        if not_in_app and view.in_app:
            view = _not_in_app(view)
        if view.in_app or not app_only:
            views.append(view)
        if border == AFTER:
            break
    if lone and views:
        views = _lone_frame(raw[0], platform, views)
    return tuple(views)


def _lone_frame(frame: dict[str, Any], platform: str, views: list[FrameView]) -> list[FrameView]:
    """Sentry leaves out a JavaScript stack trace's only frame when it has no function and
    comes from a URL (or a file): too little to tell bugs apart."""
    frame_platform = text(frame.get("platform")).lower() or platform
    path = text(frame.get("abs_path")) or text(frame.get("filename"))
    if (
        frame_platform in JAVASCRIPT
        and not text(frame.get("function"))
        and (has_url_origin(path) or path.startswith("file:"))
    ):
        return []
    return views


def clear_caches() -> None:
    """Empty v2's frame memos (``engine.clear_caches`` calls this)."""
    for cached in (_frame_view, normalize_module_v2, normalize_function_v2, _not_in_app):
        cached.cache_clear()
    _KNOWN.clear()
