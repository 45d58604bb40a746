"""A small HyperLogLog (pure): approximate distinct users with bounded memory.

``p = 8`` → 256 registers, stored as a 256-character ASCII string (register value + 48) so it
serializes into a JSON table value as is. Standard error ``1.04 / sqrt(256) ≈ 6.5 %``; small
cardinalities use linear counting, which is nearly exact below a few dozen distinct users.
"""

from __future__ import annotations

import hashlib
import math

P = 8
M = 1 << P
_EMPTY = "0" * M
_ALPHA = 0.7213 / (1 + 1.079 / M)
_REST_BITS = 64 - P
STANDARD_ERROR = 1.04 / math.sqrt(M)


def empty() -> str:
    return _EMPTY


def hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


def add_hash(registers: str, h: int) -> str:
    """The registers after adding a 64-bit hash (the same string when nothing changed)."""
    index = h >> _REST_BITS
    rest = h & ((1 << _REST_BITS) - 1)
    rho = _REST_BITS - rest.bit_length() + 1
    if ord(registers[index]) - 48 >= rho:
        return registers
    return registers[:index] + chr(48 + rho) + registers[index + 1 :]


def merge(a: str, b: str) -> str:
    return "".join(max(x, y) for x, y in zip(a, b, strict=True))


def estimate(registers: str) -> int:
    values = [ord(c) - 48 for c in registers]
    zeros = values.count(0)
    raw = _ALPHA * M * M / sum(2.0**-v for v in values)
    if raw <= 2.5 * M and zeros:
        return round(M * math.log(M / zeros))
    return round(raw)
