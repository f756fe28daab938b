"""No output of a train is ever DICOM, so no derived DICOM leaves a station to be de-identified.

A train declares outputs as json, csv, text or safetensors only; a DICOM file written under
any of these types fails the type check or the disclosure rules (its UIDs).
"""

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydicom.data import get_testdata_files

from protocol import OutputSpec, PolicyError
from station.indexer import DicomHeader, read_header
from station.output_policy import DisclosureRules, check_disclosure
from station.outputs import check_output_type

DICOM_FILES = [Path(path) for path in get_testdata_files() if isinstance(read_header(Path(path)), DicomHeader)]


@pytest.mark.parametrize("kind", ["dicom", "dcm", "application/dicom", "binary"])
def test_a_train_cannot_declare_a_dicom_output(kind: str) -> None:
    with pytest.raises(ValidationError):
        OutputSpec(name="derived.dcm", type=kind)


@pytest.mark.parametrize("kind", ["json", "csv", "text", "safetensors"])
def test_a_dicom_file_never_passes_as_a_declared_output(kind: str) -> None:
    passed = []
    for path in DICOM_FILES:
        data = path.read_bytes()
        try:
            check_output_type(path.name, data, kind)
            check_disclosure([(path.name, kind, data)], DisclosureRules())
        except PolicyError:
            continue
        passed.append(path.name)

    assert len(DICOM_FILES) > 150
    assert passed == []
