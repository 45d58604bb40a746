import pytest

from pipeline.grouping import CATEGORIES, GroupingConfig, group_event


def exc_event(exc_type, value="", module=None, frames=None, message=None):
    exc = {"type": exc_type, "value": value}
    if module:
        exc["module"] = module
    if frames:
        exc["stacktrace"] = {"frames": frames}
    event = {"service": "s", "exception": {"values": [exc]}}
    if message:
        event["message"] = message
    return event


def category(event):
    return group_event(event, GroupingConfig()).category


def test_the_category_set_is_exactly_the_documented_one():
    assert CATEGORIES == (
        "authentication", "api", "network", "file_io", "parsing", "memory", "timeout",
        "configuration", "dependency", "business_logic", "validation", "unknown",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("exc_type", "value", "expected"),
    [
        # Python
        ("ExpiredSignatureError", "Signature has expired", "authentication"),
        ("HTTPError", "503 Server Error", "api"),
        ("ConnectionRefusedError", "[Errno 111] Connection refused", "network"),
        ("ConnectionError", "Connection to 10.0.0.1 timed out", "timeout"),
        ("FileNotFoundError", "[Errno 2] No such file or directory: '/x'", "file_io"),
        ("JSONDecodeError", "Expecting value: line 1 column 1 (char 0)", "parsing"),
        ("MemoryError", "", "memory"),
        ("TimeoutError", "", "timeout"),
        ("ImproperlyConfigured", "SECRET_KEY must not be empty", "configuration"),
        ("ModuleNotFoundError", "No module named 'foo'", "dependency"),
        ("KeyError", "'user_id'", "business_logic"),
        ("ValidationError", "1 validation error for Order", "validation"),
        ("requests.exceptions.ReadTimeout", "Read timed out", "timeout"),
        # JavaScript / node
        ("TypeError", "Cannot read properties of undefined (reading 'x')", "business_logic"),
        ("SyntaxError", "Unexpected token < in JSON at position 0", "parsing"),
        ("RangeError", "Maximum call stack size exceeded", "memory"),
        ("RangeError", "toFixed() digits argument must be between 0 and 100", "business_logic"),
        ("Error", "Cannot find module 'express'", "dependency"),
        ("Error", "connect ECONNREFUSED 127.0.0.1:6379", "network"),
        ("Error", "ENOENT: no such file or directory, open 'a.txt'", "file_io"),
        ("Error", "Request failed with status code 502", "api"),
        ("ChunkLoadError", "Loading chunk 12 failed.", "dependency"),
        ("AxiosError", "Request failed with status code 404", "api"),
        # Java
        ("java.lang.OutOfMemoryError", "Java heap space", "memory"),
        ("java.net.SocketTimeoutException", "Read timed out", "timeout"),
        ("java.net.UnknownHostException", "db.internal", "network"),
        ("com.fasterxml.jackson.core.JsonParseException", "Unexpected character", "parsing"),
        ("java.lang.IllegalArgumentException", "amount must be positive", "validation"),
        ("java.lang.ClassNotFoundException", "com.acme.Plugin", "dependency"),
        (
            "org.springframework.security.access.AccessDeniedException",
            "Access is denied",
            "authentication",
        ),
        ("java.io.FileNotFoundException", "/data/x (No such file)", "file_io"),
        ("java.lang.NullPointerException", "", "business_logic"),
        # Go
        ("*net.OpError", "dial tcp 10.0.0.1:5432: connect: connection refused", "network"),
        ("*errors.errorString", "context deadline exceeded", "timeout"),
        ("*fs.PathError", "open /etc/app.yaml: no such file or directory", "file_io"),
        ("*json.SyntaxError", "invalid character '}' looking for beginning of value", "parsing"),
        ("*errors.errorString", "runtime: out of memory", "memory"),
        ("*errors.errorString", "missing environment variable DATABASE_URL", "configuration"),
        ("*errors.errorString", "something odd happened", "unknown"),
    ],
)
def test_category_table(exc_type, value, expected):
    assert category(exc_event(exc_type, value)) == expected


def test_module_of_the_type_decides_when_the_name_is_unknown():
    assert category(exc_event("InvalidURL", "x", module="requests.exceptions")) == "network"
    assert category(exc_event("DecodeError", "x", module="jwt.exceptions")) == "authentication"


def test_application_defined_errors_are_business_logic():
    frames = [{"module": "shop.orders", "function": "place", "in_app": True}]
    event = exc_event("InsufficientStock", "sku 12 has 0 left", module="shop.errors", frames=frames)
    assert category(event) == "business_logic"
    foreign = exc_event("WeirdThing", "x", module="somelib.errors", frames=frames)
    assert category(foreign) == "unknown"


def test_log_messages_are_categorized_by_keywords():
    assert category({"service": "s", "message": "JWT expired for user 12"}) == "authentication"
    assert category({"service": "s", "message": "No space left on device"}) == "file_io"
    assert category({"service": "s", "message": "all good"}) == "unknown"
