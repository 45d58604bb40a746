"""Categorize an event into one of a fixed set of categories.

Decision order (first hit wins), over the exception chain from the outermost exception in:
  1. the exception type (simple or qualified name) in ``TYPE_CATEGORY``; a network or
     business-logic type whose message says memory / timeout is ``memory`` / ``timeout``
     (``RangeError: Maximum call stack size exceeded``);
  2. the module the exception type lives in (``requests.exceptions`` -> network, ...);
  3. keywords in the (normalized first line of the) exception values or log message (``MESSAGE_PATTERNS``, in order);
  4. a type we do not know from a module of the application itself -> ``business_logic``;
  5. ``unknown``.
Server-side rules can override the result (``category = "..."`` in a rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from pipeline.grouping.event import EventView, ExceptionView
from pipeline.grouping.parameterize import CustomPatterns, first_line, normalize_text

CATEGORIES = (
    "authentication",
    "api",
    "network",
    "file_io",
    "parsing",
    "memory",
    "timeout",
    "configuration",
    "dependency",
    "business_logic",
    "validation",
    "unknown",
)

_TYPES = {
    "authentication": "AuthenticationError AuthenticationFailed NotAuthenticated Unauthorized "
    "UnauthorizedError InvalidToken InvalidTokenError ExpiredSignatureError InvalidSignatureError "
    "JWTError DecodeError.jwt PermissionDenied AccessDenied AuthenticationException "
    "BadCredentialsException InsufficientAuthenticationException "
    "org.springframework.security.access.AccessDeniedException CredentialsExpiredException "
    "TokenExpiredError JsonWebTokenError UnauthenticatedError ForbiddenError",
    "api": "HTTPError HTTPStatusError ClientResponseError HttpClientErrorException "
    "HttpServerErrorException WebApplicationException ResponseStatusException ApiError APIError "
    "GraphQLError AxiosError RestClientException FeignException HttpException TooManyRequests "
    "RateLimitError ServiceUnavailable BadGateway",
    "network": "ConnectionError ConnectionRefusedError ConnectionResetError ConnectionAbortedError "
    "BrokenPipeError gaierror herror NewConnectionError MaxRetryError ProtocolError SSLError "
    "ProxyError RemoteDisconnected IncompleteRead ClientConnectorError ServerDisconnectedError "
    "ConnectException UnknownHostException SocketException NoRouteToHostException "
    "SSLHandshakeException ClosedChannelException *net.OpError *net.DNSError *url.Error "
    "FetchError NetworkError OperationalError InterfaceError",
    "file_io": "FileNotFoundError IsADirectoryError NotADirectoryError FileExistsError "
    "PermissionError IOError FileNotFoundException NoSuchFileException "
    "java.nio.file.AccessDeniedException FileSystemException DirectoryNotEmptyException "
    "EOFException *fs.PathError *os.PathError *os.LinkError",
    "parsing": "JSONDecodeError SyntaxError YAMLError ParserError ScannerError ParseError "
    "XMLSyntaxError ExpatError UnicodeDecodeError UnicodeEncodeError UnicodeError "
    "JsonParseException JsonMappingException MismatchedInputException JsonProcessingException "
    "NumberFormatException DateTimeParseException SAXParseException *json.SyntaxError "
    "*json.UnmarshalTypeError *strconv.NumError *xml.SyntaxError ParseException TOMLDecodeError",
    "memory": "MemoryError OutOfMemoryError java.lang.OutOfMemoryError StackOverflowError "
    "RecursionError",
    "timeout": "TimeoutError Timeout ReadTimeout ConnectTimeout ReadTimeoutError "
    "ConnectTimeoutError TimeoutException SocketTimeoutException QueryCanceled "
    "QueryCanceledError CancelledError DeadlineExceeded TimeoutExpired PoolTimeout "
    "LockTimeout timeout",
    "configuration": "ImproperlyConfigured ConfigurationError ConfigError SettingsError "
    "MissingConfiguration BeanCreationException NoSuchBeanDefinitionException "
    "BeanDefinitionStoreException UnsatisfiedDependencyException MissingEnvironmentVariable",
    "dependency": "ImportError ModuleNotFoundError ClassNotFoundException NoClassDefFoundError "
    "NoSuchMethodError UnsatisfiedLinkError ChunkLoadError DistributionNotFound VersionConflict "
    "ExceptionInInitializerError",
    "validation": "ValidationError ValueError IllegalArgumentException "
    "ConstraintViolationException MethodArgumentNotValidException InvalidArgument "
    "InvalidArgumentError ValidationException BindException SchemaError InvalidRequestError",
    "business_logic": "KeyError IndexError AttributeError TypeError NameError LookupError "
    "ZeroDivisionError ArithmeticError AssertionError NotImplementedError UnboundLocalError "
    "StopIteration NullPointerException IllegalStateException UnsupportedOperationException "
    "ClassCastException IndexOutOfBoundsException ArrayIndexOutOfBoundsException "
    "ConcurrentModificationException NoSuchElementException ArithmeticException ReferenceError "
    "RangeError IntegrityError DoesNotExist ObjectDoesNotExist EntityNotFoundException",
}
TYPE_CATEGORY = {name: category for category, names in _TYPES.items() for name in names.split()}

MODULE_CATEGORY = (
    ("jwt", "authentication"),
    ("requests.exceptions", "network"),
    ("urllib3.exceptions", "network"),
    ("httpx", "network"),
    ("aiohttp", "network"),
    ("socket", "network"),
    ("ssl", "network"),
    ("json", "parsing"),
    ("yaml", "parsing"),
    ("xml", "parsing"),
    ("pydantic", "validation"),
    ("marshmallow", "validation"),
    ("jsonschema", "validation"),
    ("django.core.exceptions", "configuration"),
)

# Ordered: the first category whose pattern matches the message wins.
MESSAGE_PATTERNS = tuple(
    (category, re.compile(pattern, re.IGNORECASE))
    for category, pattern in (
        (
            "memory",
            r"out of memory|heap out of memory|cannot allocate memory|\boom\b"
            r"|maximum call stack size|stack overflow|invalid array length|memoryerror",
        ),
        ("timeout", r"timed? ?out\b|timeout|deadline exceeded|etimedout|took too long"),
        (
            "authentication",
            r"unauthori[sz]ed|unauthenticated|invalid (?:token|credentials|api key"
            r"|password|signature)|authentication|not authenticated|access denied|forbidden"
            r"|jwt (?:expired|malformed)|token (?:expired|has expired)|\b40[13]\b|login required",
        ),
        (
            "dependency",
            r"cannot find module|module_not_found|no module named|could not resolve"
            r"|loading chunk .* failed|class not found|failed to load (?:module|library)"
            r"|undefined symbol|incompatible version",
        ),
        (
            "file_io",
            r"no such file|enoent|eacces|eisdir|emfile|too many open files|no space left"
            r"|disk full|read-only file system|is a directory|file not found|permission denied",
        ),
        (
            "parsing",
            r"unexpected token|unexpected end of (?:json|input)|invalid character"
            r"|json|could not parse|parse error|failed to parse|malformed|invalid syntax"
            r"|cannot unmarshal|expecting value|decode",
        ),
        (
            "network",
            r"connection (?:refused|reset|aborted|closed)|econnrefused|econnreset"
            r"|enotfound|ehostunreach|enetunreach|epipe|eai_again|broken pipe|no such host"
            r"|network is unreachable|name or service not known|dial tcp|socket hang up"
            r"|failed to fetch|network ?error|ssl|tls handshake|getaddrinfo|host unreachable",
        ),
        (
            "api",
            r"\bstatus(?: code)?:? [45]\d\d\b|\bhttp [45]\d\d\b|rate limit|too many requests"
            r"|bad gateway|service unavailable|internal server error|\b5\d\d\b|api error",
        ),
        (
            "configuration",
            r"not configured|missing (?:config|setting|environment variable|env)"
            r"|improperly configured|environment variable|configuration|config (?:key|file)",
        ),
        (
            "validation",
            r"\binvalid\b|validation|must be|is required|required field|not a valid"
            r"|out of range|constraint",
        ),
    )
)

_GENERIC_TYPES = frozenset(
    "Exception Error RuntimeError OSError EnvironmentError RuntimeException Throwable "
    "BaseException StandardError *errors.errorString *fmt.wrapError *errors.joinError "
    "panic Panic SystemError".split()
)
_FOREIGN_MODULES = re.compile(r"^(?:builtins|exceptions|java|javax|jdk|sun|kotlin|scala)\b")


def _simple_name(exc_type: str) -> str:
    return exc_type.rpartition(".")[2] if not exc_type.startswith("*") else exc_type


@lru_cache(maxsize=16384)
def _keyword_rank(message: str) -> int:
    """Index in MESSAGE_PATTERNS of the first category whose keywords occur; len() if none."""
    for rank, (_, pattern) in enumerate(MESSAGE_PATTERNS):
        if pattern.search(message):
            return rank
    return len(MESSAGE_PATTERNS)


_REFINED = frozenset({"network", "business_logic"})  # refined by what the message says
_MODULE_PREFIXES = tuple((prefix, prefix + ".", category) for prefix, category in MODULE_CATEGORY)


def categorize(
    view: EventView, normalize: Callable[[str, CustomPatterns], str] = normalize_text
) -> str:
    # keywords are looked for in the normalized first line (cached; shared with the title,
    # when normalized by the same grouping version's ``normalize``)
    messages = []
    for exc in reversed(view.exceptions):  # outermost first
        exc_type = exc.type
        category = TYPE_CATEGORY.get(exc_type) or TYPE_CATEGORY.get(_simple_name(exc_type))
        if category:
            if category in _REFINED:
                rank = _keyword_rank(normalize(first_line(exc.value), ()))
                if rank < 2:  # memory, timeout
                    return MESSAGE_PATTERNS[rank][0]
            return category
        module = exc.module or exc_type.rpartition(".")[0]
        for prefix, dotted, module_category in _MODULE_PREFIXES:
            if module == prefix or module.startswith(dotted):
                return module_category
        messages.append(normalize(first_line(exc.value), ()))
    messages.append(normalize(first_line(view.message), ()))
    rank = min(map(_keyword_rank, messages))
    if rank < len(MESSAGE_PATTERNS):
        return MESSAGE_PATTERNS[rank][0]
    for exc in view.exceptions:
        if exc.type and exc.type not in _GENERIC_TYPES and _is_app_type(exc, view):
            return "business_logic"
    return "unknown"


def _is_app_type(exc: ExceptionView, view: EventView) -> bool:
    """A type defined by the application: its module is where in-app frames live."""
    module = exc.module or exc.type.rpartition(".")[0]
    if module and _FOREIGN_MODULES.match(module):
        return False
    app_roots = {f.raw_module.split(".")[0] for e in view.exceptions for f in e.app_frames}
    if module:
        return module.split(".")[0] in app_roots
    return bool(app_roots) and exc.type.endswith(("Error", "Exception"))
