"""The per-batch write-back cache: reads see the batch's own writes; each key is written once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.stages.state_cache import TableCache


class CountingTable(dict):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes: list[tuple[str, object]] = []

    def __setitem__(self, key, value):
        self.writes.append(("set", key))
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.writes.append(("del", key))
        super().__delitem__(key)


def test_reads_see_writes_and_each_key_is_written_once():
    table = CountingTable(a=1)
    cache = TableCache(table)
    for i in range(100):
        cache["a"] = cache.get("a") + 1
        cache["b"] = i
    assert cache["a"] == 101 and cache.get("b") == 99
    assert table == {"a": 1}  # nothing written before the flush
    assert cache.flush() == 2
    assert table == {"a": 101, "b": 99}
    assert sorted(table.writes) == [("set", "a"), ("set", "b")]


def test_delete_then_flush_removes_and_missing_keys_are_not_written():
    table = CountingTable(a=1)
    cache = TableCache(table)
    del cache["a"]
    assert "a" not in cache and cache.get("a") is None
    del cache["never"]
    cache.flush()
    assert table == {} and table.writes == [("del", "a")]


def test_flush_enters_the_context_of_each_keys_last_write():
    contexts = iter(["e1", "e2", "e3"])
    current = {"ctx": None}

    def context():
        return current["ctx"]

    table = CountingTable()
    cache = TableCache(table, context)
    for key in ("x", "y", "x"):
        current["ctx"] = next(contexts)
        cache[key] = current["ctx"]
    entered = []
    cache.flush(entered.append)
    assert sorted(entered) == ["e2", "e3"]  # x last written under e3, y under e2
    assert table == {"x": "e3", "y": "e2"}


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers() | st.none())))
def test_same_end_state_as_writing_through(ops):
    direct: dict = {}
    table: dict = {}
    cache = TableCache(table)
    for key, value in ops:
        if value is None:
            direct.pop(key, None)
            if key in cache:
                del cache[key]
        else:
            direct[key] = value
            cache[key] = value
    cache.flush()
    assert table == direct
