"""The cohort-stats example train, run as a subprocess on synthetic DICOM built from pydicom's test files."""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import numpy as np
import pydicom
import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN_DIR = REPO / "examples" / "trains" / "cohort-stats"


def load_sample_dicom() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_dicom", REPO / "examples" / "trains" / "sample_dicom.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_train(tmp_path: Path, data_dir: Path, parameters: dict[str, object] | None = None) -> dict[str, object]:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    job_file = tmp_path / "job.json"
    job: dict[str, object] = {
        "job_id": "job-1",
        "station": "site-a",
        "collection": "chest-ct",
        "outputs": ["cohort.json"],
    }
    if parameters is not None:
        job["parameters"] = parameters
    job_file.write_text(json.dumps(job))
    env = {
        **os.environ,
        "TRAINYARD_JOB": str(job_file),
        "TRAINYARD_DATA": str(data_dir),
        "TRAINYARD_OUT": str(out_dir),
        "TRAINYARD_TRAIN": str(TRAIN_DIR),
        "PYTHONPATH": str(REPO),
    }
    completed = subprocess.run(
        [sys.executable, str(TRAIN_DIR / "main.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert [p.name for p in out_dir.iterdir()] == ["cohort.json"]
    result: dict[str, object] = json.loads((out_dir / "cohort.json").read_text())
    return result


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("collection")
    files = load_sample_dicom().write_sample_collection(root, subjects=12)
    return root, files


def identifiers_in(files: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found |= {str(ds.PatientID), str(ds.PatientName), ds.StudyInstanceUID, ds.SeriesInstanceUID}
        found |= {ds.SOPInstanceUID}
    return found


def expected_intensities(files: list[Path]) -> dict[str, list[float]]:
    per_series: dict[str, tuple[str, list[np.ndarray]]] = {}
    for path in files:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
            ds.get("RescaleIntercept", 0)
        )
        per_series.setdefault(ds.SeriesInstanceUID, (ds.Modality, []))[1].append(pixels.ravel())
    by_modality: dict[str, list[float]] = defaultdict(list)
    for modality, arrays in per_series.values():
        by_modality[modality].append(float(np.concatenate(arrays).mean()))
    return by_modality


@pytest.mark.slow
def test_cohort_stats_counts_and_suppression(tmp_path: Path, collection: tuple[Path, list[Path]]) -> None:
    # Prepare
    root, _ = collection
    # Execute
    actual = run_train(tmp_path, root)
    # Assert
    assert actual["k"] == 5
    assert (actual["station"], actual["collection"]) == ("site-a", "chest-ct")
    assert (actual["subjects"], actual["studies"], actual["series"], actual["instances"]) == (12, 12, 18, 30)
    assert actual["subjects_by_sex"] == {"F": 6, "M": 6, "O": 0, "unknown": 0}
    assert actual["subjects_by_age_band"] == {"40-49": 7, "50-59": 5}
    assert actual["series_by_modality"] == {"CT": 12, "MR": 6}
    assert actual["instances_by_modality"] == {"CT": 24, "MR": 6}
    # one broken file: a count of 1 is suppressed
    assert actual["files"] == {"read": 30, "unreadable": None, "without_pixels": 0}


@pytest.mark.slow
def test_cohort_stats_mean_intensity_after_rescale(tmp_path: Path, collection: tuple[Path, list[Path]]) -> None:
    root, files = collection
    expected = expected_intensities(files)
    actual = run_train(tmp_path, root)["mean_intensity_by_modality"]
    assert isinstance(actual, dict)
    for modality, means in expected.items():
        assert actual[modality]["n_series"] == len(means)
        assert actual[modality]["mean"] == pytest.approx(statistics.fmean(means), abs=1e-3)
        assert actual[modality]["sd"] == pytest.approx(statistics.stdev(means), abs=1e-3)


@pytest.mark.slow
def test_cohort_stats_writes_no_identifiers(tmp_path: Path, collection: tuple[Path, list[Path]]) -> None:
    root, files = collection
    run_train(tmp_path, root)
    text = (tmp_path / "out" / "cohort.json").read_text()
    leaked = sorted(value for value in identifiers_in(files) if value and value in text)
    assert leaked == []
    assert "SYN" not in text and "Synthetic" not in text and str(root) not in text


@pytest.mark.slow
def test_cohort_stats_small_cohort_all_suppressed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    load_sample_dicom().write_sample_collection(root, subjects=3)
    actual = run_train(tmp_path, root)
    assert (actual["subjects"], actual["studies"], actual["series"]) == (None, None, 5)
    assert actual["subjects_by_sex"] == {"F": None, "M": None, "O": 0, "unknown": 0}
    assert actual["series_by_modality"] == {"CT": None, "MR": None}
    assert actual["mean_intensity_by_modality"] == {
        "CT": {"n_series": None, "mean": None, "sd": None},
        "MR": {"n_series": None, "mean": None, "sd": None},
    }


@pytest.mark.slow
def test_cohort_stats_k_parameter_from_job(tmp_path: Path, collection: tuple[Path, list[Path]]) -> None:
    root, _ = collection
    actual = run_train(tmp_path, root, parameters={"k": 13})
    assert actual["k"] == 13
    assert actual["subjects"] is None
    assert actual["instances"] == 30
    assert actual["series_by_modality"] == {"CT": None, "MR": None}


@pytest.mark.slow
def test_cohort_stats_empty_and_unreadable_collection(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    for index in range(6):
        (root / f"junk{index}.dcm").write_bytes(os.urandom(300))
    actual = run_train(tmp_path, root)
    assert (actual["subjects"], actual["series"], actual["instances"]) == (0, 0, 0)
    assert actual["files"] == {"read": 0, "unreadable": 6, "without_pixels": 0}
    assert actual["mean_intensity_by_modality"] == {}
