"""errorstream producer SDK: capture errors in any Python service and publish them to Kafka.

    import errorstream_sdk
    errorstream_sdk.init(service="checkout")      # or ERRORSTREAM_SERVICE=checkout
    errorstream_sdk.capture_exception()          # inside an except block

Needs only aiokafka and orjson. See producers/README.md.
"""

from errorstream_sdk.api import (
    add_breadcrumb,
    capture_exception,
    capture_message,
    close,
    flush,
    flush_async,
    get_client,
    init,
    set_tag,
    set_user,
    stats,
)
from errorstream_sdk.asgi import ErrorstreamASGIMiddleware
from errorstream_sdk.config import Settings
from errorstream_sdk.decorators import capture_errors
from errorstream_sdk.event import SDK_NAME, SDK_VERSION
from errorstream_sdk.hooks import install_asyncio_handler, install_excepthooks
from errorstream_sdk.log_handler import ErrorstreamHandler
from errorstream_sdk.wsgi import ErrorstreamWSGIMiddleware

__version__ = SDK_VERSION

__all__ = [
    "SDK_NAME",
    "ErrorstreamASGIMiddleware",
    "ErrorstreamHandler",
    "ErrorstreamWSGIMiddleware",
    "Settings",
    "add_breadcrumb",
    "capture_errors",
    "capture_exception",
    "capture_message",
    "close",
    "flush",
    "flush_async",
    "get_client",
    "init",
    "install_asyncio_handler",
    "install_excepthooks",
    "set_tag",
    "set_user",
    "stats",
]
