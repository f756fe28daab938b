import sqlite3
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from station.indexer import (
    DicomHeader,
    DicomIndex,
    SkippedFile,
    age_band_for_age,
    index_collection,
    iter_dicom_paths,
    pseudonym_for_patient_id,
    read_header,
)

SECRET = b"s" * 32
# The test files pydicom ships (listed locally: get_testdata_files would try the network).
PYDICOM_TEST_FILES = sorted(p for p in (Path(pydicom.data.__file__).parent / "test_files").rglob("*") if p.is_file())


# Valid DICOM without the 128-byte preamble and "DICM": pydicom reads them only when forced.
NO_PREAMBLE = ("ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "rtstruct.dcm")


def _testdata(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None
    return Path(path)


class TestIterDicomPaths:
    def test_iter_dicom_paths_recurses_and_skips_hidden_and_links(self, tmp_path: Path) -> None:
        (tmp_path / "a" / "b").mkdir(parents=True)
        (tmp_path / "a" / "b" / "IM1").write_bytes(b"x")
        (tmp_path / "top.dcm").write_bytes(b"x")
        (tmp_path / ".hidden").write_bytes(b"x")
        (tmp_path / "link").symlink_to(tmp_path / "top.dcm")

        actual = [p.relative_to(tmp_path).as_posix() for p in iter_dicom_paths(tmp_path)]

        assert actual == ["top.dcm", "a/b/IM1"]

    def test_iter_dicom_paths_not_a_folder(self, tmp_path: Path) -> None:
        with pytest.raises(NotADirectoryError):
            list(iter_dicom_paths(tmp_path / "missing"))

    @pytest.mark.parametrize("root", ["absolute", ".", "tree", "tree/a"])
    def test_iter_dicom_paths_same_as_os_walk(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: str) -> None:
        import os

        tree = tmp_path / "tree"
        for folder in ("a/b", "a b", "a.b", "B", "é/z", ".hidden", "a/.git"):
            (tree / folder).mkdir(parents=True)
        for name in ("a/b/IM1", "a/b/IM10", "a/b/IM2", "a/x", "a b/y", "a.b/z", "B/w", "é/z/v", ".hidden/h", "top"):
            (tree / name).write_bytes(b"x")
        (tree / "a/.dot").write_bytes(b"x")
        (tree / "link-dir").symlink_to(tree / "a", target_is_directory=True)
        (tree / "a/link-file").symlink_to(tree / "top")
        (tree / "broken").symlink_to(tree / "missing")
        os.mkfifo(tree / "a/fifo")
        monkeypatch.chdir(tmp_path)
        start = tree if root == "absolute" else Path(root)

        def reference(top: Path) -> list[Path]:  # the walk before os.scandir
            found = []
            for folder, dirs, files in os.walk(top):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    path = Path(folder) / name
                    if not name.startswith(".") and not path.is_symlink() and path.is_file():
                        found.append(path)
            return found

        actual = list(iter_dicom_paths(start))

        assert actual == reference(start)
        assert [str(path) for path in actual] == [str(path) for path in reference(start)]
        assert len(actual) >= 3


class TestReadHeader:
    def test_read_header_ct_small(self) -> None:
        header = read_header(_testdata("CT_small.dcm"))

        assert isinstance(header, DicomHeader)
        assert header.modality == "CT"
        assert header.sop_instance_uid.startswith("1.3.6.1.4.1.5962")
        assert header.manufacturer == "GE MEDICAL SYSTEMS"

    def test_read_header_file_without_extension(self, synthetic_root: Path) -> None:
        path = next(p for p in synthetic_root.rglob("IM*") if p.is_file())

        assert isinstance(read_header(path), DicomHeader)

    def test_read_header_not_dicom(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("hello")

        actual = read_header(path)

        assert isinstance(actual, SkippedFile)
        assert "not a DICOM file" in actual.reason

    def test_read_header_truncated_file(self, tmp_path: Path) -> None:
        path = tmp_path / "cut.dcm"
        path.write_bytes(_testdata("CT_small.dcm").read_bytes()[:200])

        actual = read_header(path)

        assert isinstance(actual, SkippedFile)

    def test_read_header_missing_required_attributes(self, tmp_path: Path) -> None:
        ds = dcmread(_testdata("CT_small.dcm"))
        del ds.SeriesInstanceUID
        del ds.Modality
        path = tmp_path / "partial.dcm"
        ds.save_as(path)

        actual = read_header(path)

        assert isinstance(actual, SkippedFile)
        assert actual.reason == "missing required attributes: SeriesInstanceUID, Modality"

    def test_read_header_never_reads_pixels(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import station.indexer as indexer

        calls: list[dict[str, object]] = []
        real = indexer.dcmread

        def spy(path: Path, **kwargs: object) -> object:
            calls.append(kwargs)
            return real(path, **kwargs)

        monkeypatch.setattr(indexer, "dcmread", spy)
        monkeypatch.setattr(indexer, "scan_header", lambda _path: None)  # the pydicom fallback
        read_header(_testdata("CT_small.dcm"))

        assert calls[0]["stop_before_pixels"] is True
        assert "PixelData" not in calls[0]["specific_tags"]  # type: ignore[operator]

    @pytest.mark.parametrize("name", NO_PREAMBLE)
    def test_read_header_without_preamble(self, name: str) -> None:
        path = _testdata(name)
        assert path.read_bytes()[128:132] != b"DICM"
        reference = dcmread(path, force=True, stop_before_pixels=True)

        actual = read_header(path)

        assert isinstance(actual, DicomHeader), actual
        assert actual.sop_instance_uid == reference.SOPInstanceUID
        assert actual.series_instance_uid == reference.SeriesInstanceUID
        assert actual.study_instance_uid == reference.StudyInstanceUID
        assert actual.modality == reference.Modality

    def test_read_header_without_preamble_forces_pydicom_but_never_pixels(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import station.indexer as indexer

        calls: list[dict[str, Any]] = []

        def spy(path: Path, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return dcmread(path, **kwargs)

        monkeypatch.setattr(indexer, "dcmread", spy)
        actual = read_header(_testdata("rtstruct.dcm"))

        assert isinstance(actual, DicomHeader)
        assert [call.get("force", False) for call in calls] == [False, True]  # forced only as the fallback
        assert all(call["stop_before_pixels"] is True for call in calls)

    @pytest.mark.parametrize(
        ("name", "content"),
        [
            ("README.txt", b"This folder holds the scans of 2024.\n" * 20),
            ("random.bin", bytes(range(256)) * 400),
            ("empty", b""),
            ("hello", b"hello"),
            ("no_meta.dcm", None),  # pydicom's file shifted by one byte: no element reads as DICOM
            ("zipMR.gz", None),
        ],
    )
    def test_read_header_non_dicom_without_preamble_is_skipped(
        self, tmp_path: Path, name: str, content: bytes | None
    ) -> None:
        path = tmp_path / name
        path.write_bytes(_testdata(name).read_bytes() if content is None else content)

        actual = read_header(path)

        assert isinstance(actual, SkippedFile)
        assert actual.reason == "not a DICOM file (no 'DICM' preamble, and no DICOM attributes without it)"

    def test_read_header_random_bytes_are_skipped(self, tmp_path: Path) -> None:
        import random

        rng = random.Random(3)
        for n in range(50):
            path = tmp_path / f"noise{n}"
            path.write_bytes(rng.randbytes(rng.randint(1, 5000)))

            actual = read_header(path)

            assert isinstance(actual, SkippedFile), path
            assert actual.reason.startswith(("not a DICOM file", "missing required attributes", "unreadable"))

    @pytest.mark.parametrize("path", PYDICOM_TEST_FILES, ids=lambda p: p.name)
    def test_read_header_every_pydicom_test_file_never_raises(self, path: Path) -> None:
        actual = read_header(path)

        assert isinstance(actual, DicomHeader | SkippedFile)
        if isinstance(actual, SkippedFile):
            assert actual.reason


class TestAgeBand:
    @pytest.mark.parametrize(
        ("years", "expected"), [(0.5, "0-9"), (54.0, "50-59"), (59.99, "50-59"), (93.0, "90+"), (None, None)]
    )
    def test_age_band_for_age(self, years: float | None, expected: str | None) -> None:
        assert age_band_for_age(years) == expected


class TestIndexCollection:
    def test_index_collection_synthetic_counts(self, synthetic_root: Path, tmp_path: Path) -> None:
        # Prepare
        files = [p for p in synthetic_root.rglob("*") if p.is_file()]
        with DicomIndex(tmp_path / "index.sqlite") as index:
            # Execute
            report = index_collection(synthetic_root, index, collection="c", secret=SECRET)

            # Assert
            assert report.indexed == len(files)
            assert report.skipped == []
            assert index.count_for_table("c", "patient") == 16
            assert index.count_for_table("c", "instance") == len(files)

    def test_index_collection_lookups(self, synthetic_root: Path, tmp_path: Path) -> None:
        with DicomIndex(tmp_path / "index.sqlite") as index:
            index_collection(synthetic_root, index, collection="c", secret=SECRET)
            subject = index.subjects_for_collection("c")[0]
            study = index.studies_for_subject("c", subject)[0]
            series = index.series_for_study("c", study)

            assert len(series) == 1
            assert len(index.instances_for_series("c", series[0])) == 6
            assert index.collections() == ["c"]

    def test_index_collection_pseudonymises_patient_ids(self, synthetic_root: Path, tmp_path: Path) -> None:
        # Prepare
        patient_ids = {str(dcmread(p, stop_before_pixels=True).PatientID) for p in synthetic_root.rglob("*.dcm")}
        db = tmp_path / "index.sqlite"

        # Execute
        with DicomIndex(db) as index:
            index_collection(synthetic_root, index, collection="c", secret=SECRET)

        # Assert
        raw = db.read_bytes()
        assert patient_ids
        for patient_id in patient_ids:
            assert patient_id.encode() not in raw
            assert b"Synthetic^Patient" not in raw
        pseudonyms = {row[0] for row in sqlite3.connect(db).execute("SELECT pseudonym FROM patient")}
        assert pseudonym_for_patient_id(sorted(patient_ids)[0], SECRET) in pseudonyms
        assert pseudonym_for_patient_id(sorted(patient_ids)[0], b"other") not in pseudonyms

    def test_index_collection_patient_attributes(self, synthetic_root: Path, tmp_path: Path) -> None:
        with DicomIndex(tmp_path / "index.sqlite") as index:
            index_collection(synthetic_root, index, collection="c", secret=SECRET)
            rows = index.connection.execute("SELECT sex, age_band FROM patient").fetchall()

        assert {sex for sex, _ in rows} <= {"F", "M"}
        assert all(band and band.endswith(("9", "+")) for _, band in rows)

    def test_index_collection_pydicom_test_files_skip_with_reasons(self, tmp_path: Path) -> None:
        root = _testdata("CT_small.dcm").parent
        seen: list[int] = []

        with DicomIndex(tmp_path / "index.sqlite") as index:
            report = index_collection(
                root, index, collection="pyd", secret=SECRET, on_progress=lambda _p, n: seen.append(n)
            )

        assert report.indexed > 140  # 144 of the 176 files pydicom 3.0 ships
        assert len(report.skipped) > 20
        assert all(skipped.reason for skipped in report.skipped)
        assert seen[-1] == report.indexed + len(report.skipped)
        reasons = {skipped.path.name: skipped.reason for skipped in report.skipped}
        assert not set(NO_PREAMBLE) & set(reasons)  # indexed without the preamble
        for name in ("README.txt", "crayons.icc", "no_meta.dcm", "zipMR.gz", "test1.json"):
            assert reasons[name].startswith("not a DICOM file"), name

    def test_index_collection_files_without_preamble(self, tmp_path: Path) -> None:
        root = tmp_path / "c"
        root.mkdir()
        for name in NO_PREAMBLE:
            (root / name).write_bytes(_testdata(name).read_bytes())

        with DicomIndex(tmp_path / "index.sqlite") as index:
            report = index_collection(root, index, collection="c", secret=SECRET)
            modalities = {row[0] for row in index.connection.execute("SELECT modality FROM series")}
            files = {Path(row[0]).name: row[1] for row in index.connection.execute("SELECT path, status FROM file")}
            instances = index.count_for_table("c", "instance")

        assert (report.indexed, report.skipped) == (3, [])
        assert modalities == {"RTPLAN", "RTSTRUCT"}
        assert files == dict.fromkeys(NO_PREAMBLE, "indexed")
        assert instances == 2  # the two ExplVR files are one instance (one SOP Instance UID) in two encodings

    def test_index_collection_replaces_previous_rows(self, synthetic_root: Path, tmp_path: Path) -> None:
        with DicomIndex(tmp_path / "index.sqlite") as index:
            index_collection(synthetic_root, index, collection="c", secret=SECRET)
            index_collection(synthetic_root, index, collection="c", secret=SECRET)
            index_collection(_testdata("CT_small.dcm").parent, index, collection="other", secret=SECRET)

            assert index.count_for_table("c", "patient") == 16
            assert index.collections() == ["c", "other"]

    def test_count_for_table_unknown_table(self, tmp_path: Path) -> None:
        with DicomIndex(tmp_path / "index.sqlite") as index, pytest.raises(ValueError, match="unknown"):
            index.count_for_table("c", "users; DROP TABLE patient")


_TABLES = ("patient", "study", "series", "instance", "name_token")


def _rows(index: DicomIndex) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(index.connection.execute(f"SELECT * FROM {table}")) for table in _TABLES}  # noqa: S608


def test_parallel_harvest_indexes_the_same_rows(tmp_path: Path, synthetic_root: Path) -> None:
    files = [path for path in synthetic_root.rglob("*") if path.is_file()] + PYDICOM_TEST_FILES
    many = tmp_path / "many"
    for copy in range(3):  # enough files for the process pool
        for number, path in enumerate(files):
            target = many / f"c{copy}" / f"{number}-{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    serial_db, parallel_db = DicomIndex(tmp_path / "serial.sqlite"), DicomIndex(tmp_path / "parallel.sqlite")

    serial = index_collection(many, serial_db, collection="c", secret=b"s")
    parallel = index_collection(many, parallel_db, collection="c", secret=b"s", workers=2)

    assert serial.indexed == parallel.indexed > 256
    assert [(s.path, s.reason) for s in serial.skipped] == [(s.path, s.reason) for s in parallel.skipped]
    assert _rows(serial_db) == _rows(parallel_db)
    assert sorted(serial_db.connection.execute("SELECT * FROM file")) == sorted(
        parallel_db.connection.execute("SELECT * FROM file")
    )


def test_parallel_harvest_applies_the_collection_rule(tmp_path: Path, synthetic_root: Path) -> None:
    import pickle

    from station.collections import CollectionRule

    many = tmp_path / "many"
    for copy in range(3):  # enough files for the process pool
        for number, path in enumerate(p for p in synthetic_root.rglob("*") if p.is_file()):
            target = many / f"c{copy}" / f"{number}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    rule = CollectionRule(folder=many, modality=("MR",))
    assert pickle.dumps(rule.excludes)  # the workers get the rule, whatever their start method
    serial_db, parallel_db = DicomIndex(tmp_path / "serial.sqlite"), DicomIndex(tmp_path / "parallel.sqlite")

    serial = index_collection(many, serial_db, collection="c", secret=b"s", exclude=rule.excludes)
    parallel = index_collection(many, parallel_db, collection="c", secret=b"s", exclude=rule.excludes, workers=2)

    outside = [s for s in parallel.skipped if s.reason.startswith("outside the collection's rule")]
    assert outside and [(s.path, s.reason) for s in serial.skipped] == [(s.path, s.reason) for s in parallel.skipped]
    assert _rows(serial_db) == _rows(parallel_db)
    assert set(parallel_db.subject_counts_for_attribute("c", "modality")) <= {"MR"}


def test_harvest_stores_what_add_header_stores(tmp_path: Path, synthetic_root: Path) -> None:
    """The harvest's batched rows (built in the workers, shared within a series) equal one header's rows."""
    root = tmp_path / "c"
    for number, path in enumerate([p for p in sorted(synthetic_root.rglob("*")) if p.is_file()] + PYDICOM_TEST_FILES):
        target = root / f"{number:04d}" / path.name
        target.parent.mkdir(parents=True)
        target.write_bytes(path.read_bytes())
    with DicomIndex(tmp_path / "harvest.sqlite") as harvested, DicomIndex(tmp_path / "one.sqlite") as one_by_one:
        report = index_collection(root, harvested, collection="c", secret=SECRET, workers=2)
        for path in iter_dicom_paths(root):
            header = read_header(path)
            if isinstance(header, DicomHeader):
                one_by_one.add_header("c", header, secret=SECRET)

        assert report.indexed > 256  # enough for the process pool
        assert _rows(harvested) == _rows(one_by_one)


class TestIncrementalHarvest:
    def _copy(self, synthetic_root: Path, target: Path) -> list[Path]:
        copied = []
        for path in sorted(p for p in synthetic_root.rglob("*") if p.is_file()):
            out = target / path.relative_to(synthetic_root)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(path.read_bytes())
            copied.append(out)
        return copied

    def test_reharvest_unchanged_reads_nothing(self, synthetic_root: Path, tmp_path: Path) -> None:
        files = self._copy(synthetic_root, tmp_path / "c")
        with DicomIndex(tmp_path / "i.sqlite") as index:
            index_collection(tmp_path / "c", index, collection="c", secret=SECRET)

            again = index_collection(tmp_path / "c", index, collection="c", secret=SECRET)

            assert (again.indexed, again.unchanged, again.removed) == (0, len(files), 0)
            assert index.count_for_table("c", "instance") == len(files)

    def test_reharvest_removed_and_changed_files(self, synthetic_root: Path, tmp_path: Path) -> None:
        files = self._copy(synthetic_root, tmp_path / "c")
        with DicomIndex(tmp_path / "i.sqlite") as index:
            index_collection(tmp_path / "c", index, collection="c", secret=SECRET)
            series = index.count_for_table("c", "series")
            same_series = [p for p in files if p.parent == files[0].parent]
            for path in same_series:  # a whole series disappears
                path.unlink()
            files[-1].write_bytes(b"no longer DICOM")

            again = index_collection(tmp_path / "c", index, collection="c", secret=SECRET)

            assert again.removed == len(same_series)
            assert again.indexed == 0
            assert [s.path for s in again.skipped] == [files[-1]]
            assert index.count_for_table("c", "instance") == len(files) - len(same_series) - 1
            assert index.count_for_table("c", "series") == series - 1

    def test_harvest_resumes_after_crash(self, synthetic_root: Path, tmp_path: Path) -> None:
        import station.indexer as indexer

        files = self._copy(synthetic_root, tmp_path / "c")
        read: list[Path] = []

        def crash_after_batch(path: Path, seen: int) -> None:
            if seen == 10:
                raise KeyboardInterrupt

        real = indexer._read_values

        def counting(path: str) -> dict[str, str | None] | str:
            read.append(Path(path))
            return real(path)

        with DicomIndex(tmp_path / "i.sqlite") as index:
            old_batch = indexer._BATCH
            indexer._BATCH = 4
            try:
                with pytest.raises(KeyboardInterrupt):
                    index_collection(
                        tmp_path / "c", index, collection="c", secret=SECRET, on_progress=crash_after_batch
                    )
                indexer._read_values = counting
                try:
                    resumed = index_collection(tmp_path / "c", index, collection="c", secret=SECRET)
                finally:
                    indexer._read_values = real
            finally:
                indexer._BATCH = old_batch

            assert resumed.unchanged == 8  # two finished batches of four
            assert len(read) == len(files) - 8
            assert index.count_for_table("c", "instance") == len(files)

    def test_parallel_harvest_resumes_after_crash(
        self, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import station.indexer as indexer

        for copy in range(4):  # enough files for the process pool
            self._copy(synthetic_root, tmp_path / "c" / str(copy))
        total = sum(1 for _ in iter_dicom_paths(tmp_path / "c"))
        monkeypatch.setattr(indexer, "_BATCH", 40)

        def crash(path: Path, seen: int) -> None:
            if seen == 170:
                raise KeyboardInterrupt

        with DicomIndex(tmp_path / "i.sqlite") as index:
            with pytest.raises(KeyboardInterrupt):
                index_collection(tmp_path / "c", index, collection="c", secret=SECRET, on_progress=crash, workers=2)
            resumed = index_collection(tmp_path / "c", index, collection="c", secret=SECRET, workers=2)

            assert resumed.unchanged == 160  # four finished chunks of forty
            assert resumed.indexed == total - 160 > 256
            stored = index.connection.execute("SELECT COUNT(*) FROM file WHERE status = 'indexed'").fetchone()[0]
            assert stored == total  # the copies share their UIDs: one instance row for four files

    def test_reharvest_from_a_relative_root_reads_nothing(
        self, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self._copy(synthetic_root, tmp_path / "c")
        monkeypatch.chdir(tmp_path / "c")
        with DicomIndex(tmp_path / "i.sqlite") as index:
            first = index_collection(Path("."), index, collection="c", secret=SECRET)
            again = index_collection(Path("."), index, collection="c", secret=SECRET, workers=2)
            stored = [row[0] for row in index.connection.execute("SELECT path FROM file")]

        assert first.indexed > 0 and (again.indexed, again.unchanged) == (0, first.indexed)
        assert stored and not any(path.startswith("./") for path in stored)  # the text of Path(".") / name

    def test_harvest_bad_files_never_stop_it(self, synthetic_root: Path, tmp_path: Path) -> None:
        root = tmp_path / "c"
        self._copy(synthetic_root, root)
        (root / "empty").write_bytes(b"")
        (root / "notes.txt").write_text("text")
        (root / "cut.dcm").write_bytes(_testdata("CT_small.dcm").read_bytes()[:300])
        (root / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")

        with DicomIndex(tmp_path / "i.sqlite") as index:
            report = index_collection(root, index, collection="c", secret=SECRET)
            again = index_collection(root, index, collection="c", secret=SECRET)

        reasons = {s.path.name: s.reason for s in report.skipped}
        assert set(reasons) == {"empty", "notes.txt", "cut.dcm", "DICOMDIR"}
        assert reasons["DICOMDIR"] == "DICOMDIR index"
        assert {s.path.name: s.reason for s in again.skipped} == reasons


def _variant(path: Path, **changes: object) -> None:
    dataset = dcmread(_testdata("CT_small.dcm"))
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    dataset.save_as(path, enforce_file_format=True)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns while writing the odd files
def test_odd_character_sets_and_huge_private_tags_are_indexed_or_skipped_with_reasons(tmp_path: Path) -> None:
    from pydicom.uid import generate_uid

    root = tmp_path / "odd"
    root.mkdir()
    _variant(root / "japanese.dcm", SpecificCharacterSet="ISO 2022 IR 87", SOPInstanceUID=generate_uid())
    _variant(root / "unknown-charset.dcm", SpecificCharacterSet="ISO_IR 999", SOPInstanceUID=generate_uid())
    _variant(
        root / "latin1.dcm",
        SpecificCharacterSet="ISO_IR 100",
        Manufacturer="Médica",
        SOPInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
    )
    huge = dcmread(_testdata("CT_small.dcm"))
    huge.SOPInstanceUID = generate_uid()
    block = huge.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "OB", b"\0" * (6 * 1024 * 1024))  # beyond the scanner's read limit: pydicom decides
    huge.save_as(root / "huge-private.dcm", enforce_file_format=True)
    bad_utf8 = root / "bad-utf8.dcm"
    _variant(bad_utf8, SpecificCharacterSet="ISO_IR 192", SOPInstanceUID=generate_uid())
    raw = bad_utf8.read_bytes().replace(b"SIEMENS", b"SIEM\xff\xfeS")
    bad_utf8.write_bytes(raw)

    with DicomIndex(tmp_path / "i.sqlite") as index:
        report = index_collection(root, index, collection="c", secret=SECRET)
        manufacturers = {row[0] for row in index.connection.execute("SELECT manufacturer FROM series")}

    assert report.indexed + len(report.skipped) == 5, report
    assert all(skipped.reason for skipped in report.skipped)
    assert {"japanese.dcm", "unknown-charset.dcm", "latin1.dcm", "huge-private.dcm"} <= {
        path.name for path in root.iterdir()
    }
    assert report.indexed >= 4  # the odd ones are indexed by pydicom when the scanner steps aside
    assert "Médica" in manufacturers
