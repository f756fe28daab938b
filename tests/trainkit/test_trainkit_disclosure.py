"""Small-count suppression."""

import pytest

from trainkit import suppress_small_count, suppress_small_counts


@pytest.mark.parametrize(("count", "k", "expected"), [(0, 5, 0), (1, 5, None), (4, 5, None), (5, 5, 5), (3, 1, 3)])
def test_suppress_small_count(count: int, k: int, expected: int | None) -> None:
    assert suppress_small_count(count, k) == expected


@pytest.mark.parametrize(("count", "k"), [(-1, 5), (1.5, 5), (True, 5), (3, 0), (3, 2.0)])
def test_suppress_small_count_bad_input(count: object, k: object) -> None:
    with pytest.raises(ValueError):
        suppress_small_count(count, k)  # type: ignore[arg-type]


def test_suppress_small_counts_keeps_keys_and_order() -> None:
    actual = suppress_small_counts({"US": 0, "CT": 12, "MR": 2})
    assert actual == {"US": 0, "CT": 12, "MR": None}
    assert list(actual) == ["US", "CT", "MR"]


def test_suppress_small_counts_secondary_hides_the_next_smallest_cell() -> None:
    expected = {"F": 9, "M": None, "O": None, "unknown": 0}
    assert suppress_small_counts({"F": 9, "M": 6, "O": 1, "unknown": 0}, 5, secondary=True) == expected


def test_suppress_small_counts_secondary_not_needed() -> None:
    counts = {"a": 1, "b": 2, "c": 9}
    assert suppress_small_counts(counts, 5, secondary=True) == {"a": None, "b": None, "c": 9}
    assert suppress_small_counts({"a": 7, "b": 9}, 5, secondary=True) == {"a": 7, "b": 9}
