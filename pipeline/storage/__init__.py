"""ClickHouse access: one backend interface over embedded chDB or a ClickHouse server."""

from pipeline.storage.backend import (
    Backend,
    ChdbBackend,
    ClickHouseUnavailable,
    ServerBackend,
    StorageError,
    open_backend,
)

__all__ = [
    "Backend",
    "ChdbBackend",
    "ClickHouseUnavailable",
    "ServerBackend",
    "StorageError",
    "open_backend",
]
