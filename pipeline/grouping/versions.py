"""The registry of grouping algorithm versions.

A version names a function ``EventView, GroupingConfig -> DefaultGrouping`` that computes the
*default* grouping (what ``{{ default }}`` means). Custom and rule fingerprints are layered on
top by ``engine.py`` and do not depend on the version. A new algorithm is added by writing
its function and registering it under a new name; existing versions are never changed, since
changing one would split every issue grouped by it (see "Changing the grouping version" in
docs/grouping.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pipeline.grouping.slots import slot_setters

if TYPE_CHECKING:
    from pipeline.grouping.config import GroupingConfig
    from pipeline.grouping.event import EventView


@dataclass(frozen=True, slots=True)
class DefaultGrouping:
    variant: str
    components: tuple[str, ...]


_set_variant, _set_components = slot_setters(DefaultGrouping, ("variant", "components"))


def new_default(variant: str, components: tuple[str, ...]) -> DefaultGrouping:
    """``DefaultGrouping(variant, components)`` through its slots (see ``slots.py``)."""
    default = object.__new__(DefaultGrouping)
    _set_variant(default, variant)
    _set_components(default, components)
    return default


@dataclass(frozen=True)
class GroupingAlgorithm:
    """A grouping version: its ``compute`` and what it reads events with.

    ``frames``: how the version reads frames (``(raw frames, platform, overrides,
    app_only=False) -> FrameView``s; ``None``: v1's reader). ``normalize``: its message
    parameterization (``(text, custom_patterns) -> str``; ``None``: v1's), used for the
    fingerprint, the title and ``{{ message }}``. ``hash_namespace``: the prefix of its default
    hashes (``<namespace>:<variant>``; empty: the version's name). A version that shares an
    older version's namespace gives an event the *same* fingerprint whenever it computes the
    same components, so events the new version does not change keep their issues even
    without a transition.
    """

    version: str
    compute: Callable[[EventView, GroupingConfig], DefaultGrouping]
    description: str = ""
    frames: Callable[..., tuple[Any, ...]] | None = None
    normalize: Callable[[str, tuple[tuple[str, str], ...]], str] | None = None
    hash_namespace: str = ""


_ALGORITHMS: dict[str, GroupingAlgorithm] = {}


def register_algorithm(algorithm: GroupingAlgorithm, *, replace: bool = False) -> None:
    if algorithm.version in _ALGORITHMS and not replace:
        raise ValueError(f"grouping version {algorithm.version!r} is already registered")
    _ALGORITHMS[algorithm.version] = algorithm


def unregister_algorithm(version: str) -> None:
    _ALGORITHMS.pop(version, None)


def get_algorithm(version: str) -> GroupingAlgorithm:
    algorithm = _ALGORITHMS.get(version)
    if algorithm is not None:
        return algorithm
    _load_builtin()
    try:
        return _ALGORITHMS[version]
    except KeyError:
        known = ", ".join(sorted(_ALGORITHMS)) or "none"
        raise ValueError(f"unknown grouping version {version!r} (known: {known})") from None


def registered_versions() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(_ALGORITHMS))


def _load_builtin() -> None:
    if "v1" not in _ALGORITHMS:
        from pipeline.grouping import strategies_v1

        register_algorithm(strategies_v1.ALGORITHM, replace=True)
    if "v2" not in _ALGORITHMS:
        from pipeline.grouping import strategies_v2

        register_algorithm(strategies_v2.ALGORITHM, replace=True)


@lru_cache(maxsize=16384)
def hash_components(namespace: str, components: tuple[str, ...]) -> str:
    """32 hex chars of blake2b over the namespace and the components.

    Deterministic across processes, machines and PYTHONHASHSEED (never ``hash()``).
    Cached: many events of an issue hash the same components.
    """
    # the same bytes as updating with the namespace, then b"\x1e" and each component in turn
    data = namespace.encode()
    if components:
        data += ("\x1e" + "\x1e".join(components)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()
