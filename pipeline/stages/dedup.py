"""Exactly-once counting (pure decisions; the agent does the table I/O).

Two guards, both stored in the same partition as the state they protect:

* **event_id dedup window**: ``dedup[service|event_id] = [offset, minute, admission]`` is the
  repartition-topic offset where the event was first seen. A record with the same event_id at
  *another* offset is an upstream duplicate (producer retry, decode agent redelivery): not
  counted. At the *same* offset it is a replay of the first delivery after a worker crash.
* **per-value offset guard**: every state value remembers the offset of the last record it
  applied (``"o"``). A replayed record (offset <= ``o``) is not applied to it again. This makes
  counting exact no matter which of the changelog writes reached Kafka before a crash.

Entries leave the dedup window ``window`` minutes after they entered it, in the partition's
watermark minute (newest event minute seen), through ``EvictionQueue``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


def is_upstream_duplicate(seen: list | None, offset: int) -> bool:
    return seen is not None and seen[0] != offset


def should_apply(value: dict | None, offset: int) -> bool:
    """Whether a state value has not applied the record at ``offset`` yet."""
    return value is None or value.get("o", -1) < offset


class EvictionQueue:
    """Keys in the order they entered, each with the minute it entered; pops the expired."""

    __slots__ = ("_items", "horizon")

    def __init__(self, horizon: int, items: Iterable[tuple[int, str]] = ()) -> None:
        self.horizon = horizon  # minutes a key stays
        self._items: deque[tuple[int, str]] = deque(sorted(items))

    def __len__(self) -> int:
        return len(self._items)

    def push(self, minute: int, key: str) -> None:
        self._items.append((minute, key))

    def expired(self, now_minute: int) -> list[str]:
        """Keys that entered before ``now_minute - horizon``, removed from the queue."""
        out = []
        items = self._items
        cutoff = now_minute - self.horizon
        while items and items[0][0] < cutoff:
            out.append(items.popleft()[1])
        return out
