"""Harvest speed: Trainyard's harvest against pydicom and the raw read floor.

    .venv/bin/python -m bench.harvest.run --files 20000

generates (once, cached in ``--cache``) synthetic 512x512 CT instances with realistic headers
(~250 elements, many of them private), adds the real pydicom test files, hard-links exactly
these files into a fresh tree, and measures in the same run, each with 2 processes over the same
warm files:

* ``floor``: read the first 16 KiB of each file;
* ``pydicom``: ``dcmread(stop_before_pixels=True)`` of each file;
* ``read_header``: ``station.indexer.read_header`` alone (the fast scanner, pydicom as fall-back);
* ``trainyard``: the real harvest, ``station.indexer.index_collection(workers=2)`` of the tree
  into a fresh ``DicomIndex`` (walk, stat, read headers, pseudonymise, write SQLite);
* ``reharvest``: ``index_collection`` of the unchanged tree again (the incremental path: walk,
  stat, compare path + size + mtime with the index, read nothing).

``peak_rss_mb`` is the larger of this process's and its largest child's peak resident memory.
``*_cpu_us_per_file`` is the CPU time (user + system, every process of the measure: the harvest's
own process and its workers) per file, and ``cpu_speedup`` their ratio: where other work shares
the cores, the rates (and their ratio ``speedup``) move with it, the CPU a file costs much less.
Writes ``bench/results/harvest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from station.indexer import DicomIndex, IndexReport, index_collection, read_header

RESULTS = Path(__file__).resolve().parents[1] / "results" / "harvest.json"
WORKERS = 2


def _instance(number: int, series: str, study: str, patient: str) -> Dataset:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20250312"
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "CT", "SIEMENS", "SOMATOM Force"
    ds.InstitutionName, ds.StationName, ds.SoftwareVersions = "Northvale University Hospital", "CT01", "VB20"
    ds.ReferringPhysicianName, ds.StudyDescription, ds.SeriesDescription = "Doe^John", "CT THORAX", "Thorax 1.0 Br40"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = (
        "Anon",
        patient,
        "19600101",
        "F",
        "065Y",
    )
    ds.BodyPartExamined, ds.SliceThickness, ds.KVP, ds.ConvolutionKernel = "CHEST", "1.0", "120", "Br40"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, number
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [-200, -200, -number], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.Rows, ds.Columns = [0.78, 0.78], 512, 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = "-1024", "1", "-600", "1500"
    for group in (0x0009, 0x0019, 0x0021, 0x0029, 0x0043):  # vendors' private groups, ~200 elements
        ds.add_new((group, 0x0010), "LO", "SIEMENS CT VA0 COAD")
        for element in range(0x1000, 0x1028):
            ds.add_new((group, element), "LO", f"private value {group:04x} {element:04x}")
    ds.PixelData = np.full((512, 512), 1024, dtype=np.uint16).tobytes()
    return ds


def generate(cache: Path, files: int) -> list[Path]:
    """Write (once) ``files`` synthetic instances under ``cache``; return every file to harvest."""
    cache.mkdir(parents=True, exist_ok=True)
    existing = sorted(cache.glob("series-*/*.dcm"))
    if len(existing) < files:
        template = _instance(0, generate_uid(), generate_uid(), "P-0")
        for number in range(len(existing), files):
            series_no = number // 200
            folder = cache / f"series-{series_no:04d}"
            folder.mkdir(exist_ok=True)
            template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            template.SeriesInstanceUID = f"2.25.{series_no + 1}"
            template.StudyInstanceUID = f"2.25.{10**9 + series_no // 3}"
            template.PatientID = f"P-{series_no // 3:05d}"
            template.InstanceNumber = number % 200 + 1
            template.save_as(folder / f"{number:06d}.dcm", enforce_file_format=True)
        existing = sorted(cache.glob("series-*/*.dcm"))
    return existing[:files] + [Path(path) for path in get_testdata_files() if Path(path).is_file()]


def _floor(path: Path) -> int:
    with path.open("rb") as handle:
        return len(handle.read(16 * 1024))


def _pydicom(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dcmread(path, stop_before_pixels=True)
        return True
    except Exception:
        return False


def _trainyard(path: Path) -> bool:
    return hasattr(read_header(path), "sop_instance_uid")


def link_tree(paths: list[Path], tree: Path) -> list[Path]:
    """Hard-link (copy where linking fails) each of ``paths`` into ``tree``; return the new paths.

    The harvest walks a folder: this one holds exactly the files the other measures read.
    """
    linked = []
    for number, path in enumerate(paths):
        if path.parent.name.startswith("series-"):
            target = tree / "synthetic" / path.parent.name / path.name
        else:  # a pydicom test file: its own folder keeps names (DICOMDIR) and avoids clashes
            target = tree / "pydicom" / f"{number:06d}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        linked.append(target)
    return linked


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its finished children so far."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def _rate(function: Callable[[Path], object], paths: list[Path]) -> tuple[float, float]:
    """Files per second, and CPU microseconds per file (every process of the measure), of ``function``."""
    cpu, started = _cpu_seconds(), time.perf_counter()
    with ProcessPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(function, paths, chunksize=256))
    seconds = time.perf_counter() - started
    return len(paths) / seconds, (_cpu_seconds() - cpu) / len(paths) * 1e6


def _harvest(tree: Path, index: DicomIndex) -> tuple[float, float, IndexReport]:
    """Harvest ``tree`` into ``index`` as the station does: seconds taken, CPU seconds of every process, report."""
    cpu, started = _cpu_seconds(), time.perf_counter()
    report = index_collection(tree, index, collection="bench", secret=b"bench" * 8, workers=WORKERS)
    return time.perf_counter() - started, _cpu_seconds() - cpu, report


def _peak_rss_mb() -> float:
    """The larger of this process's and its largest (finished) child's peak RSS, in MiB (Linux: KiB units)."""
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return round(peak / 1024, 1)


def main() -> None:
    """Generate, measure, write ``bench/results/harvest.json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/trainyard-bench-harvest"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()
    sources = generate(options.cache, options.files)
    with (
        tempfile.TemporaryDirectory(prefix="tree-", dir=options.cache) as tree,
        tempfile.TemporaryDirectory(prefix="trainyard-bench-index-") as scratch,
    ):
        paths = link_tree(sources, Path(tree))
        _rate(_floor, paths)  # warm the page cache
        floor, _ = _rate(_floor, paths)
        pydicom_rate, pydicom_cpu = _rate(_pydicom, paths)
        read_header_rate, _ = _rate(_trainyard, paths)
        with DicomIndex(Path(scratch) / "index.sqlite") as index:
            seconds, cpu_seconds, first = _harvest(Path(tree), index)
            again_seconds, _, again = _harvest(Path(tree), index)  # unchanged: the incremental path
    assert first.indexed + len(first.skipped) == len(paths), first
    assert again.indexed == 0, again
    trainyard_rate = len(paths) / seconds
    figures = {
        "files": len(paths),
        "workers": WORKERS,
        "cpus": os.cpu_count(),
        "floor_files_per_s": round(floor),
        "pydicom_files_per_s": round(pydicom_rate),
        "trainyard_files_per_s": round(trainyard_rate),
        "speedup": round(trainyard_rate / pydicom_rate, 2),
        "pydicom_cpu_us_per_file": round(pydicom_cpu, 1),
        "trainyard_cpu_us_per_file": round(cpu_seconds / len(paths) * 1e6, 1),
        "cpu_speedup": round(pydicom_cpu / (cpu_seconds / len(paths) * 1e6), 2),
        "reharvest_files_per_s": round(len(paths) / again_seconds),
        "reharvest_unchanged": again.unchanged,
        "peak_rss_mb": _peak_rss_mb(),
        "read_header_files_per_s": round(read_header_rate),
        "harvest_indexed": first.indexed,
        "harvest_skipped": len(first.skipped),
        "command": f"python -m bench.harvest.run --files {options.files}",
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
