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
    assert suppress_breakdown({"CT": 9, "MR": 6}, 5) == {"CT": 9, "MR": 6}


def test_suppress_breakdown_two_small_hidden_cells_get_a_third() -> None:
    from station.summary import suppress_breakdown

    # MR and PT hidden: 1 + 2 = 3 < k, so the total minus CT and US would reveal 3
    actual = suppress_breakdown({"CT": 9, "MR": 1, "PT": 2, "US": 7}, 5)

    assert actual == {"CT": 9, "MR": None, "PT": None, "US": None}


def test_suppress_breakdown_hidden_total_of_k_needs_nothing_more() -> None:
    from station.summary import suppress_breakdown

    assert suppress_breakdown({"CT": 9, "MR": 2, "PT": 3, "US": 7}, 5) == {"CT": 9, "MR": None, "PT": None, "US": 7}
    assert suppress_breakdown({"CT": 9, "MR": 4, "PT": 4, "US": 0}, 5) == {"CT": 9, "MR": None, "PT": None, "US": 0}


def test_suppress_breakdown_everything_hidden() -> None:
    from station.summary import suppress_breakdown

    assert suppress_breakdown({"CT": 1, "MR": 2}, 5) == {"CT": None, "MR": None}
    assert suppress_breakdown({"CT": 1, "MR": 2, "PT": 6}, 5) == {"CT": None, "MR": None, "PT": None}
    assert suppress_breakdown({"CT": 1, "MR": 0}, 5) == {"CT": None, "MR": 0}  # a zero cell hides nothing


def test_suppress_breakdown_hidden_total_is_zero_or_at_least_k() -> None:
    import random

    from station.summary import suppress_breakdown

    rng = random.Random(7)
    for _ in range(2000):
        k = rng.randint(2, 20)
        counts = {f"v{n}": rng.choice([0, rng.randint(1, k), rng.randint(1, 4 * k)]) for n in range(rng.randint(1, 45))}

        actual = suppress_breakdown(counts, k)

        assert len(actual) <= 40 and ("other" in actual) == (len(counts) > 40)
        kept = {value: counts[value] for value in actual if value != "other"}
        if "other" in actual:  # the pooled levels
            kept["other"] = sum(counts.values()) - sum(kept.values())
        shown = {value: count for value, count in actual.items() if count is not None}
        assert all(count == kept[value] and (count == 0 or count >= k) for value, count in shown.items())
        hidden_total = sum(kept[value] for value in actual if actual[value] is None)
        every_nonzero_hidden = all(count == 0 for count in shown.values())
        assert hidden_total == 0 or hidden_total >= k or every_nonzero_hidden, (counts, k, actual)


def test_suppress_breakdown_caps_levels_at_forty() -> None:
    from station.summary import suppress_breakdown

    counts = {f"v{n:02d}": 100 - n for n in range(50)}

    actual = suppress_breakdown(counts, 5)

    assert len(actual) == 40
    assert actual["other"] == sum(100 - n for n in range(39, 50))
    assert "v00" in actual and "v49" not in actual


def test_synthetic_summary_has_breakdowns_ranges_coverage_and_quality(synthetic_root: Path, tmp_path: Path) -> None:
    import shutil

    from station.indexer import index_collection

    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    with DicomIndex(tmp_path / "i.sqlite") as index:
        index_collection(root, index, collection="c", secret=b"k")
        clean = summarise_collection(index, collection="c", k=5)
        series = index.series_rows("c")
        # remove one interior slice of six series: each is flagged, and six reaches k
        by_series: dict[str, list[Path]] = {}
        for row in index.connection.execute("SELECT series_uid, path FROM instance WHERE collection = 'c'"):
            by_series.setdefault(row[0], []).append(Path(row[1]))
        damaged = [uid for uid, paths in sorted(by_series.items()) if len(paths) >= 3][:6]
        for uid in damaged:
            from pydicom import dcmread

            ordered = sorted(
                by_series[uid], key=lambda path: int(dcmread(path, stop_before_pixels=True).InstanceNumber)
            )
            ordered[len(ordered) // 2].unlink()
        index_collection(root, index, collection="c", secret=b"k")
        flagged = summarise_collection(index, collection="c", k=5)

    assert sum(clean.sexes.values() or [0]) <= 16 and set(clean.sexes) <= {"F", "M", "O"}
    assert clean.age_bands and all(count is None or count >= 5 for count in clean.age_bands.values())
    assert clean.min_typical_age is not None and clean.max_typical_age is not None
    assert clean.min_typical_age <= clean.max_typical_age
    assert clean.quality["missing_slices"] == 0 and clean.quality["duplicated_slices"] == 0
    assert clean.coverage["slice_thickness"] == 100.0
    thickness = clean.ranges["slice_thickness"]
    assert thickness.unit == "mm" and thickness.low <= thickness.median <= thickness.high and thickness.subjects >= 5
    assert all(row["year"] is None or 1900 < row["year"] < 2100 for row in series)
    assert flagged.quality["missing_slices"] == 6


def test_ranges_and_ages_need_k_subjects(tmp_path: Path) -> None:
    with DicomIndex(tmp_path / "i.sqlite") as index:
        for n in range(4):
            header = DicomHeader(
                path=Path(f"/x/{n}"),
                sop_instance_uid=f"2.{n}",
                series_instance_uid=f"3.{n}",
                study_instance_uid=f"4.{n}",
                modality="CT",
                patient_id=f"p{n}",
                patient_age=f"0{40 + n}Y",
                slice_thickness=1.0 + n,
                kvp=120.0,
            )
            index.add_header("c", header, secret=b"k")

        actual = summarise_collection(index, collection="c", k=5)

    assert actual.ranges == {}  # four subjects: no percentiles (they would sit next to one patient's value)
    assert actual.min_typical_age is None and actual.max_typical_age is None
    assert actual.coverage == {}  # 4 series with (or without) each field: between 1 and k - 1
