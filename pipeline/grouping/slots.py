"""Set the fields of a frozen slots dataclass directly (for hot constructors).

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which costs
about as much again as the rest of building the object. For the objects made once per event
(``EventView``, ``GroupingResult``) the engine builds them with ``object.__new__`` and the
slots' own setters instead: the same object, equal to the one the constructor makes.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    """The slot setters of ``cls``'s fields, which must be exactly ``names`` in order."""
    if names != tuple(f.name for f in fields(cls)):
        raise TypeError(f"{cls.__name__}: the fast constructor is out of date with its fields")
    return tuple(cls.__dict__[name].__set__ for name in names)
