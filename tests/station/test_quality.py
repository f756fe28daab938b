"""Series quality flags: every removed or duplicated slice is caught, clean stacks raise nothing."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from station.quality import SliceHeader, series_flags

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
OBLIQUE = (1.0, 0.0, 0.0, 0.0, 0.8660254, -0.5)


def stack(count: int = 20, *, spacing: float = 2.5, orientation: tuple[float, ...] = AXIAL) -> list[SliceHeader]:
    normal = (0.0, 0.5, 0.8660254) if orientation == OBLIQUE else (0.0, 0.0, 1.0)
    return [
        SliceHeader(
            instance_number=n + 1,
            position=(10.0 + normal[0] * spacing * n, -5.0 + normal[1] * spacing * n, 30.0 + normal[2] * spacing * n),
            orientation=orientation,
            rows=512,
            columns=512,
            image_type="ORIGINAL\\PRIMARY\\AXIAL",
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("orientation", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_a_clean_stack_has_no_flags_in_any_order(orientation: tuple[float, ...]) -> None:
    slices = stack(orientation=orientation)
    random.Random(1).shuffle(slices)

    assert series_flags(slices) == set()


@pytest.mark.parametrize("orientation", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
@pytest.mark.parametrize("evidence", ["both", "positions", "numbers"])
def test_every_interior_removed_slice_is_flagged(orientation: tuple[float, ...], evidence: str) -> None:
    for removed in range(1, 19):
        slices = [item for n, item in enumerate(stack(orientation=orientation)) if n != removed]
        if evidence == "positions":
            slices = [replace(item, instance_number=None) for item in slices]
        elif evidence == "numbers":
            slices = [replace(item, position=None) for item in slices]
        assert "missing_slices" in series_flags(slices), removed


@pytest.mark.parametrize("evidence", ["both", "positions", "numbers"])
def test_every_duplicated_slice_is_flagged(evidence: str) -> None:
    for duplicated in range(20):
        slices = stack()
        slices.insert(duplicated, slices[duplicated])
        if evidence == "positions":
            slices = [replace(item, instance_number=None) for item in slices]
        elif evidence == "numbers":
            slices = [replace(item, position=None) for item in slices]
        assert "duplicated_slices" in series_flags(slices), duplicated


def test_spacing_orientation_matrix_localizer_and_derived() -> None:
    uneven = stack()
    uneven[10] = replace(uneven[10], position=(10.0, -5.0, uneven[10].position[2] + 0.6))  # type: ignore[index]
    tilted = stack()
    tilted[4] = replace(tilted[4], orientation=OBLIQUE)
    mixed = stack()
    mixed[3] = replace(mixed[3], rows=256, columns=256)
    scout = [replace(item, image_type="ORIGINAL\\PRIMARY\\LOCALIZER") for item in stack(3)]
    derived = [replace(item, image_type="DERIVED\\SECONDARY\\MPR") for item in stack(5)]

    assert series_flags(uneven) == {"inconsistent_spacing"}
    assert series_flags(tilted) == {"inconsistent_orientation"}
    assert series_flags(mixed) == {"mixed_matrix"}
    assert series_flags(scout) == {"localizer"}  # localizers are not checked as stacks
    assert series_flags(stack(3), category="localizer") == {"localizer"}
    assert series_flags(derived) == {"derived"}


def test_too_little_to_judge_raises_nothing() -> None:
    assert series_flags([]) == set()
    assert series_flags(stack(1)) == set()
    assert series_flags([replace(item, position=None, instance_number=None) for item in stack(5)]) == set()
