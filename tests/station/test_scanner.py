"""The fast header scanner: identical to pydicom on every file pydicom ships, or it steps aside."""

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from station.scanner import WANTED_TAGS, scan_header

PYDICOM_FILES = [Path(path) for path in get_testdata_files()]


def pydicom_values(path: Path) -> dict[str, str | None] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = dcmread(path, stop_before_pixels=True, specific_tags=list(WANTED_TAGS))
    except Exception:
        return None
    values: dict[str, str | None] = {}
    for keyword in WANTED_TAGS:
        value = dataset.get(keyword)
        text = None if value is None else "\\".join(map(str, value)) if isinstance(value, MultiValue) else str(value)
        values[keyword] = (text or "").strip(" \0") or None
    return values


@pytest.mark.parametrize("path", PYDICOM_FILES, ids=lambda path: path.name)
def test_identical_to_pydicom_or_steps_aside(path: Path) -> None:
    fast = scan_header(path)
    reference = pydicom_values(path)

    if fast is not None:
        assert reference is not None, "the scanner read a file pydicom cannot"
        assert fast == reference


def test_most_files_take_the_fast_path() -> None:
    readable = [path for path in PYDICOM_FILES if pydicom_values(path) is not None]

    fast = [path for path in readable if scan_header(path) is not None]

    assert len(fast) >= 0.9 * len(readable)


def write(tmp_path: Path, syntax: str, **attributes: Any) -> Path:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "CT"
    dataset.PatientID = "P-1"
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.dcm"
    dataset.save_as(
        path,
        enforce_file_format=True,
        little_endian=syntax != ExplicitVRBigEndian,
        implicit_vr=syntax == ImplicitVRLittleEndian,
    )
    return path


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_each_uncompressed_syntax(tmp_path: Path, syntax: str) -> None:
    path = write(tmp_path, syntax, BodyPartExamined="CHEST", Manufacturer="ACME\\OTHER")

    assert scan_header(path) == pydicom_values(path)
    assert scan_header(path)["Manufacturer"] == "ACME\\OTHER"  # type: ignore[index]


def test_sequences_before_wanted_tags_are_skipped(tmp_path: Path) -> None:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "1", "DCM", "x"
    path = write(tmp_path, ExplicitVRLittleEndian, ProcedureCodeSequence=[item, item], BodyPartExamined="HEAD")

    assert scan_header(path) == pydicom_values(path)


def _with_private_groups(tmp_path: Path, syntax: str, *, after: bool = False) -> Path:
    """A file whose private groups (odd: never wanted) hold text, a sequence and bytes between the wanted tags."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.Modality, dataset.PatientID, dataset.BodyPartExamined, dataset.Rows = "MR", "P-2", "HEAD", 256
    item = Dataset()
    item.add_new((0x0019, 0x0010), "LO", "ACME")
    item.add_new((0x0019, 0x1001), "LO", "nested private")
    item.SeriesInstanceUID = "1.2.3.4"  # a wanted tag inside an item: never read as the file's
    for group in (0x0009, 0x0019, 0x0021):
        dataset.add_new((group, 0x0010), "LO", "ACME 1.0")
        dataset.add_new((group, 0x1001), "LO", "private text")
        dataset.add_new((group, 0x1002), "SQ", [item, item])
        dataset.add_new((group, 0x1003), "OB", b"\x08\x00\x60\x00CS\x02\x00XX" * 64)  # bytes that look like tags
    if after:  # a private group after the last wanted tag, ahead of a big value
        dataset.add_new((0x0029, 0x0010), "LO", "ACME 1.0")
        dataset.add_new((0x0029, 0x1001), "OB", b"\0" * 600_000)
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.dcm"
    dataset.save_as(
        path,
        enforce_file_format=True,
        little_endian=syntax != ExplicitVRBigEndian,
        implicit_vr=syntax == ImplicitVRLittleEndian,
    )
    return path


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_private_groups_and_their_sequences_are_stepped_over(tmp_path: Path, syntax: str) -> None:
    path = _with_private_groups(tmp_path, syntax)

    fast = scan_header(path)

    assert fast is not None and fast == pydicom_values(path)
    assert (fast["Modality"], fast["Rows"]) == ("MR", "256") and fast["SeriesInstanceUID"] != "1.2.3.4"


def test_a_private_group_past_the_wanted_tags_ends_the_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _with_private_groups(tmp_path, ExplicitVRLittleEndian, after=True)
    read: list[int] = []
    real_read = os.read

    def counting_read(descriptor: int, size: int) -> bytes:
        data = real_read(descriptor, size)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting_read)

    assert scan_header(path) == pydicom_values(path)
    assert sum(read) <= 16 * 1024


def test_bytes_that_are_no_vr_step_aside(tmp_path: Path) -> None:
    path = write(tmp_path, ExplicitVRLittleEndian, BodyPartExamined="HEAD", Manufacturer="ACME")
    data = bytearray(path.read_bytes())
    vr = data.index(b"\x08\x00\x70\x00LO") + 4  # Manufacturer's VR
    data[vr : vr + 2] = b"ZZ"
    path.write_bytes(bytes(data))

    assert scan_header(path) is None  # out of step or not DICOM: pydicom decides


def test_latin1_text_and_unknown_charsets(tmp_path: Path) -> None:
    latin = write(tmp_path, ExplicitVRLittleEndian, SpecificCharacterSet="ISO_IR 100", Manufacturer="Médica")
    japanese = write(tmp_path, ExplicitVRLittleEndian, SpecificCharacterSet="ISO 2022 IR 87", Manufacturer="abc")

    assert scan_header(latin)["Manufacturer"] == "Médica"  # type: ignore[index]
    assert scan_header(japanese) is not None  # ASCII values decode whatever the character set


@pytest.mark.parametrize("content", [b"", b"hello, not DICOM\n", b"\0" * 128 + b"DICM"])
def test_junk_steps_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk"
    path.write_bytes(content)

    assert scan_header(path) is None


def test_truncated_file_steps_aside(tmp_path: Path) -> None:
    whole = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(whole[:700])

    assert scan_header(path) is None


def test_only_the_first_bytes_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        ExplicitVRLittleEndian,
        Rows=512,
        Columns=512,
        BitsAllocated=16,
        BitsStored=16,
        HighBit=15,
        PixelRepresentation=1,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        PixelData=np.zeros((512, 512), dtype=np.int16).tobytes(),
    )
    read: list[int] = []
    real_read = os.read

    def counting_read(descriptor: int, size: int) -> bytes:
        data = real_read(descriptor, size)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting_read)

    assert scan_header(path) is not None
    assert read and path.stat().st_size > 500_000 and sum(read) <= 16 * 1024


@pytest.mark.parametrize("name", ["ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "rtstruct.dcm"])
def test_files_without_preamble_step_aside_to_pydicom(name: str) -> None:
    path = get_testdata_file(name)
    assert path is not None

    assert scan_header(Path(path)) is None  # no "DICM": pydicom reads it, forced (station.indexer)
