"""A per-batch write-back cache over a table-like mapping.

The issues agent processes events in batches: every read goes through the cache, every write
stays in it, and ``flush()`` writes each changed key to the table once. A key touched by
1,000 events of one batch costs one changelog message instead of 1,000. Pure: the backing
object only needs ``get``, ``__setitem__``, ``__delitem__`` and ``__contains__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_DELETED = object()
_MISSING = object()


class TableCache:
    """``context()`` (optional) names what each write belongs to — for faust, the event whose
    partition the changelog message must go to; ``flush(enter)`` calls ``enter(context)``
    before writing each key."""

    __slots__ = ("table", "local", "dirty", "context")

    def __init__(self, table: Any, context: Callable[[], Any] | None = None) -> None:
        self.table = table
        self.local: dict[Any, Any] = {}
        self.dirty: dict[Any, Any] = {}  # key → context of its last write
        self.context = context or (lambda: None)

    def get(self, key: Any, default: Any = None) -> Any:
        local = self.local
        if key in local:
            value = local[key]
        else:
            value = local[key] = self.table.get(key)
        if value is _DELETED or value is None:
            return default
        return value

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.local[key] = value
        self.dirty[key] = self.context()

    def __delitem__(self, key: Any) -> None:
        self.local[key] = _DELETED
        self.dirty[key] = self.context()

    def __contains__(self, key: Any) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def flush(self, enter: Callable[[Any], None] | None = None) -> int:
        """Write every changed key to the table once; returns the number of writes."""
        table = self.table
        writes = 0
        for key, context in self.dirty.items():
            if enter is not None:
                enter(context)
            value = self.local[key]
            if value is _DELETED:
                if key in table:
                    del table[key]
                    writes += 1
            else:
                table[key] = value
                writes += 1
        self.local.clear()
        self.dirty.clear()
        return writes

    def clear(self) -> None:
        """Forget unwritten changes (after a rebalance took the partitions)."""
        self.local.clear()
        self.dirty.clear()
