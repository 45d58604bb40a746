"""The control agent: lifecycle commands → every by-fingerprint partition.

A command names an issue by fingerprint, but a merge or an alias may have moved the issue to
another partition's key; so each validated command goes to every partition, and the one that
owns the issue applies it (``stages/commands.py``). An invalid command goes to the
dead-letter topic with the reason and its source offset. Acked once forwarded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from pipeline.control import CommandError, validate_command
from pipeline.faust_internals import PartitionGuard
from pipeline.stages.decode import Invalid, dead_letter
from pipeline.stages.records import command_line


class ControlAgent:
    def __init__(self, topics: dict[str, Any], partitions: int, guard: PartitionGuard) -> None:
        self.topics, self.partitions, self.guard = topics, partitions, guard

    async def run(self, stream: Any) -> None:
        stream = stream.noack()  # acked once forwarded (see ``PartitionGuard.admit``)
        async for event in stream.events():
            if not await self.guard.admit(event):
                continue
            await asyncio.gather(*await self.forward(event.message))
            self.guard.processed(event.message)
            await stream.ack(event)

    async def forward(self, msg: Any) -> list[asyncio.Future]:
        try:
            command = validate_command(orjson.loads(msg.value))
        except (orjson.JSONDecodeError, CommandError) as exc:
            source = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
            invalid = Invalid("command", str(exc))
            return [await self.topics["dlq"].send(value=dead_letter(msg.value, invalid, source))]
        value = command_line(command)
        key = command["fingerprint"].encode()
        by_fp = self.topics["by_fingerprint"]
        return [await by_fp.send(key=key, value=value, partition=p) for p in range(self.partitions)]
