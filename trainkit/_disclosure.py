"""Small-count suppression for aggregates that leave a station.

A count between 1 and ``k - 1`` could single out a person, so it is replaced by ``None``.
Zero stays zero: the absence of a category discloses nobody. With ``secondary=True`` a
lone suppressed cell takes the next smallest non-zero cell with it, so the suppressed
value cannot be recovered from a published total minus the other cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

__all__ = ["suppress_small_count", "suppress_small_counts"]

K = TypeVar("K")


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, not {k!r}")


def suppress_small_count(count: int, k: int = 5) -> int | None:
    """Return ``count``, or ``None`` when it lies between 1 and ``k - 1``.

    Parameters
    ----------
    count
        A non-negative count.
    k
        The smallest count that may be published.

    Returns
    -------
    int or None
        ``count`` when it is 0 or at least ``k``, else ``None``.

    Raises
    ------
    ValueError
        When ``count`` is negative or ``k`` is below 1.

    Examples
    --------
    >>> suppress_small_count(3), suppress_small_count(0), suppress_small_count(7)
    (None, 0, 7)
    """
    _check_k(k)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"counts are non-negative integers, not {count!r}")
    return None if 0 < count < k else count


def suppress_small_counts(counts: Mapping[K, int], k: int = 5, *, secondary: bool = False) -> dict[K, int | None]:
    """Return a copy of ``counts`` with every count between 1 and ``k - 1`` set to ``None``.

    Parameters
    ----------
    counts
        Category → non-negative count.
    k
        The smallest count that may be published.
    secondary
        When exactly one cell is suppressed, also suppress the smallest other non-zero
        cell, so a published total cannot reveal the suppressed value.

    Returns
    -------
    dict
        The same keys in the same order, counts or ``None``.

    Raises
    ------
    ValueError
        When a count is negative or not an integer, or ``k`` is below 1.

    Examples
    --------
    >>> suppress_small_counts({"CT": 12, "MR": 2, "US": 0})
    {'CT': 12, 'MR': None, 'US': 0}
    >>> suppress_small_counts({"F": 9, "M": 6, "O": 1}, secondary=True)
    {'F': 9, 'M': None, 'O': None}
    """
    result = {key: suppress_small_count(value, k) for key, value in counts.items()}
    if secondary:
        hidden = [key for key, value in result.items() if value is None]
        if len(hidden) == 1:
            shown = [(value, str(key), key) for key, value in result.items() if value]
            if shown:
                result[min(shown, key=lambda item: (item[0], item[1]))[2]] = None
    return result
