"""Similar issues (pure): a MinHash signature over shingles of an issue's grouping components.

    shingles   each grouping component whole (``type:KeyError``, ``frame:app.x|handler|...``,
               ``message:Connection to db <ip> timed out``) plus the word 3-grams of each
               component and of the title (so two messages or frames that differ in one
               word still share most shingles)
    signature  for each of ``PERMUTATIONS`` fixed hash functions h_i(x) = (a_i·x + b_i) mod p
               over a 64-bit blake2b of the shingle, the minimum; kept as 32-bit integers
    score      the fraction of equal positions of two signatures: an unbiased estimate of
               the Jaccard similarity of the two shingle sets (standard error ≈ sqrt(J(1-J)/k))

Deterministic: the constants come from blake2b of their index, never from a random state,
so a signature computed by any process, today or after an upgrade, compares with any other.
The decoder computes one signature per fingerprint (``SignatureMemo``: the first event of
a fingerprint in the process carries it in ``_meta.signature``); the sink stores it in
``issue_signatures``, and the similar-issues query compares one issue's signature with the
others' in SQL.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence

PERMUTATIONS = 64
PRIME = (1 << 61) - 1
MASK32 = (1 << 32) - 1
_WORD = re.compile(r"[^\W_]+|<[a-z_]+>", re.UNICODE)


def _constant(label: str, i: int) -> int:
    digest = hashlib.blake2b(f"errorstream-minhash:{label}:{i}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % PRIME


_A = tuple(_constant("a", i) | 1 for i in range(PERMUTATIONS))
_B = tuple(_constant("b", i) for i in range(PERMUTATIONS))


def shingle_hash(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big")


def _grams(text: str, n: int = 3) -> list[str]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def shingles(components: Iterable[str], title: str = "") -> set[str]:
    """The shingle set of an issue: components whole and the word 3-grams of each component
    and of the title."""
    out: set[str] = set()
    for component in components:
        if not component:
            continue
        out.add(component)
        kind = component.split(":", 1)[0]
        out.update(f"{kind}~{gram}" for gram in _grams(component))
    if title:
        out.update(f"title~{gram}" for gram in _grams(title))
    return out


def minhash(items: Iterable[str]) -> list[int]:
    """The signature of a shingle set (``PERMUTATIONS`` 32-bit integers); an empty set gives
    the all-ones signature (it scores 1.0 only against another empty set)."""
    hashes = [shingle_hash(s) % PRIME for s in set(items)]
    if not hashes:
        return [MASK32] * PERMUTATIONS
    return [min((a * x + b) % PRIME for x in hashes) & MASK32 for a, b in zip(_A, _B, strict=True)]


def signature(components: Sequence[str], title: str = "") -> list[int]:
    return minhash(shingles(components, title))


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity: the share of equal positions (0..1)."""
    if len(a) != len(b) or not a:
        raise ValueError("signatures of different lengths cannot be compared")
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


class SignatureMemo:
    """Which fingerprints this process has already sent a signature for (bounded, least
    recently seen forgotten first). ``first(fp)`` is True once per fingerprint while it is
    remembered; a forgotten or restarted process sends it again, which the table
    (ReplacingMergeTree by fingerprint) keeps once."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first(self, fingerprint: str) -> bool:
        seen = self._seen
        if fingerprint in seen:
            seen.move_to_end(fingerprint)
            return False
        seen[fingerprint] = None
        if len(seen) > self.capacity:
            seen.popitem(last=False)
        return True
