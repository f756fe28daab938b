"""Finding DICOM files by suffix or by the DICM marker."""

from pathlib import Path

import pytest

from trainkit import iter_dicom_files


def dicom_bytes() -> bytes:
    return b"\0" * 128 + b"DICM" + b"\x02\x00"


def test_iter_dicom_files_recursive_with_and_without_suffix(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "a.dcm").write_bytes(b"anything")
    (tmp_path / "b" / "IMG0001").write_bytes(dicom_bytes())
    (tmp_path / "b" / "c" / "x.DICOM").write_bytes(b"")
    (tmp_path / "b" / "notes.txt").write_text("not dicom")
    (tmp_path / "b" / "short").write_bytes(b"tiny")
    (tmp_path / "DICOMDIR").write_bytes(dicom_bytes())
    (tmp_path / ".hidden.dcm").write_bytes(dicom_bytes())
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.dcm").write_bytes(dicom_bytes())
    # Execute
    actual = [p.relative_to(tmp_path).as_posix() for p in iter_dicom_files(tmp_path)]
    # Assert
    assert actual == ["a.dcm", "b/IMG0001", "b/c/x.DICOM"]


def test_iter_dicom_files_suffix_only(tmp_path: Path) -> None:
    (tmp_path / "IMG0001").write_bytes(dicom_bytes())
    (tmp_path / "a.dcm").write_bytes(b"")
    assert [p.name for p in iter_dicom_files(tmp_path, check_magic=False)] == ["a.dcm"]


def test_iter_dicom_files_does_not_follow_folder_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.dcm").write_bytes(dicom_bytes())
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert list(iter_dicom_files(root)) == []


def test_iter_dicom_files_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="does not exist"):
        list(iter_dicom_files(tmp_path / "missing"))


def test_iter_dicom_files_real_pydicom_file(tmp_path: Path) -> None:
    data = pytest.importorskip("pydicom.data")
    source = Path(data.get_testdata_file("CT_small.dcm", download=False))
    (tmp_path / "ct").write_bytes(source.read_bytes())
    assert [p.name for p in iter_dicom_files(tmp_path)] == ["ct"]
