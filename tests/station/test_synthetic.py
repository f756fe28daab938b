import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

from station.synthetic import write_synthetic_collection


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_write_synthetic_collection_is_deterministic(tmp_path: Path) -> None:
    # Execute
    write_synthetic_collection(tmp_path / "a", site_index=1, seed=5, patients=4)
    write_synthetic_collection(tmp_path / "b", site_index=1, seed=5, patients=4)
    write_synthetic_collection(tmp_path / "c", site_index=1, seed=6, patients=4)

    # Assert
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_write_synthetic_collection_headers_are_realistic(synthetic_root: Path) -> None:
    files = sorted(p for p in synthetic_root.rglob("*") if p.is_file())
    datasets = [dcmread(p) for p in files]
    modalities = {ds.Modality for ds in datasets}

    assert modalities == {"CT", "MR"}
    for ds in datasets:
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == (CTImageStorage if ds.Modality == "CT" else MRImageStorage)
        assert ds.Manufacturer == "SIEMENS"
        assert ds.PatientAge.endswith("Y") and len(ds.PatientAge) == 4
        assert ds.PatientSex in {"F", "M"}
        assert ds.BodyPartExamined in {"CHEST", "ABDOMEN", "HEAD"}
        assert len(ds.ImagePositionPatient) == 3 and len(ds.ImageOrientationPatient) == 6
        assert ds.Rows == ds.Columns == 64
        if ds.Modality == "CT":
            assert ds.RescaleIntercept == -1024 and float(ds.KVP) > 0
        else:
            assert float(ds.MagneticFieldStrength) > 0


def test_write_synthetic_collection_pixels_have_structure(synthetic_root: Path) -> None:
    ct = next(dcmread(p) for p in sorted(synthetic_root.rglob("*.dcm")) if dcmread(p).Modality == "CT")

    hu = ct.pixel_array.astype(float) * float(ct.RescaleSlope) + float(ct.RescaleIntercept)

    assert hu.shape == (64, 64)
    assert hu[0, 0] < -900  # air outside the body
    assert np.median(hu[28:36, 28:36]) > -200  # tissue at the centre
    assert hu.std() > 100


def test_write_synthetic_collection_sites_differ(tmp_path: Path) -> None:
    means = []
    for site in (0, 2):
        root = tmp_path / f"s{site}"
        write_synthetic_collection(root, site_index=site, seed=1, patients=3)
        ds = [dcmread(p) for p in sorted(root.rglob("*")) if p.is_file()]
        assert {d.Manufacturer for d in ds} == {("SIEMENS", "", "Philips")[site]}
        means.append(np.mean([d.pixel_array.mean() for d in ds if d.Modality == "CT"]))

    assert means[0] != means[1]


def test_write_synthetic_collection_mixes_file_names(synthetic_root: Path) -> None:
    files = [p for p in synthetic_root.rglob("*") if p.is_file()]

    assert any(p.suffix == ".dcm" for p in files)
    assert any(p.suffix == "" and len(p.relative_to(synthetic_root).parts) == 4 for p in files)


@pytest.mark.slow
def test_write_synthetic_collection_three_sites_are_fast(tmp_path: Path) -> None:
    started = time.monotonic()

    for site in range(3):
        write_synthetic_collection(tmp_path / f"site{site}", site_index=site, seed=42)

    assert time.monotonic() - started < 10


def test_write_synthetic_collection_rejects_no_patients(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        write_synthetic_collection(tmp_path, site_index=0, seed=1, patients=0)
