"""Which offsets of the alerts topic may be committed.

Every consumed alert is recorded with the number of deliveries it waits for (one per matching
route). A delivery finishes when its message was delivered or dead-lettered; an alert held in
a digest buffer is unfinished until the digest goes out. A partition's committable offset is
its lowest unfinished offset, or the offset after the last consumed one when nothing is
unfinished — so a crash replays every alert that was not finished, and at most the finished
ones consumed after it (receivers dedupe those by ``alert_id``). Pure: no Kafka here.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

Token = tuple[Hashable, int]  # (partition, offset)


class OffsetLedger:
    def __init__(self) -> None:
        self._waiting: dict[Hashable, dict[int, int]] = {}  # partition → offset → deliveries
        self._next: dict[Hashable, int] = {}  # partition → last consumed offset + 1
        self._committed: dict[Hashable, int] = {}

    def consumed(self, partition: Hashable, offset: int, deliveries: int) -> Token:
        """Record a consumed alert that waits for ``deliveries`` deliveries (0: finished)."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        if deliveries > 0:
            self._waiting.setdefault(partition, {})[offset] = deliveries
        return (partition, offset)

    def finished(self, token: Token) -> None:
        """One delivery of the alert ``token`` was delivered or dead-lettered."""
        partition, offset = token
        waiting = self._waiting.get(partition)
        if waiting is None or offset not in waiting:
            return  # its partition was revoked meanwhile
        waiting[offset] -= 1
        if waiting[offset] <= 0:
            del waiting[offset]

    def is_waiting(self, token: Token) -> bool:
        partition, offset = token
        return offset in self._waiting.get(partition, {})

    def committable(self) -> dict[Hashable, int]:
        out = {}
        for partition, next_offset in self._next.items():
            waiting = self._waiting.get(partition)
            out[partition] = min(waiting) if waiting else next_offset
        return out

    def to_commit(self) -> dict[Hashable, int]:
        """Committable offsets that moved since ``committed`` was last called with them."""
        return {p: o for p, o in self.committable().items() if self._committed.get(p) != o}

    def committed(self, offsets: dict[Hashable, int]) -> None:
        self._committed.update(offsets)

    def pending(self) -> int:
        """Alerts consumed and not finished."""
        return sum(len(w) for w in self._waiting.values())

    def forget(self, partitions: Iterable[Hashable]) -> None:
        """Partitions revoked: their unfinished alerts belong to the next owner now."""
        for p in partitions:
            self._waiting.pop(p, None)
            self._next.pop(p, None)
            self._committed.pop(p, None)
