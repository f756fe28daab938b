"""Disclosure-controlled aggregates of one collection.

Every count between 1 and ``k - 1`` is published as ``None`` (suppressed); 0 and counts of
at least ``k`` are published as they are, before any rounding the hub applies. Breakdowns
(modality, body part, manufacturer, sex, age band) are counted in **subjects** — the number of
distinct pseudonymised patients with that value, because the subject is the unit a small count
could re-identify — with complementary suppression and at most 40 levels. Quality flags count
series. Coverage (the share of series carrying a field) is left out when the series with or
without it number between 1 and k - 1. Acquisition-parameter ranges and typical ages are the
5th / 50th / 95th percentiles of per-subject values, published only over at least k subjects:
never one patient's minimum or maximum. No UID, date, name or free text is ever published.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from protocol import CollectionSummary, NumericRange

from .indexer import SERIES_FIELDS, DicomIndex
from .quality import QUALITY_FLAGS, series_flags

__all__ = ["percentile", "summarise_collection", "suppress_breakdown", "suppress_count"]

RANGES = {"slice_thickness": "mm", "pixel_spacing": "mm", "kvp": "kV", "field_strength": "T"}
"""Series columns published as ranges, with their units."""


def suppress_count(count: int, k: int) -> int | None:
    """Return ``None`` for a count between 1 and ``k - 1``, else the count.

    Examples
    --------
    >>> suppress_count(4, 5) is None, suppress_count(5, 5), suppress_count(0, 5)
    (True, 5, 0)
    """
    return None if 0 < count < k else count


def suppress_breakdown(counts: dict[str, int], k: int) -> dict[str, int | None]:
    """Suppress small cells of one breakdown, and more while the hidden cells' total would show.

    The published total minus the shown cells gives the hidden cells' total away, so while
    that total is between 1 and ``k - 1`` the next-smallest published (non-zero) cell is
    suppressed too. Afterwards the hidden cells add up to 0 or at least ``k``, unless every
    non-zero cell is hidden (then nothing shown is left to subtract from the total).

    Examples
    --------
    >>> suppress_breakdown({"CT": 9, "MR": 2, "PT": 6}, 5)
    {'CT': 9, 'MR': None, 'PT': None}
    >>> suppress_breakdown({"CT": 9, "MR": 2, "PT": 1, "US": 7}, 5)
    {'CT': 9, 'MR': None, 'PT': None, 'US': None}
    """
    if len(counts) > _MAX_LEVELS:  # the largest levels stay, the rest are pooled as "other"
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        counts = dict(ranked[: _MAX_LEVELS - 1])
        counts["other"] = counts.get("other", 0) + sum(count for _, count in ranked[_MAX_LEVELS - 1 :])
    published = {value: suppress_count(count, k) for value, count in counts.items()}
    hidden_total = sum(counts[value] for value, count in published.items() if count is None)
    shown = sorted((count, value) for value, count in counts.items() if published[value] and count > 0)
    for count, value in shown:  # smallest first
        if not 0 < hidden_total < k:
            break
        published[value] = None
        hidden_total += count
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

    patients = index.patients(collection)
    ages = [age for _, _, age in patients if age is not None]
    series = index.series_rows(collection)
    low_age = math.floor(percentile(ages, 0.05)) if len(ages) >= k else None
    high_age = math.ceil(percentile(ages, 0.95)) if len(ages) >= k else None
    return CollectionSummary(
        k=k,
        subjects=totals["patient"],
        studies=totals["study"],
        series=totals["series"],
        instances=totals["instance"],
        modalities=counted("modality"),
        body_parts=counted("body_part"),
        manufacturers=counted("manufacturer"),
        sexes=suppress_breakdown(dict(Counter(sex for sex, _, _ in patients if sex)), k),
        age_bands=suppress_breakdown(dict(Counter(band for _, band, _ in patients if band)), k),
        min_typical_age=min(150, max(0, low_age)) if low_age is not None else None,
        max_typical_age=min(150, max(0, high_age)) if high_age is not None else None,
        quality=_quality(index, collection, series, k),
        coverage=_coverage(series, k),
        ranges=_ranges(series, k),
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values`` by linear interpolation (as numpy's default).

    Examples
    --------
    >>> percentile([1, 2, 3, 4, 5], 0.5), percentile([10, 20], 0.05)
    (3.0, 10.5)
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    place = fraction * (len(ordered) - 1)
    below = math.floor(place)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (ordered[above] - ordered[below]) * (place - below))


def _quality(index: DicomIndex, collection: str, series: list[dict[str, Any]], k: int) -> dict[str, int | None]:
    categories = {row["series_uid"]: row["category"] for row in series}
    counts = Counter[str]()
    for series_uid, slices in index.slices_by_series(collection).items():
        counts.update(series_flags(slices, category=categories.get(series_uid)))
    return {flag: suppress_count(counts[flag], k) for flag in QUALITY_FLAGS}


def _coverage(series: list[dict[str, Any]], k: int) -> dict[str, float]:
    total = len(series)
    coverage = {}
    for name in SERIES_FIELDS:
        having = sum(1 for row in series if row[name] not in (None, ""))
        if 0 < having < k or 0 < total - having < k:
            continue  # the few series with (or without) the field would show through
        coverage[name] = round(100.0 * having / total, 1) if total else 0.0
    return coverage


def _ranges(series: list[dict[str, Any]], k: int) -> dict[str, NumericRange]:
    ranges = {}
    for name, unit in RANGES.items():
        per_subject: dict[str, list[float]] = {}
        for row in series:
            if row[name] is not None:
                per_subject.setdefault(row["pseudonym"], []).append(float(row[name]))
        values = [statistics.median(found) for found in per_subject.values()]
        if len(values) < k:
            continue
        ranges[name] = NumericRange(
            low=round(percentile(values, 0.05), 3),
            median=round(percentile(values, 0.5), 3),
            high=round(percentile(values, 0.95), 3),
            unit=unit,
            subjects=len(values),
        )
    return ranges


_TABLES = ("patient", "study", "series", "instance")
_MAX_LEVELS = 40
