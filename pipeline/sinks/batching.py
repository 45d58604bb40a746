"""Size-OR-time batching of consumed messages (pure: no Kafka, no ClickHouse).

Size is counted in records: a message may be an envelope of several (pipeline/stages/
envelope.py). A ``Batch`` holds messages in arrival order and, per partition, the next offset to commit
once the batch is in ClickHouse. ``Batcher`` closes a batch when it holds ``max_size``
messages or its first message is ``max_time`` seconds old, whichever comes first — or at
once when it holds an urgent message (an issue's state after a person's command: people
wait for it, and commands are rare).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Message(NamedTuple):
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass
class Batch:
    messages: list[Message] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to commit
    started: float = 0.0
    records: int = 0  # an envelope message holds several records
    urgent: bool = False

    def add(self, message: Message, now: float, records: int = 1, urgent: bool = False) -> None:
        if not self.messages:
            self.started = now
        self.messages.append(message)
        self.records += records
        self.urgent = self.urgent or urgent
        self.offsets[(message.topic, message.partition)] = message.offset + 1

    def __len__(self) -> int:
        """Records in the batch (what a ClickHouse insert's size is measured in)."""
        return self.records

    def age(self, now: float) -> float:
        return now - self.started if self.messages else 0.0


class Batcher:
    def __init__(self, max_size: int, max_time: float) -> None:
        if max_size < 1 or max_time <= 0:
            raise ValueError("max_size must be >= 1 and max_time > 0")
        self.max_size = max_size
        self.max_time = max_time
        self.pending = Batch()

    def room(self) -> int:
        """How many more records the open batch takes."""
        return self.max_size - len(self.pending)

    def add(self, message: Message, now: float, records: int = 1, urgent: bool = False) -> None:
        """Add one message (holding ``records`` records) to the open batch; the caller
        polls at most ``room()`` messages, so a batch of envelopes can end a little over
        ``max_size``, by less than one poll."""
        self.pending.add(message, now, records, urgent)

    def due(self, now: float) -> bool:
        return bool(self.pending.messages) and (
            self.pending.urgent
            or len(self.pending) >= self.max_size
            or self.pending.age(now) >= self.max_time
        )

    def wait_time(self, now: float) -> float:
        """Seconds until the open batch is due by time (``max_time`` when it is empty)."""
        if not self.pending.messages:
            return self.max_time
        if self.pending.urgent:
            return 0.0
        return max(0.0, self.max_time - self.pending.age(now))

    def take(self) -> Batch | None:
        batch, self.pending = self.pending, Batch()
        return batch if batch.messages else None

    def take_if_due(self, now: float) -> Batch | None:
        return self.take() if self.due(now) else None

    def clear(self) -> list[Any]:
        """Drop the open batch (its partitions were revoked: the new owner replays it)."""
        dropped, self.pending = self.pending.messages, Batch()
        return dropped
