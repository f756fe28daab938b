from pathlib import Path

import pytest

from station.indexer import DicomHeader, DicomIndex
from station.summary import summarise_collection, suppress_count


def _add_subjects(index: DicomIndex, count: int, *, modality: str = "CT", body_part: str = "CHEST") -> None:
    for n in range(count):
        header = DicomHeader(
            path=Path(f"/x/{modality}{n}"),
            sop_instance_uid=f"1.{modality}.{n}.3",
            series_instance_uid=f"1.{modality}.{n}.2",
            study_instance_uid=f"1.{modality}.{n}.1",
            modality=modality,
            patient_id=f"{modality}-patient-{n}",
            body_part=body_part,
            manufacturer="ACME",
        )
        index.add_header("c", header, secret=b"k")


@pytest.mark.parametrize(("count", "expected"), [(0, 0), (1, None), (4, None), (5, 5), (6, 6)])
def test_suppress_count_boundaries(count: int, expected: int | None) -> None:
    assert suppress_count(count, 5) == expected


def test_summarise_collection_k_minus_one_is_suppressed(tmp_path: Path) -> None:
    with DicomIndex(tmp_path / "i.sqlite") as index:
        _add_subjects(index, 4)

        actual = summarise_collection(index, collection="c", k=5)

    assert actual.subjects is None
    assert actual.studies is None
    assert actual.series is None
    assert actual.instances is None
    assert actual.modalities == {"CT": None}


def test_summarise_collection_k_is_published(tmp_path: Path) -> None:
    with DicomIndex(tmp_path / "i.sqlite") as index:
        _add_subjects(index, 5)
        _add_subjects(index, 2, modality="MR", body_part="HEAD")

        actual = summarise_collection(index, collection="c", k=5)

    assert actual.subjects == 7
    assert actual.modalities == {"CT": None, "MR": None}  # complementary: 7 - 5 would reveal MR
    assert actual.body_parts == {"CHEST": None, "HEAD": None}
    assert actual.manufacturers == {"ACME": 7}
    assert actual.k == 5


def test_summarise_collection_counts_subjects_not_series(tmp_path: Path) -> None:
    # Prepare: one subject with six CT series
    with DicomIndex(tmp_path / "i.sqlite") as index:
        for n in range(6):
            header = DicomHeader(
                path=Path(f"/x/{n}"),
                sop_instance_uid=f"2.{n}",
                series_instance_uid=f"3.{n}",
                study_instance_uid="4",
                modality="CT",
                patient_id="one",
            )
            index.add_header("c", header, secret=b"k")

        # Execute
        actual = summarise_collection(index, collection="c", k=5)

    # Assert
    assert actual.series == 6
    assert actual.subjects is None
    assert actual.modalities == {"CT": None}


def test_summarise_collection_synthetic(synthetic_root: Path, tmp_path: Path) -> None:
    from station.indexer import index_collection

    with DicomIndex(tmp_path / "i.sqlite") as index:
        index_collection(synthetic_root, index, collection="c", secret=b"k")

        actual = summarise_collection(index, collection="c", k=5)

    assert actual.subjects == 16
    assert set(actual.modalities) == {"CT", "MR"}
    assert all(count is not None and count >= 5 for count in actual.body_parts.values())
    assert actual.manufacturers == {"SIEMENS": 16}


def test_suppress_breakdown_complementary_cell() -> None:
    from station.summary import suppress_breakdown

    assert suppress_breakdown({"CT": 9, "MR": 2, "PT": 6}, 5) == {"CT": 9, "MR": None, "PT": None}
    assert suppress_breakdown({"CT": 9, "MR": 2, "PT": 1}, 5) == {"CT": 9, "MR": None, "PT": None}
    assert suppress_breakdown({"CT": 9, "MR": 6}, 5) == {"CT": 9, "MR": 6}


def test_suppress_breakdown_caps_levels_at_forty() -> None:
    from station.summary import suppress_breakdown

    counts = {f"v{n:02d}": 100 - n for n in range(50)}

    actual = suppress_breakdown(counts, 5)

    assert len(actual) == 40
    assert actual["other"] == sum(100 - n for n in range(39, 50))
    assert "v00" in actual and "v49" not in actual
