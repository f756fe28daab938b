"""Annex E de-identification on every file pydicom ships: nothing in the table keeps its value
unless an applied option says so; method codes recorded; UIDs consistent; dates shifted."""

import copy
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset

from station.deid import DeidOptions, annex_e_table, deidentify_dataset
from station.deid.engine import _action, _rule_for

REPO = Path(__file__).resolve().parents[3]
KEY = b"station-secret"
OPTION_SETS = {
    "basic": DeidOptions(),
    "all": DeidOptions(retain_dates_modified=True, clean_descriptors=True, retain_device_identity=True),
}


def readable_files() -> list[Path]:
    files = []
    for name in get_testdata_files():
        path = Path(name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: S112 - not a DICOM file pydicom can read: nothing to de-identify
            continue
        files.append(path)
    return files


FILES = readable_files()


def walk(dataset: Dataset, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    for element in dataset:
        path = (*prefix, int(element.tag))
        yield path, element
        if element.VR == "SQ" and element.value is not None:
            for index, item in enumerate(element.value):
                yield from walk(item, (*path, index))


def test_the_table_is_what_the_generator_makes() -> None:
    check = subprocess.run(
        [sys.executable, str(REPO / "tools" / "generate_annex_e.py"), "--check"], capture_output=True, text=True
    )

    assert check.returncode == 0, check.stderr
    table = annex_e_table()
    assert table["edition"].startswith("DICOM PS3.15") and len(table["attributes"]) > 400


@pytest.mark.parametrize("options", list(OPTION_SETS), ids=list(OPTION_SETS))
@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_no_table_attribute_keeps_its_value(path: Path, options: str) -> None:
    chosen = OPTION_SETS[options]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = dcmread(path, stop_before_pixels=True)
    result = deidentify_dataset(copy.deepcopy(original), chosen, key=KEY)
    after = {item_path: element for item_path, element in walk(result)}

    kept_wrongly = []
    for item_path, element in walk(original):
        rule = _rule_for(element.tag)
        if rule is None or element.VR == "SQ" or element.value in (None, "", b"", []):
            continue
        if _action(rule, chosen) == "K":
            continue
        now = after.get(item_path)
        if now is not None and now.value == element.value:
            kept_wrongly.append(f"{element.tag} {element.keyword}")
    assert kept_wrongly == []
    assert not any(element.tag.is_private for _path, element in walk(result))
    assert result.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in result.DeidentificationMethodCodeSequence]
    assert codes[0] == "113100"
    if options == "all":
        assert set(codes) == {"113100", "113107", "113105", "113109"}


def test_uids_are_replaced_consistently_and_dates_keep_intervals() -> None:
    first = dcmread(get_testdata_file("CT_small.dcm"))
    second = copy.deepcopy(first)
    second.StudyDate = "20040120"  # one day later than the first's (20040119)
    options = DeidOptions(retain_dates_modified=True)

    a = deidentify_dataset(copy.deepcopy(first), options, key=KEY)
    b = deidentify_dataset(second, options, key=KEY)
    other_key = deidentify_dataset(copy.deepcopy(first), options, key=b"another station")

    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.StudyInstanceUID.startswith("2.25.")
    assert other_key.StudyInstanceUID != a.StudyInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.StudyDate != first.StudyDate
    assert int(b.StudyDate) - int(a.StudyDate) in {1, 70, 71, 72, 73, 8870}  # one day later, across month ends


def test_device_identity_is_kept_only_with_its_option() -> None:
    original = dcmread(get_testdata_file("CT_small.dcm"))
    original.StationName = "CT-ROOM-3"

    basic = deidentify_dataset(copy.deepcopy(original), DeidOptions(), key=KEY)
    kept = deidentify_dataset(copy.deepcopy(original), DeidOptions(retain_device_identity=True), key=KEY)

    assert "StationName" not in basic or basic.StationName != "CT-ROOM-3"
    assert kept.StationName == "CT-ROOM-3"


def test_cli_deidentifies_a_folder_and_reports_bad_files(tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from station.cli import app

    source = tmp_path / "src"
    (source / "a").mkdir(parents=True)
    shutil.copy(get_testdata_file("CT_small.dcm"), source / "a" / "ct.dcm")
    (source / "notes.txt").write_text("not DICOM")

    result = CliRunner().invoke(
        app,
        ["deidentify", str(source), str(tmp_path / "out"), "--state", str(tmp_path / "st"), "--retain-dates-modified"],
    )

    assert result.exit_code == 0, result.output
    assert "wrote 1 files" in result.output and "skipped 1" in result.output
    copy_ = dcmread(tmp_path / "out" / "a" / "ct.dcm")
    assert copy_.PatientIdentityRemoved == "YES"
    assert copy_.PatientName != dcmread(source / "a" / "ct.dcm").PatientName
