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

    def newest_minute(self) -> int:
        return max((m for m, _ in self._items), default=0)

    def expired(self, now_minute: int) -> list[str]:
        """Keys that entered before ``now_minute - horizon``, removed from the queue."""
        out = []
        items = self._items
        cutoff = now_minute - self.horizon
        while items and items[0][0] < cutoff:
            out.append(items.popleft()[1])
        return out


class DedupWindow:
    """One partition's event_id dedup window: an in-memory index, persisted as one table key
    per envelope — ``table["<p>|b|<offset>"] = {"m": minute, "e": {dedup key: entry}}`` — so
    the window costs one changelog message per envelope instead of one per event.

    Built from the table's entries for the partition (after start, recovery or a rebalance);
    an entry of the earlier one-key-per-event form (``key → [position, minute, admission]``)
    is read too. ``expired`` returns the table keys to delete.
    """

    __slots__ = ("index", "members", "queue", "pending", "pending_minute")

    def __init__(self, horizon: int, items: Iterable[tuple[str, object]] = ()) -> None:
        self.index: dict[str, list] = {}
        self.members: dict[str, list[str]] = {}
        self.pending: dict[str, list] = {}
        self.pending_minute = 0
        queued = []
        for key, value in items:
            if isinstance(value, list):  # one key per event
                self.index[key] = value
                self.members[key] = [key]
                queued.append((value[1], key))
            elif isinstance(value, dict):
                entries = value["e"]
                self.index.update(entries)
                self.members[key] = list(entries)
                queued.append((value["m"], key))
        self.queue = EvictionQueue(horizon, queued)

    def newest_minute(self) -> int:
        return self.queue.newest_minute()

    def get(self, dedup_key: str) -> list | None:
        return self.index.get(dedup_key)

    def add(self, dedup_key: str, entry: list) -> None:
        """A first-seen event (entry = [position, watermark minute, admission code])."""
        self.index[dedup_key] = entry
        self.pending[dedup_key] = entry
        self.pending_minute = max(self.pending_minute, entry[1])

    def take_batch(self, table_key: str) -> dict | None:
        """The envelope's new entries as one table value (None when there are none)."""
        if not self.pending:
            return None
        value = {"m": self.pending_minute, "e": self.pending}
        self.members[table_key] = list(self.pending)
        self.queue.push(self.pending_minute, table_key)
        self.pending, self.pending_minute = {}, 0
        return value

    def expired(self, now_minute: int) -> list[str]:
        """Table keys whose entries left the window (their index entries are gone too)."""
        out = []
        for table_key in self.queue.expired(now_minute):
            for dedup_key in self.members.pop(table_key, ()):
                self.index.pop(dedup_key, None)
            out.append(table_key)
        return out
