"""Stack frame normalization: reduce a frame to the parts that identify code, not a deployment.

A frame becomes ``(location, function, context)``:
  * location: the module (Python, Java class, Go package) when known, else the file name with
    absolute prefixes, virtualenv / site-packages / node_modules / Go module cache prefixes,
    URL origins, version segments and bundle hashes removed;
  * function: without lambda / anonymous numbering and generated class suffixes;
  * context: the source line with whitespace collapsed (dropped when longer than 120 chars,
    which is minified code).
Line and column numbers never take part. All functions are pure and cached on their inputs.
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_CONTEXT_LINE = 120

# Everything up to and including a third-party root keeps the package path after it.
_LIBRARY_ROOT = re.compile(
    r"^.*?(?:/|^)(?:site-packages|dist-packages|node_modules|vendor|go/pkg/mod|pkg/mod)/"
)
_URL_ORIGIN = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//[^/]*/?|^(?:webpack|app|file|node):/*")
_QUERY = re.compile(r"[?#].*$")
_VERSION_SEGMENT = re.compile(
    r"(?:^|/)(?:v?\d+(?:\.\d+)+[\w.+-]*|v\d+|\d{8,}|[0-9a-f]{7,40}|python\d(?:\.\d+)?)(?=/)"
)
_VERSION_SUFFIX = re.compile(
    r"(?<=[A-Za-z])[-@_]v?\d+(?:\.\d+)+(?:[-+.][0-9A-Za-z]+)*(?=/|\.jar$|\.egg$|$)"
)
_BUNDLE_HASH = re.compile(
    r"[.-](?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,32}(?=(?:\.chunk|\.bundle|\.min)?\.(?:m?js|cjs|jsx|tsx?|css|map)$)"
)
_JAVA_GENERATED = re.compile(
    r"\$\$(?:EnhancerBy|FastClassBy)\w*?\$\$[0-9a-f]+|\$\$Lambda(?:\$\d+)?(?:/0x[0-9a-f]+)?"
    r"|(?<=\$Proxy)\d+|\$HibernateProxy\$\w+|\$MockitoMock\$\d+|\$ByteBuddy\$\w+"
)
_JAVA_LAMBDA = re.compile(r"(lambda\$(?:\w+?\$)?)\d+|(\$anonfun)(?:\$\w+?)?\$\d+(?:\$\d+)*")
_GO_CLOSURE = re.compile(r"\.func\d+(?:\.\d+)*|\.gowrap\d+|\.deferwrap\d+")
_JS_ANON = re.compile(r"^(?:async |new )|^Object\.<anonymous>$|<anonymous>|\s+\[as \w+\]$")
_WS = re.compile(r"\s+")
_THIRD_PARTY_PATH = re.compile(
    r"site-packages|dist-packages|node_modules|/go/pkg/mod/|/usr/lib/python|/lib/python\d|"
    r"^<frozen |^node:|^internal/|/\.cargo/registry/|/rustc/|/usr/local/go/src/|GOROOT"
)
_THIRD_PARTY_MODULE = re.compile(
    r"^(?:java|javax|jdk|sun|com\.sun|kotlin|scala|org\.springframework|org\.apache|"
    r"io\.netty|reactor|net\.bytebuddy|runtime|net/http|internal/|syscall|reflect)(?:[./]|$)"
)


@lru_cache(maxsize=16384)
def normalize_path(path: str) -> str:
    """Deployment-independent file path: ``/home/u/.venv/lib/python3.11/site-packages/requests-2.31.0/x.py`` -> ``requests/x.py``."""
    if not path:
        return ""
    path = path.replace("\\", "/")
    path = _QUERY.sub("", path)
    path = _URL_ORIGIN.sub("", path)
    library = _LIBRARY_ROOT.match(path)
    if library:
        path = path[library.end() :]
    path = _VERSION_SUFFIX.sub("", path)
    path = _VERSION_SEGMENT.sub("", path)
    path = _BUNDLE_HASH.sub("", path)
    if re.match(r"^[A-Za-z]:/|^/|^~/", path) and not library:
        # an absolute in-app path: its root depends on where the code was deployed
        path = "/".join(path.rsplit("/", 2)[-2:])
    return path.lstrip("./")


@lru_cache(maxsize=16384)
def normalize_module(module: str) -> str:
    """Module / class / package name without generated suffixes and version segments."""
    if not module:
        return ""
    module = _JAVA_GENERATED.sub("", module)
    module = re.sub(r"/v\d+(?=/|$)|@v[\w.+-]+", "", module)  # Go: github.com/x/y/v2, @v1.2.3
    return module


@lru_cache(maxsize=16384)
def normalize_function(function: str) -> str:
    """Function name without lambda / closure / anonymous numbering."""
    if not function:
        return ""
    function = _JAVA_GENERATED.sub("", function)
    function = _JAVA_LAMBDA.sub(lambda m: m.group(1) or m.group(2), function)
    function = _GO_CLOSURE.sub(".func", function)
    function = _JS_ANON.sub("", function).strip()
    return function or "<anonymous>"


@lru_cache(maxsize=16384)
def normalize_context_line(line: str) -> str:
    if not line:
        return ""
    line = _WS.sub(" ", line).strip()
    return "" if len(line) > MAX_CONTEXT_LINE else line


@lru_cache(maxsize=16384)
def looks_third_party(path: str, module: str) -> bool:
    """In-app guess for frames whose ``in_app`` is unset."""
    return bool(_THIRD_PARTY_PATH.search(path) or _THIRD_PARTY_MODULE.match(module))


@lru_cache(maxsize=32768)
def frame_key(
    platform: str, module: str, filename: str, abs_path: str, function: str, context_line: str
) -> tuple[str, str, str]:
    """The grouping key of one frame: ``(location, function, context)``."""
    if platform == "javascript" or platform == "node" or not module:
        # JS "module"s are derived from URLs and unstable; prefer the normalized file
        location = normalize_path(filename or abs_path) or normalize_module(module)
    else:
        location = normalize_module(module)
    return location, normalize_function(function), normalize_context_line(context_line)
