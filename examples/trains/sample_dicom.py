"""Write a small synthetic DICOM collection for trying the example trains.

The files are pydicom's own public test images (``CT_small.dcm``, ``MR_small.dcm``) with
new synthetic patients, studies, series and instance UIDs and scaled pixel values: no
real patient data. Each subject gets one study with a CT series of two instances; every
other subject also gets an MR series. One unreadable file and one non-DICOM file are added.

    python examples/trains/sample_dicom.py OUT_DIR [--subjects 12] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

__all__ = ["write_sample_collection"]

_TEMPLATES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm"}


def _template(modality: str) -> pydicom.Dataset:
    """Load pydicom's shipped test file for ``modality`` (no download)."""
    path = get_testdata_file(_TEMPLATES[modality], download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom does not ship {_TEMPLATES[modality]}")
    return pydicom.dcmread(path)


def _write_instance(
    template: pydicom.Dataset, path: Path, *, patient: dict[str, str], study_uid: str, series_uid: str, scale: float
) -> None:
    """Write one instance with the given identity and scaled pixels."""
    ds = template.copy()
    for keyword, value in patient.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    pixels = template.pixel_array.astype(np.float64) * scale
    info = np.iinfo(template.pixel_array.dtype)
    ds.PixelData = np.clip(pixels, info.min, info.max).astype(template.pixel_array.dtype).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)


def write_sample_collection(root: Path, *, subjects: int = 12, seed: int = 0) -> list[Path]:
    """Write a synthetic collection under ``root`` and return the DICOM files written.

    Sexes alternate F/M; ages spread over 40-59 years; files of every other subject have
    no ``.dcm`` suffix. ``root/broken.dcm`` (not DICOM) and ``root/notes.txt`` are added.
    """
    rng = random.Random(seed)
    templates = {modality: _template(modality) for modality in _TEMPLATES}
    written: list[Path] = []
    for index in range(subjects):
        patient = {
            "PatientID": f"SYN{seed:02d}{index:04d}",
            "PatientName": f"Synthetic^{index:04d}",
            "PatientSex": "FM"[index % 2],
            "PatientAge": f"{40 + index * 7 % 20:03d}Y",
            "PatientBirthDate": "",
        }
        study_uid = generate_uid()
        suffix = ".dcm" if index % 2 == 0 else ""
        folder = root / patient["PatientID"]
        series = [("CT", 2)] + ([("MR", 1)] if index % 2 == 0 else [])
        for modality, instances in series:
            series_uid = generate_uid()
            scale = 0.5 + rng.random()
            for number in range(instances):
                path = folder / f"{modality}{number:03d}{suffix}"
                _write_instance(
                    templates[modality], path, patient=patient, study_uid=study_uid, series_uid=series_uid, scale=scale
                )
                written.append(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    (root / "notes.txt").write_text("not an image\n")
    return written


def main() -> None:
    """Command line: write a sample collection."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = write_sample_collection(args.out_dir, subjects=args.subjects, seed=args.seed)
    print(f"wrote {len(files)} DICOM files for {args.subjects} synthetic subjects under {args.out_dir}")


if __name__ == "__main__":
    main()
