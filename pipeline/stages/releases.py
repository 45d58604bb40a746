"""Release comparison (pure): ``pkg@1.2.10`` > ``pkg@1.2.9``, ``1.0.0-rc1`` < ``1.0.0``.

A release is ``[package@]version[+build]``. Versions compare part by part: numbers as numbers,
other parts as text, a pre-release (``-rc1``) before its release; the build is ignored.
Releases of different packages, or that do not parse, are *not comparable* (``None``).
"""

from __future__ import annotations

import re
from functools import lru_cache

_PART = re.compile(r"\d+|[A-Za-z]+")


@lru_cache(maxsize=4096)
def release_key(release: str) -> tuple[str, tuple, tuple] | None:
    package, _, version = release.rpartition("@")
    version = version.split("+", 1)[0].lstrip("vV")
    main, _, pre = version.partition("-")
    if not main or not main[0].isdigit():
        return None
    parts = tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in _PART.findall(main))
    pre_parts = tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in _PART.findall(pre))
    # a pre-release sorts before the release: (0, parts) < (1, ())
    return package, parts, ((0, pre_parts) if pre else (1, ()))


def compare_releases(a: str, b: str) -> int | None:
    """-1, 0 or 1 like ``a <=> b``; ``None`` when the two are not comparable."""
    if a == b:
        return 0
    ka, kb = release_key(a), release_key(b)
    if ka is None or kb is None or ka[0] != kb[0]:
        return None
    # pad the shorter version with zeros: 1.2 == 1.2.0
    pa, pb = ka[1], kb[1]
    width = max(len(pa), len(pb))
    zero = (0, 0, "")
    ta = (pa + (zero,) * (width - len(pa)), ka[2])
    tb = (pb + (zero,) * (width - len(pb)), kb[2])
    return (ta > tb) - (ta < tb)


def is_at_least(release: str | None, floor: str | None) -> bool:
    """Whether an event from ``release`` may reopen an issue resolved in ``floor``.

    No floor → yes. A floor but no release, or releases that are not comparable → no: an event
    that cannot be shown to come from the fixed release or later must not reopen the issue.
    """
    if not floor:
        return True
    if not release:
        return False
    cmp = compare_releases(release, floor)
    return cmp is not None and cmp >= 0
