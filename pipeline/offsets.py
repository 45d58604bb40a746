"""The issues agent's own record of the next offset it must process, per partition.

faust drops a record whose offset is below the partition's *read offset*, and moves the
read offset forward with every record it hands out. After table recovery it seeks the stream
partitions back to their committed offsets, but records fetched around that seek are still
handed out and move the read offset past the re-fetched ones, which are then dropped; faust
also records the jump as a "gap" and counts gap offsets as acked, so the commit would pass
records nobody processed. A backlog at a restart or a rebalance is enough to trigger it.

The agent therefore processes only the offset it expects next: a record below it was already
processed (a stale copy: skipped), a record above it means records were dropped on the way
(a gap: the agent seeks the partition back to the expected offset and skips until it arrives).
The by-fingerprint topic is written without transactions and is not compacted, so its
offsets have no legitimate gaps. This module decides; the agent does the seeking.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import Enum

__all__ = ["OffsetGuard", "Verdict"]


class Verdict(Enum):
    PROCESS = "process"
    STALE = "stale"  # below the expected offset: already processed in this assignment
    GAP = "gap"  # above it: the records in between were dropped before reaching the agent


class OffsetGuard:
    def __init__(self, reseek_after: float = 0.5) -> None:
        self.expected: dict[Hashable, int] = {}
        self.rewinding: dict[Hashable, float] = {}  # partition -> time of the last seek
        self.reseek_after = reseek_after

    def knows(self, tp: Hashable) -> bool:
        return tp in self.expected

    def start(self, tp: Hashable, offset: int) -> None:
        """The first offset to process after an assignment (the committed offset)."""
        self.expected[tp] = offset
        self.rewinding.pop(tp, None)

    def check(self, tp: Hashable, offset: int) -> Verdict:
        expected = self.expected[tp]
        if offset == expected:
            return Verdict.PROCESS
        return Verdict.STALE if offset < expected else Verdict.GAP

    def processed(self, tp: Hashable, offset: int) -> None:
        self.expected[tp] = offset + 1
        self.rewinding.pop(tp, None)

    def seek_due(self, tp: Hashable, now: float) -> bool:
        """Whether to seek ``tp`` back now: on the first gap, and again if the expected
        record has not arrived ``reseek_after`` seconds after the last seek (records fetched
        before a seek can move faust's read offset past it again)."""
        last = self.rewinding.get(tp)
        return last is None or now - last >= self.reseek_after

    def sought(self, tp: Hashable, now: float) -> None:
        self.rewinding[tp] = now

    def overdue(self, now: float) -> list[Hashable]:
        """Partitions still waiting for their expected record after a seek."""
        return [tp for tp, last in self.rewinding.items() if now - last >= self.reseek_after]

    def stalled(self, highwaters: dict, idle_for: float, idle_after: float = 1.0) -> list:
        """Partitions whose log holds records the agent has not processed while the agent has
        received nothing for ``idle_after`` seconds: faust dropped records and nothing newer
        arrived to show the gap (e.g. the tail of a partition after a restart). ``highwaters``
        maps each assigned partition to its next offset to be written (or None, unknown);
        partitions the agent has not seen since the assignment are not judged here."""
        if idle_for < idle_after:
            return []
        return [
            tp
            for tp, high in highwaters.items()
            if high is not None and tp in self.expected and self.expected[tp] < high
        ]

    def forget(self, tps: set) -> None:
        """Revoked or newly assigned partitions start again from their committed offset."""
        for tp in tps:
            self.expected.pop(tp, None)
            self.rewinding.pop(tp, None)
