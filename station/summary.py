"""Disclosure-controlled aggregate counts of one collection.

Every count between 1 and ``k - 1`` is published as ``None`` (suppressed); 0 and counts of
at least ``k`` are published as they are. Modalities, body parts and manufacturers are
counted in **subjects**: the number of distinct (pseudonymised) patients having at least one
series with that value, because the subject is the unit a small count could re-identify.
"""

from __future__ import annotations

from protocol import CollectionSummary

from .indexer import DicomIndex

__all__ = ["summarise_collection", "suppress_breakdown", "suppress_count"]


def suppress_count(count: int, k: int) -> int | None:
    """Return ``None`` for a count between 1 and ``k - 1``, else the count.

    Examples
    --------
    >>> suppress_count(4, 5) is None, suppress_count(5, 5), suppress_count(0, 5)
    (True, 5, 0)
    """
    return None if 0 < count < k else count


def suppress_breakdown(counts: dict[str, int], k: int) -> dict[str, int | None]:
    """Suppress small cells of one breakdown, and one more when a single cell alone would be revealed.

    When exactly one cell is suppressed, the published total minus the others would give it
    away, so the next-smallest published (non-zero) cell is suppressed too.

    Examples
    --------
    >>> suppress_breakdown({"CT": 9, "MR": 2, "PT": 6}, 5)
    {'CT': 9, 'MR': None, 'PT': None}
    """
    if len(counts) > _MAX_LEVELS:  # the largest levels stay, the rest are pooled as "other"
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        counts = dict(ranked[: _MAX_LEVELS - 1])
        counts["other"] = counts.get("other", 0) + sum(count for _, count in ranked[_MAX_LEVELS - 1 :])
    published = {value: suppress_count(count, k) for value, count in counts.items()}
    hidden = [value for value, count in published.items() if count is None]
    if len(hidden) == 1:
        shown = [(count, value) for value, count in counts.items() if published[value] and count > 0]
        if shown:
            published[min(shown)[1]] = None
    return published


def summarise_collection(index: DicomIndex, *, collection: str, k: int = 5) -> CollectionSummary:
    """Count one collection's subjects, studies, series and instances, with small counts suppressed.

    Parameters
    ----------
    index
        The station's DICOM index.
    collection
        The collection's slug.
    k
        The k-anonymity threshold (2 to 20).

    Returns
    -------
    CollectionSummary
        Totals, and per modality / body part / manufacturer the number of subjects.
    """
    totals = {table: suppress_count(index.count_for_table(collection, table), k) for table in _TABLES}

    def counted(attribute: str) -> dict[str, int | None]:
        counts = index.subject_counts_for_attribute(collection, attribute)
        return suppress_breakdown(counts, k)

    return CollectionSummary(
        k=k,
        subjects=totals["patient"],
        studies=totals["study"],
        series=totals["series"],
        instances=totals["instance"],
        modalities=counted("modality"),
        body_parts=counted("body_part"),
        manufacturers=counted("manufacturer"),
    )


_TABLES = ("patient", "study", "series", "instance")
_MAX_LEVELS = 40
