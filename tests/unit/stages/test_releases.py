import pytest

from pipeline.stages.releases import compare_releases, is_at_least


@pytest.mark.parametrize(
    "a,b,want",
    [
        ("pkg@1.2.10", "pkg@1.2.9", 1),
        ("pkg@1.2.9", "pkg@1.2.10", -1),
        ("pkg@1.2", "pkg@1.2.0", 0),
        ("pkg@1.0.0-rc1", "pkg@1.0.0", -1),
        ("pkg@1.0.0-rc2", "pkg@1.0.0-rc10", -1),
        ("pkg@2.0.0+build5", "pkg@2.0.0+build7", 0),
        ("pkg@v3.1", "pkg@3.0.9", 1),
        ("a@1.0", "b@1.0", None),
        ("pkg@abc", "pkg@1.0", None),
    ],
)
def test_compare(a, b, want):
    assert compare_releases(a, b) == want


def test_is_at_least():
    assert is_at_least("pkg@1.2.10", None)
    assert is_at_least("pkg@1.2.10", "pkg@1.2.9")
    assert is_at_least("pkg@1.2.9", "pkg@1.2.9")
    assert not is_at_least("pkg@1.2.8", "pkg@1.2.9")
    assert not is_at_least(None, "pkg@1.2.9")
    assert not is_at_least("other@9", "pkg@1.2.9")
