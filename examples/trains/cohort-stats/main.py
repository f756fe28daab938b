"""Cohort statistics for one station's collection, with small counts suppressed.

Writes ``cohort.json``: subjects by age band (decades) and by sex, studies, series and
instances by modality, and the mean pixel intensity of each series (after the modality
rescale) summarised per modality as mean, sd and number of series. Every count between
1 and k-1 is null. No per-patient or per-series rows, identifiers or names are written.
Files that cannot be read are skipped and counted.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

import trainkit

TRAIN_NAME = "cohort-stats"
TRAIN_VERSION = "0.1.0"
OUTPUT = "cohort.json"
UNKNOWN = "unknown"
SEXES = ("F", "M", "O")


@dataclass
class _Subject:
    sex: str = UNKNOWN
    age: int | None = None


@dataclass
class _Series:
    modality: str = UNKNOWN
    pixel_sum: float = 0.0
    pixel_count: int = 0


@dataclass
class _Tally:
    subjects: dict[str, _Subject] = field(default_factory=dict)
    studies: set[str] = field(default_factory=set)
    series: dict[str, _Series] = field(default_factory=dict)
    instances_by_modality: dict[str, int] = field(default_factory=dict)
    files_read: int = 0
    files_unreadable: int = 0
    files_without_pixels: int = 0


def _text(dataset: Any, keyword: str) -> str:
    """Return an element's value as stripped text, empty when absent."""
    value = dataset.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _parse_date(value: str) -> date | None:
    """Parse a DICOM DA value (YYYYMMDD)."""
    try:
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8])) if len(value) >= 8 else None
    except ValueError:
        return None


def _age_years(dataset: Any) -> int | None:
    """Age in whole years from PatientAge (nnnY/M/W/D), else from birth and study dates."""
    age = _text(dataset, "PatientAge").upper()
    if len(age) == 4 and age[:3].isdigit() and age[3] in "YMWD":
        per_year = {"Y": 1, "M": 12, "W": 52, "D": 365}[age[3]]
        return int(age[:3]) // per_year
    born = _parse_date(_text(dataset, "PatientBirthDate"))
    seen = _parse_date(_text(dataset, "StudyDate")) or _parse_date(_text(dataset, "AcquisitionDate"))
    if born and seen and seen >= born:
        return seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    return None


def _age_band(age: int | None) -> str:
    """Decade band such as ``40-49``; 90 and over share one band."""
    if age is None or age < 0:
        return UNKNOWN
    if age >= 90:
        return "90+"
    low = age // 10 * 10
    return f"{low:02d}-{low + 9:02d}"


def _mean_pixels(dataset: Any) -> tuple[float, int] | None:
    """Sum and number of pixel values after RescaleSlope/Intercept; None without pixel data."""
    if "PixelData" not in dataset:
        return None
    pixels = np.asarray(dataset.pixel_array, dtype=np.float64)
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    values = pixels * slope + intercept
    if values.size == 0 or not np.all(np.isfinite(values)):
        return None
    return float(values.sum()), int(values.size)


def _add_file(tally: _Tally, path: Path) -> None:
    """Read one file into the tally; unreadable files are only counted."""
    try:
        dataset = pydicom.dcmread(path)
    except Exception:  # any broken file is skipped, never fatal
        tally.files_unreadable += 1
        return
    series_uid = _text(dataset, "SeriesInstanceUID")
    if not series_uid and "PixelData" not in dataset and "PatientID" not in dataset:
        tally.files_unreadable += 1  # not an instance at all (e.g. an index file)
        return
    tally.files_read += 1

    patient = _text(dataset, "PatientID") or f"{UNKNOWN}:{_text(dataset, 'StudyInstanceUID') or path}"
    subject = tally.subjects.setdefault(patient, _Subject())
    sex = _text(dataset, "PatientSex").upper()
    if subject.sex == UNKNOWN and sex in SEXES:
        subject.sex = sex
    age = _age_years(dataset)
    if age is not None and (subject.age is None or age < subject.age):
        subject.age = age

    study_uid = _text(dataset, "StudyInstanceUID")
    if study_uid:
        tally.studies.add(study_uid)
    modality = _text(dataset, "Modality").upper() or UNKNOWN
    series = tally.series.setdefault(series_uid or f"{UNKNOWN}:{path}", _Series(modality=modality))
    tally.instances_by_modality[modality] = tally.instances_by_modality.get(modality, 0) + 1

    try:
        summed = _mean_pixels(dataset)
    except Exception:  # undecodable pixels (codec missing, truncated data)
        summed = None
    if summed is None:
        tally.files_without_pixels += 1
    else:
        series.pixel_sum += summed[0]
        series.pixel_count += summed[1]


def _intensity_summary(means: list[float], k: int) -> dict[str, Any]:
    """Mean and sd of per-series means; withheld unless at least k series contribute."""
    n = len(means)
    if n == 0 or n < k:
        return {"n_series": trainkit.suppress_small_count(n, k), "mean": None, "sd": None}
    sd = statistics.stdev(means) if n > 1 else 0.0
    return {"n_series": n, "mean": round(statistics.fmean(means), 3), "sd": round(sd, 3) if math.isfinite(sd) else None}


def summarise(tally: _Tally, k: int) -> dict[str, Any]:
    """Build the suppressed aggregate report from a tally."""
    bands: dict[str, int] = {}
    sexes: dict[str, int] = dict.fromkeys((*SEXES, UNKNOWN), 0)
    for subject in tally.subjects.values():
        band = _age_band(subject.age)
        bands[band] = bands.get(band, 0) + 1
        sexes[subject.sex] += 1
    series_by_modality: dict[str, int] = {}
    means_by_modality: dict[str, list[float]] = {}
    for series in tally.series.values():
        series_by_modality[series.modality] = series_by_modality.get(series.modality, 0) + 1
        if series.pixel_count:
            means_by_modality.setdefault(series.modality, []).append(series.pixel_sum / series.pixel_count)

    def count(value: int) -> int | None:
        return trainkit.suppress_small_count(value, k)

    def counts(values: dict[str, int]) -> dict[str, int | None]:
        return trainkit.suppress_small_counts(dict(sorted(values.items())), k, secondary=True)

    return {
        "train": {"name": TRAIN_NAME, "version": TRAIN_VERSION},
        "k": k,
        "subjects": count(len(tally.subjects)),
        "studies": count(len(tally.studies)),
        "series": count(len(tally.series)),
        "instances": count(sum(tally.instances_by_modality.values())),
        "subjects_by_age_band": counts(bands),
        "subjects_by_sex": counts(sexes),
        "series_by_modality": counts(series_by_modality),
        "instances_by_modality": counts(tally.instances_by_modality),
        "mean_intensity_by_modality": {
            modality: _intensity_summary(means_by_modality.get(modality, []), k)
            for modality in sorted(series_by_modality)
        },
        "files": {
            "read": count(tally.files_read),
            "unreadable": count(tally.files_unreadable),
            "without_pixels": count(tally.files_without_pixels),
        },
    }


def main() -> None:
    """Tally every DICOM file of the collection and write cohort.json."""
    job = trainkit.job()
    k = int(job.parameters.get("k", 5))
    if k < 2:
        raise SystemExit(f"{TRAIN_NAME}: parameter k must be at least 2, not {k}")
    tally = _Tally()
    for path in trainkit.iter_dicom_files(job.data_dir):
        _add_file(tally, path)
    report = summarise(tally, k)
    report["station"] = job.station
    report["collection"] = job.collection
    job.out.write_json(OUTPUT, report)
    print(f"{TRAIN_NAME}: wrote {OUTPUT} ({tally.files_read} files read, {tally.files_unreadable} skipped)")


if __name__ == "__main__":
    main()
