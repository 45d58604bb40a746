"""Envelopes: many records in one Kafka message on the pipeline's internal topics.

The by-fingerprint and processed topics carry JSON Lines: one or more JSON records (orjson
output, which never contains a raw newline) joined by ``\\n``. A message with one record is
a one-line envelope, so single records (control commands, older producers, tests) need no
special case. Packing the records bound for one partition into one message divides the
per-message cost of the stream framework by the envelope size.

Every record in an envelope belongs to the partition the envelope was sent to: the records
are grouped with ``partition_for`` — the same murmur2 hash as Kafka's default partitioner —
so an issue's events meet in one partition whether they came keyed one by one or enveloped.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

from aiokafka.partitioner import murmur2

SEPARATOR = b"\n"


MAX_ENVELOPE_BYTES = 512 * 1024  # well under Kafka's default 1 MiB message and request limits


def pack(lines: list[bytes]) -> bytes:
    """One envelope from serialized records (each a JSON object without raw newlines)."""
    return SEPARATOR.join(lines)


def packed(lines: list[bytes], max_bytes: int = MAX_ENVELOPE_BYTES) -> list[bytes]:
    """Envelopes of at most ``max_bytes`` each (a single larger record gets its own), in
    order."""
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) + 1 > max_bytes:
            out.append(pack(chunk))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        out.append(pack(chunk))
    return out


def unpack(value: bytes) -> list[bytes]:
    """The records of an envelope, as serialized bytes; empty lines are ignored."""
    return [line for line in value.split(SEPARATOR) if line]


def count(value: bytes) -> int:
    """How many records an envelope holds, without parsing it."""
    return value.count(SEPARATOR) + 1 if value else 0


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partition for ``key`` (murmur2, positive, modulo the count)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def group_by_partition(
    items: list[tuple[bytes, bytes]], partitions: int
) -> dict[int, tuple[bytes, list[bytes]]]:
    """(key, line) pairs → partition → (first key, lines), keeping each key's order."""
    out: dict[int, tuple[bytes, list[bytes]]] = {}
    lines_of: dict[int, list[bytes]] = defaultdict(list)
    for key, line in items:
        p = partition_for(key, partitions)
        if p not in out:
            out[p] = (key, lines_of[p])
        lines_of[p].append(line)
    return out


# The stateful stage's guards (dedup window, per-value offset guard) need a position that is
# unique and increasing within a partition: the message offset alone no longer is, since an
# envelope holds many records. Records are numbered inside their envelope.
POSITIONS_PER_OFFSET = 1 << 20  # > the largest envelope (decode_batch_size is capped below)


def position(offset: int, index: int) -> int:
    """The record's position in its partition: offset-major, index-minor."""
    return offset * POSITIONS_PER_OFFSET + index
