"""Quality and provenance flags of one series, from the instances' headers alone (no pixels).

=========================  ===============================================================
flag                       raised when
=========================  ===============================================================
``missing_slices``         a gap along the slice normal wider than 1.5 x the typical
                           spacing, or Instance Numbers with a hole
``duplicated_slices``      two slices at the same position, or a repeated Instance Number
``inconsistent_spacing``   the spacing between neighbouring slices varies by more than 10 %
                           (without a gap that explains it)
``inconsistent_orientation``  Image Orientation (Patient) differs between slices
``mixed_matrix``           more than one Rows x Columns in the series
``localizer``              a localizer / scout (Image Type, or the mapped category)
``derived``                Image Type starts with ``DERIVED``
=========================  ===============================================================

Geometry is checked on single-frame series of three or more slices with a position and an
orientation; localizers are not checked for geometry (their slices are not a stack).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["QUALITY_FLAGS", "SliceHeader", "series_flags"]

QUALITY_FLAGS = (
    "missing_slices",
    "duplicated_slices",
    "inconsistent_spacing",
    "inconsistent_orientation",
    "mixed_matrix",
    "localizer",
    "derived",
)
_GAP = 1.5
_SPACING_TOLERANCE = 0.10
_ORIENTATION_TOLERANCE = 1e-3
_SAME_POSITION_MM = 1e-3


@dataclass(frozen=True)
class SliceHeader:
    """What the checks need of one instance."""

    instance_number: int | None = None
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, ...] | None = None
    rows: int | None = None
    columns: int | None = None
    image_type: str | None = None


def _normal(orientation: Sequence[float]) -> tuple[float, float, float] | None:
    row, column = orientation[:3], orientation[3:6]
    normal = (
        row[1] * column[2] - row[2] * column[1],
        row[2] * column[0] - row[0] * column[2],
        row[0] * column[1] - row[1] * column[0],
    )
    length = math.sqrt(sum(value * value for value in normal))
    return None if length < 1e-6 else (normal[0] / length, normal[1] / length, normal[2] / length)


def _number_flags(numbers: list[int]) -> set[str]:
    flags = set()
    if len(set(numbers)) < len(numbers):
        flags.add("duplicated_slices")
    distinct = sorted(set(numbers))
    if len(distinct) >= 2 and distinct[-1] - distinct[0] + 1 > len(distinct):
        flags.add("missing_slices")
    return flags


def _geometry_flags(slices: Sequence[SliceHeader]) -> set[str]:
    placed = [item for item in slices if item.position is not None and item.orientation is not None]
    if len(placed) < 3 or len(placed) < len(slices):
        return set()
    first = placed[0].orientation
    assert first is not None
    if any(
        max(abs(a - b) for a, b in zip(item.orientation or (), first, strict=False)) > _ORIENTATION_TOLERANCE
        for item in placed
    ):
        return {"inconsistent_orientation"}
    normal = _normal(first)
    if normal is None:
        return set()
    depths = sorted(sum(p * n for p, n in zip(item.position or (), normal, strict=False)) for item in placed)
    steps = [later - earlier for earlier, later in itertools.pairwise(depths)]
    flags = set()
    if any(step < _SAME_POSITION_MM for step in steps):
        flags.add("duplicated_slices")
    real = sorted(step for step in steps if step >= _SAME_POSITION_MM)
    if len(real) < 2:
        return flags
    typical = real[len(real) // 2]
    if real[-1] > _GAP * typical:
        flags.add("missing_slices")
    elif real[-1] - real[0] > _SPACING_TOLERANCE * typical:
        flags.add("inconsistent_spacing")
    return flags


def series_flags(slices: Sequence[SliceHeader], *, category: str | None = None) -> set[str]:
    """The quality flags (names of :data:`QUALITY_FLAGS`) of one series.

    Examples
    --------
    >>> stack = [SliceHeader(n, (0.0, 0.0, 2.5 * n), (1, 0, 0, 0, 1, 0), 512, 512) for n in range(1, 6)]
    >>> series_flags(stack), sorted(series_flags(stack[:2] + stack[3:]))
    (set(), ['missing_slices'])
    """
    flags: set[str] = set()
    types = [(item.image_type or "").upper().split("\\") for item in slices]
    if category == "localizer" or any("LOCALIZER" in parts for parts in types):
        flags.add("localizer")
    if any(parts and parts[0] == "DERIVED" for parts in types):
        flags.add("derived")
    matrices = {(item.rows, item.columns) for item in slices if item.rows and item.columns}
    if len(matrices) > 1:
        flags.add("mixed_matrix")
    if "localizer" in flags:
        return flags
    numbers = [item.instance_number for item in slices if item.instance_number is not None]
    if len(numbers) == len(slices) and len(numbers) >= 2:
        flags |= _number_flags(numbers)
    return flags | _geometry_flags(slices)
