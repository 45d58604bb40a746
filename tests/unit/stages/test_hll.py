import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.stages import hll


def fill(values):
    regs = hll.empty()
    for v in values:
        regs = hll.add_hash(regs, hll.hash64(v))
    return regs


def test_small_cardinalities_are_nearly_exact():
    for n in (0, 1, 5, 20):
        assert abs(hll.estimate(fill(f"u{i}" for i in range(n))) - n) <= max(1, n * 0.05)


@pytest.mark.parametrize("n", [100, 1000, 10_000, 100_000])
def test_error_within_three_standard_errors(n):
    est = hll.estimate(fill(f"user-{n}-{i}" for i in range(n)))
    assert abs(est - n) / n <= 3 * hll.STANDARD_ERROR


def test_memory_is_bounded_and_serializable():
    regs = fill(f"u{i}" for i in range(50_000))
    assert len(regs) == hll.M and regs.isascii()


@given(st.lists(st.text(max_size=8), max_size=60), st.lists(st.text(max_size=8), max_size=60))
def test_merge_is_the_union_and_duplicates_do_not_count(a, b):
    assert hll.merge(fill(a), fill(b)) == fill(a + b)
    assert fill(a + a) == fill(a)


def test_add_returns_the_same_string_when_nothing_changes():
    regs = fill(["x"])
    assert hll.add_hash(regs, hll.hash64("x")) is regs
