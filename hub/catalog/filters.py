"""Catalog search: pure filters over a collection's published summary."""

from __future__ import annotations

from protocol import CollectionSummary

__all__ = ["summary_matches"]


def _has_value(counts: dict[str, int | None], wanted: str) -> bool:
    folded = wanted.casefold()
    return any(value.casefold() == folded for value in counts)


def summary_matches(
    summary: CollectionSummary,
    *,
    modality: str | None = None,
    body_part: str | None = None,
    min_subjects: int | None = None,
) -> bool:
    """Tell whether a summary passes every given filter.

    Modality and body part match case-insensitively, even when their count is suppressed.
    A suppressed subject count (``None``) never satisfies ``min_subjects``.

    Examples
    --------
    >>> s = CollectionSummary(k=5, subjects=None, studies=None, series=None, instances=None,
    ...                       modalities={"CT": None}, body_parts={}, manufacturers={})
    >>> summary_matches(s, modality="ct"), summary_matches(s, min_subjects=1)
    (True, False)
    """
    if modality and not _has_value(summary.modalities, modality):
        return False
    if body_part and not _has_value(summary.body_parts, body_part):
        return False
    return not (min_subjects is not None and (summary.subjects is None or summary.subjects < min_subjects))
