"""Realistic synthetic DICOM collections for demos and tests (never real patient data).

Each site gets its own scanner vendor (site 0 SIEMENS, 1 GE MEDICAL SYSTEMS, 2 Philips)
and a site-dependent intensity offset, so a federated train sees a realistic site effect.
Every patient has one or two studies: CT chest, CT abdomen or MR head, each one series of a
few 64 x 64 slices with ellipse "anatomy" plus noise. Output is deterministic for a seed:
same seed, same UIDs, headers and pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

__all__ = ["SITE_VENDORS", "SyntheticCollection", "write_synthetic_collection"]


@dataclass(frozen=True)
class _Vendor:
    manufacturer: str
    ct_model: str
    mr_model: str
    institution: str
    field_strength: float


SITE_VENDORS = (
    _Vendor("SIEMENS", "SOMATOM Definition AS", "MAGNETOM Skyra", "Synthetic University Hospital A", 3.0),
    _Vendor("GE MEDICAL SYSTEMS", "Revolution CT", "SIGNA Premier", "Synthetic General Hospital B", 3.0),
    _Vendor("Philips", "Ingenuity CT", "Ingenia", "Synthetic Medical Centre C", 1.5),
)
_KINDS = (("CT", "CHEST"), ("CT", "ABDOMEN"), ("MR", "HEAD"))
_SIZE = 64


@dataclass(frozen=True, kw_only=True)
class SyntheticCollection:
    """What :func:`write_synthetic_collection` wrote."""

    root: Path
    patients: int
    studies: int
    series: int
    instances: int


def _ellipse(shape: int, cy: float, cx: float, ry: float, rx: float) -> NDArray[np.bool_]:
    y, x = np.mgrid[0:shape, 0:shape]
    inside: NDArray[np.bool_] = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
    return inside


def _ct_slice(rng: np.random.Generator, part: str, z: float, offset: float) -> NDArray[np.int16]:
    hu = np.full((_SIZE, _SIZE), -1000.0)
    scale = 1.0 - 0.15 * abs(z)
    body = _ellipse(_SIZE, 32, 32, 22 * scale + 2, 28 * scale + 2)
    hu[body] = 40.0
    if part == "CHEST":
        hu[_ellipse(_SIZE, 30, 20, 13 * scale, 8 * scale)] = -820.0
        hu[_ellipse(_SIZE, 30, 44, 13 * scale, 8 * scale)] = -820.0
        hu[_ellipse(_SIZE, 34, 31, 6, 7)] = 45.0
    else:
        hu[_ellipse(_SIZE, 28, 22, 10 * scale, 12 * scale)] = 60.0
        hu[_ellipse(_SIZE, 30, 42, 4, 4)] = 30.0
    hu[_ellipse(_SIZE, 48, 32, 4, 4)] = 700.0
    hu[body] += offset
    hu += rng.normal(0.0, 12.0, hu.shape)
    return np.clip(np.round(hu + 1024.0), 0, 4095).astype(np.int16)


def _mr_slice(rng: np.random.Generator, z: float, offset: float) -> NDArray[np.uint16]:
    values = np.zeros((_SIZE, _SIZE))
    scale = 1.0 - 0.2 * abs(z)
    values[_ellipse(_SIZE, 32, 32, 26 * scale + 1, 21 * scale + 1)] = 550.0
    values[_ellipse(_SIZE, 32, 32, 23 * scale, 18 * scale)] = 800.0
    values[_ellipse(_SIZE, 28, 28, 5 * scale, 2.5)] = 250.0
    values[_ellipse(_SIZE, 28, 36, 5 * scale, 2.5)] = 250.0
    values[values > 0] += offset
    values += np.abs(rng.normal(0.0, 20.0, values.shape))
    return np.clip(np.round(values), 0, 65535).astype(np.uint16)


def _base_dataset(sop_class: UID, sop_uid: UID) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def write_synthetic_collection(
    out_dir: Path, *, site_index: int, seed: int, patients: int = 16, slices: int = 6
) -> SyntheticCollection:
    """Write a synthetic imaging collection of one site.

    Parameters
    ----------
    out_dir
        Created when absent. Even-numbered patients go to nested folders with extension-less
        file names, odd-numbered ones to ``.dcm`` files.
    site_index
        Picks the vendor (0 SIEMENS, 1 GE MEDICAL SYSTEMS, 2 Philips, then round again) and
        the intensity offset.
    seed
        Same seed and site, same files.
    patients
        How many patients (the default 16 lets most counts pass k = 5).
    slices
        Slices per series.

    Returns
    -------
    SyntheticCollection
        The counts written.

    Examples
    --------
    >>> import tempfile
    >>> write_synthetic_collection(Path(tempfile.mkdtemp()), site_index=0, seed=1, patients=2).patients
    2
    """
    if patients < 1 or slices < 1:
        raise ValueError("patients and slices must be at least 1")
    vendor = SITE_VENDORS[site_index % len(SITE_VENDORS)]
    rng = np.random.default_rng([seed, site_index])
    offset = 25.0 * site_index
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"studies": 0, "series": 0, "instances": 0}

    def uid(*parts: object) -> UID:
        return generate_uid(entropy_srcs=[str(seed), str(site_index), *map(str, parts)])

    for p in range(patients):
        patient_id = f"SYN{site_index}-{seed % 1000:03d}-{p:04d}"
        sex = "F" if rng.random() < 0.5 else "M"
        age = int(rng.integers(25, 86))
        kinds = [_KINDS[p % len(_KINDS)]]
        if rng.random() < 0.5:
            kinds.append(_KINDS[int(rng.integers(0, len(_KINDS)))])
        for s, (modality, part) in enumerate(kinds):
            study_date = date(2023, 1, 1) + timedelta(days=int(rng.integers(0, 700)))
            birth = study_date - timedelta(days=int(age * 365.25 + rng.integers(0, 300)))
            study_uid, series_uid, frame_uid = uid(p, s, "study"), uid(p, s, "series"), uid(p, s, "frame")
            thickness = float(rng.choice([1.0, 2.5, 5.0])) if modality == "CT" else 4.0
            spacing = round(float(rng.uniform(0.6, 0.9)) * 512 / _SIZE, 4)
            for n in range(slices):
                z = (n - (slices - 1) / 2) / max(slices, 2)
                sop_class = CTImageStorage if modality == "CT" else MRImageStorage
                ds = _base_dataset(sop_class, uid(p, s, n, "sop"))
                ds.SpecificCharacterSet = "ISO_IR 100"
                ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
                ds.PatientName = f"Synthetic^Patient{site_index}{p:03d}"
                ds.PatientID = patient_id
                ds.PatientBirthDate = birth.strftime("%Y%m%d")
                ds.PatientSex = sex
                ds.PatientAge = f"{age:03d}Y"
                ds.StudyInstanceUID = study_uid
                ds.SeriesInstanceUID = series_uid
                ds.FrameOfReferenceUID = frame_uid
                ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date.strftime("%Y%m%d")
                ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{8 + p % 9:02d}{(7 * s) % 60:02d}00"
                ds.AccessionNumber = f"A{site_index}{p:04d}{s}"
                ds.StudyID = f"{s + 1}"
                ds.StudyDescription = f"{modality} {part.title()}"
                ds.SeriesDescription = f"{part.title()} {'axial' if modality == 'CT' else 'T2 axial'}"
                ds.SeriesNumber = s + 1
                ds.InstanceNumber = n + 1
                ds.Modality = modality
                ds.BodyPartExamined = part
                ds.Manufacturer = vendor.manufacturer
                ds.ManufacturerModelName = vendor.ct_model if modality == "CT" else vendor.mr_model
                ds.InstitutionName = vendor.institution
                ds.PatientPosition = "HFS"
                ds.SliceThickness = thickness
                ds.PixelSpacing = [spacing, spacing]
                ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                location = round(n * thickness - 100.0, 2)
                ds.ImagePositionPatient = [round(-spacing * _SIZE / 2, 2), round(-spacing * _SIZE / 2, 2), location]
                ds.SliceLocation = location
                ds.SamplesPerPixel = 1
                ds.PhotometricInterpretation = "MONOCHROME2"
                ds.Rows = ds.Columns = _SIZE
                ds.BitsAllocated = 16
                if modality == "CT":
                    pixels: NDArray[np.int16] | NDArray[np.uint16] = _ct_slice(rng, part, z, offset)
                    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
                    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
                    ds.KVP = float(rng.choice([100.0, 120.0]))
                    ds.WindowCenter, ds.WindowWidth = (-600, 1500) if part == "CHEST" else (40, 400)
                else:
                    pixels = _mr_slice(rng, z, offset)
                    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 0
                    ds.MagneticFieldStrength = vendor.field_strength
                    ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "SE", "SK", "2D"
                    ds.RepetitionTime, ds.EchoTime = 4000.0, 90.0
                ds.PixelData = pixels.tobytes()
                if p % 2 == 0:
                    path = out_dir / f"P{p:04d}" / f"ST{s + 1}" / f"SE{s + 1}" / f"IM{n + 1:04d}"
                else:
                    path = out_dir / f"patient-{p:04d}" / f"{modality.lower()}-{part.lower()}-{s + 1}-{n + 1:03d}.dcm"
                path.parent.mkdir(parents=True, exist_ok=True)
                dcmwrite(path, ds, enforce_file_format=True)
                counts["instances"] += 1
            counts["studies"] += 1
            counts["series"] += 1
    return SyntheticCollection(root=out_dir, patients=patients, **counts)
