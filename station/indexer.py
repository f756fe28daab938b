"""The DICOM harvester: files → headers → a station-local SQLite index.

Layered from lazy to convenient, like pydicom's reader:

- :func:`iter_dicom_paths` walks a folder and yields candidate files (any name, with or
  without ``.dcm``);
- :func:`read_header` reads only the few header attributes the catalog needs
  (``stop_before_pixels`` and ``specific_tags``: pixel data is never read);
- :func:`index_collection` stores them in :class:`DicomIndex` (tables ``patient``,
  ``study``, ``series``, ``instance``), with the patient id replaced by an HMAC-SHA256
  pseudonym keyed by a per-station secret. Worker processes read the headers and build the
  rows; the harvesting process only writes them (SQLite in WAL mode, one transaction per
  chunk of files).

Per series the index keeps modality, body part, manufacturer, model, software version, slice
thickness, pixel spacing, rows/columns, kVp, field strength, sequence, contrast agent,
convolution kernel, the study year and a category mapped from the protocol name / series
description (never the free text itself); per instance what the quality checks need (instance
number, position, orientation, matrix, image type). The index never holds a raw patient id,
name, birth date or full date: only the pseudonym, sex, age in whole years and its ten-year
band, and years.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
import os
import re
import sqlite3
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from .quality import SliceHeader
from .scanner import WANTED_TAGS, scan_header

__all__ = [
    "REQUIRED_KEYWORDS",
    "WITHDRAWN_REASON",
    "DicomHeader",
    "DicomIndex",
    "IndexReport",
    "SkippedFile",
    "age_band_for_age",
    "index_collection",
    "iter_dicom_paths",
    "pseudonym_for_patient_id",
    "read_header",
    "series_category",
]

REQUIRED_KEYWORDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "Modality")
_OPTIONAL_KEYWORDS = tuple(keyword for keyword in WANTED_TAGS if keyword not in REQUIRED_KEYWORDS)
_NAME_MIN = 4  # shorter name parts ("Li", "Ann") would match ordinary words of a result
_PARALLEL_FROM = 256  # fewer files are read here: starting processes costs more
_AGE_UNITS_PER_YEAR = {"Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}
SCHEMA_VERSION = 3
"""Bumped when the tables change; an index of an older version is rebuilt by the next harvest."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS patient (
    collection TEXT NOT NULL, pseudonym TEXT NOT NULL, sex TEXT, age_band TEXT, age_years INTEGER,
    PRIMARY KEY (collection, pseudonym));
CREATE TABLE IF NOT EXISTS study (
    collection TEXT NOT NULL, study_uid TEXT NOT NULL, pseudonym TEXT NOT NULL, year INTEGER,
    PRIMARY KEY (collection, study_uid));
CREATE TABLE IF NOT EXISTS series (
    collection TEXT NOT NULL, series_uid TEXT NOT NULL, study_uid TEXT NOT NULL,
    modality TEXT NOT NULL, body_part TEXT, manufacturer TEXT, model TEXT, software TEXT,
    slice_thickness REAL, pixel_spacing REAL, rows INTEGER, columns INTEGER, kvp REAL, field_strength REAL,
    sequence TEXT, contrast TEXT, kernel TEXT, year INTEGER, category TEXT,
    PRIMARY KEY (collection, series_uid));
CREATE TABLE IF NOT EXISTS instance (
    collection TEXT NOT NULL, sop_uid TEXT NOT NULL, series_uid TEXT NOT NULL, path TEXT NOT NULL,
    instance_number INTEGER, position TEXT, orientation TEXT, rows INTEGER, columns INTEGER, image_type TEXT,
    PRIMARY KEY (collection, sop_uid));
CREATE TABLE IF NOT EXISTS file (
    collection TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT, PRIMARY KEY (collection, path));
CREATE TABLE IF NOT EXISTS collection_rule (collection TEXT PRIMARY KEY, rule TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS withdrawn (pseudonym TEXT PRIMARY KEY, withdrawn_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS name_token (
    collection TEXT NOT NULL, pseudonym TEXT NOT NULL, token TEXT NOT NULL,
    PRIMARY KEY (collection, pseudonym, token));
CREATE INDEX IF NOT EXISTS instance_path ON instance (collection, path);
CREATE INDEX IF NOT EXISTS instance_series ON instance (collection, series_uid);
"""
SERIES_FIELDS = (
    "body_part",
    "manufacturer",
    "model",
    "software",
    "slice_thickness",
    "pixel_spacing",
    "rows",
    "kvp",
    "field_strength",
    "sequence",
    "contrast",
    "kernel",
)
"""Series columns whose coverage (share of series carrying them) a summary reports."""
_SEXES = {"F", "M", "O"}
WITHDRAWN_REASON = "subject withdrawn (GDPR): never indexed or shown to trains again"
_BATCH = 500  # files per transaction: a crash loses at most one batch of work
_IN_FLIGHT = 4  # chunks per worker read ahead of the writer
_DICOMDIR_REASON = "DICOMDIR index"
_NOT_DICOM_REASON = "not a DICOM file (no 'DICM' preamble, and no DICOM attributes without it)"


@dataclass(frozen=True, kw_only=True)
class DicomHeader:
    """The header attributes of one DICOM file that the index needs (never pixel data)."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    patient_id: str | None = None
    patient_name: str | None = None  # only to key its parts (name_token); never stored as text
    patient_sex: str | None = None
    patient_age: str | None = None
    patient_birth_date: str | None = None
    study_date: str | None = None
    body_part: str | None = None
    manufacturer: str | None = None
    sop_class_uid: str | None = None
    model: str | None = None
    software: str | None = None
    slice_thickness: float | None = None
    pixel_spacing: float | None = None
    rows: int | None = None
    columns: int | None = None
    kvp: float | None = None
    field_strength: float | None = None
    sequence: str | None = None
    contrast: str | None = None
    kernel: str | None = None
    category: str | None = None
    instance_number: int | None = None
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, float, float, float, float, float] | None = None
    image_type: str | None = None

    def __repr__(self) -> str:
        return f"DicomHeader(path={str(self.path)!r}, modality={self.modality!r})"


@dataclass(frozen=True)
class SkippedFile:
    """A file the indexer did not index, and why."""

    path: Path
    reason: str


@dataclass(kw_only=True)
class IndexReport:
    """What one harvest did."""

    collection: str
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)


def iter_dicom_paths(root: Path) -> Iterator[Path]:
    """Yield every regular file under ``root``, recursively, in a stable order.

    Hidden files and folders (names starting with ``.``) and symbolic links are left out;
    whether a file is DICOM is decided by :func:`read_header`, not by its name. A folder's
    files come first (sorted by name), then its sub-folders (sorted), each in turn.

    Raises
    ------
    NotADirectoryError
        When ``root`` is not a folder.
    """
    for path, _ in _walk_files(root):
        yield Path(path)


def _walk_files(root: Path) -> Iterator[tuple[str, tuple[int, int] | None]]:
    """What :func:`iter_dicom_paths` yields, as text, each with its size and mtime (``None``: cannot stat).

    One ``os.scandir`` per folder tells files, folders and links apart without a system call
    per file, and one ``lstat`` per file gives the size and mtime (for a regular file, not a
    link, the same as ``stat``). The text of each path is ``str(Path(folder) / name)``.
    """
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    folders = [str(root)]
    while folders:
        folder = folders.pop()
        files: list[tuple[str, os.DirEntry[str]]] = []
        subfolders: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    try:
                        if entry.is_symlink():
                            continue
                        if entry.is_dir():
                            subfolders.append(name)
                        elif entry.is_file():
                            files.append((name, entry))
                    except OSError:
                        continue  # gone or unreadable since the folder was listed
        except OSError:
            continue  # an unreadable folder is left out, as os.walk does
        prefix = "" if folder == "." else folder if folder.endswith(os.sep) else folder + os.sep
        for name, entry in sorted(files, key=lambda item: item[0]):
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError:
                yield prefix + name, None
                continue
            yield prefix + name, (status.st_size, status.st_mtime_ns)
        folders.extend(prefix + name for name in sorted(subfolders, reverse=True))


def _text(dataset: Any, keyword: str) -> str | None:
    value = dataset.get(keyword)
    if value is None:
        return None
    text = "\\".join(str(item) for item in value) if isinstance(value, MultiValue) else str(value)
    return text.strip(" \0") or None


def _pydicom_values(path: Path) -> dict[str, str | None]:
    """The wanted attributes as pydicom reads them.

    A file without the 128-byte preamble and ``DICM`` marker is read again with ``force``:
    valid DICOM may start right at its first element. Forced, pydicom accepts any bytes, so a
    file that shows none of :data:`REQUIRED_KEYWORDS` then is not DICOM.

    Raises
    ------
    InvalidDicomError
        When the file is not DICOM.
    """
    keywords = (*REQUIRED_KEYWORDS, *_OPTIONAL_KEYWORDS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = dcmread(path, stop_before_pixels=True, specific_tags=list(keywords))
        except InvalidDicomError:
            try:
                dataset = dcmread(path, stop_before_pixels=True, specific_tags=list(keywords), force=True)
            except Exception as exc:  # what pydicom makes of bytes that are not DICOM
                raise InvalidDicomError(f"{path} is not DICOM") from exc
            values = {keyword: _text(dataset, keyword) for keyword in keywords}
            if not any(values[keyword] for keyword in REQUIRED_KEYWORDS):
                raise InvalidDicomError(f"{path} is not DICOM") from None
            return values
    return {keyword: _text(dataset, keyword) for keyword in keywords}


def read_header(path: Path) -> DicomHeader | SkippedFile:
    """Read the catalog attributes of one file, never its pixel data.

    Returns
    -------
    DicomHeader or SkippedFile
        The header, or the reason the file cannot be indexed (not DICOM, unreadable, or
        missing one of :data:`REQUIRED_KEYWORDS`). A file without the 128-byte preamble and
        ``DICM`` marker is still read when its first bytes are DICOM elements.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> read_header(Path(get_testdata_file("CT_small.dcm"))).modality
    'CT'
    """
    values = _read_values(str(path))
    if isinstance(values, str):
        return SkippedFile(path, values)
    return DicomHeader(path=path, **_header_fields(values))


def _read_values(path: str) -> dict[str, str | None] | str:
    """The wanted attributes of one file (the fast scanner, else pydicom), or why it cannot be indexed."""
    if os.path.basename(path).upper() == "DICOMDIR":
        return _DICOMDIR_REASON
    try:
        values = scan_header(path) or _pydicom_values(Path(path))
    except InvalidDicomError:
        return _NOT_DICOM_REASON
    except Exception as exc:  # pydicom raises many kinds on damaged files
        return f"unreadable DICOM ({type(exc).__name__})"
    missing = [keyword for keyword in REQUIRED_KEYWORDS if not values[keyword]]
    if missing:
        return f"missing required attributes: {', '.join(missing)}"
    return values


def _header_fields(values: dict[str, str | None], memo: dict[Any, Any] | None = None) -> dict[str, Any]:
    """The :class:`DicomHeader` fields (all but ``path``) of a file's attributes, parsed and checked.

    ``memo`` keeps the parsed values that the files of one series share (category, orientation,
    spacing and the other acquisition numbers), keyed by their text: the next file of the series
    looks them up.
    """
    key = (
        values["SeriesDescription"],
        values["ProtocolName"],
        values["ImageType"],
        values["ImageOrientationPatient"],
        values["PixelSpacing"],
        values["SliceThickness"],
        values["KVP"],
        values["MagneticFieldStrength"],
    )
    shared = memo.get(key) if memo is not None else None
    if shared is None:
        orientation = _numbers(values["ImageOrientationPatient"], 6)
        spacing = _numbers(values["PixelSpacing"], 2)
        shared = (
            series_category(values["SeriesDescription"], values["ProtocolName"], values["ImageType"]),
            tuple(orientation) if orientation else None,
            spacing[0] if spacing and spacing[0] > 0 else None,
            _positive(values["SliceThickness"]),
            _positive(values["KVP"]),
            _positive(values["MagneticFieldStrength"]),
        )
        if memo is not None:
            memo[key] = shared
    category, orientation_values, pixel_spacing, slice_thickness, kvp, field_strength = shared
    position = _numbers(values["ImagePositionPatient"], 3)
    return {
        "sop_instance_uid": str(values["SOPInstanceUID"]),
        "series_instance_uid": str(values["SeriesInstanceUID"]),
        "study_instance_uid": str(values["StudyInstanceUID"]),
        "modality": str(values["Modality"]).upper(),
        "patient_id": values["PatientID"],
        "patient_name": values.get("PatientName"),
        "patient_sex": (values["PatientSex"] or "").upper() or None,
        "patient_age": values["PatientAge"],
        "patient_birth_date": values["PatientBirthDate"],
        "study_date": values["StudyDate"],
        "body_part": (values["BodyPartExamined"] or "").upper() or None,
        "manufacturer": values["Manufacturer"],
        "sop_class_uid": values["SOPClassUID"],
        "model": values["ManufacturerModelName"],
        "software": values["SoftwareVersions"],
        "slice_thickness": slice_thickness,
        "pixel_spacing": pixel_spacing,
        "rows": _whole(values["Rows"]),
        "columns": _whole(values["Columns"]),
        "kvp": kvp,
        "field_strength": field_strength,
        "sequence": values["ScanningSequence"] or values["SequenceName"],
        "contrast": values["ContrastBolusAgent"],
        "kernel": values["ConvolutionKernel"],
        "category": category,
        "instance_number": _whole(values["InstanceNumber"], minimum=-(2**31)),
        "position": (position[0], position[1], position[2]) if position else None,
        "orientation": orientation_values,
        "image_type": (values["ImageType"] or "").upper() or None,
    }


def _numbers(text: str | None, count: int) -> list[float] | None:
    """``count`` finite numbers of a multi-valued DS, or ``None`` (absent, malformed or another count)."""
    if not text:
        return None
    try:
        found = [float(part) for part in text.split("\\")]
    except ValueError:
        return None
    return found if len(found) == count and all(math.isfinite(value) for value in found) else None


def _positive(text: str | None) -> float | None:
    found = _numbers(text.split("\\", 1)[0] if text else None, 1)
    return found[0] if found and found[0] > 0 else None


def _whole(text: str | None, *, minimum: int = 0) -> int | None:
    try:
        value = int(str(text).strip()) if text else None
    except ValueError:
        return None
    return value if value is not None and value >= minimum else None


_CATEGORIES = (  # (category, words in the protocol name / series description); first match wins
    ("localizer", ("localizer", "localiser", "scout", "topogram", "survey", "surview", "3plane", "tri-pilot")),
    ("diffusion", ("dwi", "diffusion", "adc", "dti", "trace")),
    ("flair", ("flair",)),
    ("t2", ("t2",)),
    ("t1", ("t1", "mprage", "spgr")),
    ("angiography", ("angio", "cta", "mra", "tof")),
    ("perfusion", ("perf", "dsc", "dce", "asl")),
    ("non-contrast", ("non-contrast", "noncontrast", "native", "pre", "nc ", "w/o", "without", "wo")),
    ("contrast", ("contrast", "post", "+c", "gad", "venous", "arterial")),
    ("low-dose", ("low dose", "low-dose", "ldct")),
)
_WORD = re.compile(r"[a-z0-9+\-]+")


def series_category(description: str | None, protocol: str | None, image_type: str | None = None) -> str | None:
    """Map a series' protocol name and description to a category (the free text itself is never kept).

    Examples
    --------
    >>> series_category("AX T2 FLAIR", None), series_category("Topogram 0.6 T20s", None)
    ('flair', 'localizer')
    """
    if image_type and "LOCALIZER" in image_type.upper().split("\\"):
        return "localizer"
    text = " ".join(part for part in (description, protocol) if part).lower()
    if not text:
        return None
    words = set(_WORD.findall(text))
    for category, cues in _CATEGORIES:
        if any((cue in words) if cue.isalnum() else (cue in f"{text} ") for cue in cues):
            return category
    return "other"


def name_tokens(name: str | None) -> set[str]:
    """The parts of a Person Name worth recognising in a train's output (lower case, 4 characters or more).

    Examples
    --------
    >>> sorted(name_tokens("Doe^Johnathan^^Dr"))
    ['johnathan']
    """
    parts = re.findall(r"[^\W_]+", name or "")  # the words a result could show: split as the output check splits
    return {part.lower() for part in parts if len(part) >= _NAME_MIN and not part.isdigit()}


def token_for_name_part(part: str, secret: bytes) -> str:
    """The keyed hash under which a name part is kept: the index never holds a name."""
    return hmac.new(secret, b"name:" + part.lower().encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonym_for_patient_id(patient_id: str, secret: bytes) -> str:
    """Return the HMAC-SHA256 pseudonym (hex) of a patient id under the station's secret."""
    return hmac.new(secret, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()


def _parse_da(value: str | None) -> date | None:
    if not value or len(value) < 8 or not value[:8].isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def _age_in_years(age_text: str | None, birth_date: str | None, study_date: str | None) -> float | None:
    age = (age_text or "").strip().upper()
    if len(age) == 4 and age[:3].isdigit() and age[3] in _AGE_UNITS_PER_YEAR:
        return int(age[:3]) / _AGE_UNITS_PER_YEAR[age[3]]
    born, seen = _parse_da(birth_date), _parse_da(study_date)
    if born and seen and seen >= born:
        return (seen - born).days / 365.25
    return None


def age_band_for_age(years: float | None) -> str | None:
    """Return the decade band of an age: ``"50-59"``, or ``"90+"`` from 90 on.

    Examples
    --------
    >>> age_band_for_age(54.0)
    '50-59'
    """
    if years is None or years < 0:
        return None
    decade = int(years // 10) * 10
    return "90+" if decade >= 90 else f"{decade}-{decade + 9}"


_INSERT_INSTANCE = "INSERT OR REPLACE INTO instance VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_FILE = "INSERT OR REPLACE INTO file VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_PATIENT = "INSERT OR IGNORE INTO patient VALUES (?, ?, ?, ?, ?)"
_INSERT_NAME_PART = "INSERT OR IGNORE INTO name_token VALUES (?, ?, ?)"
_INSERT_STUDY = "INSERT OR IGNORE INTO study VALUES (?, ?, ?, ?)"
_INSERT_SERIES = "INSERT OR IGNORE INTO series VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_HEADER_FIELDS = tuple(item.name for item in dataclasses.fields(DicomHeader) if item.name != "path")

Row = tuple[Any, ...]
FileRows = tuple[Row, Row, str, Row, tuple[Row, ...], Row, Row]
"""One indexed file's rows: file, instance, the patient's pseudonym, patient, name tokens, study, series."""


def _rows_for_file(
    collection: str,
    path: str,
    stat: tuple[int, int],
    fields: dict[str, Any],
    *,
    secret: bytes,
    withdrawn: frozenset[str],
    memo: dict[tuple[str, Any], Any],
) -> FileRows | None:
    """The rows one header adds to the index, or ``None`` when its subject is withdrawn.

    ``memo`` keeps the patient, study and series rows of the files before (the first file of
    each decides them, as ``INSERT OR IGNORE`` does), so equal rows are built, and pickled, once.
    """
    study_uid, series_uid = fields["study_instance_uid"], fields["series_instance_uid"]
    patient_key = fields["patient_id"] or f"study:{study_uid}"
    patient = memo.get(("patient", patient_key))
    if patient is None:
        pseudonym = pseudonym_for_patient_id(patient_key, secret)
        if pseudonym in withdrawn:
            patient = (pseudonym, None, ())
        else:
            years = _age_in_years(fields["patient_age"], fields["patient_birth_date"], fields["study_date"])
            sex = fields["patient_sex"] if fields["patient_sex"] in _SEXES else None
            patient_row = (
                collection,
                pseudonym,
                sex,
                age_band_for_age(years),
                int(years) if years is not None else None,
            )
            tokens = tuple(
                (collection, pseudonym, token_for_name_part(part, secret))
                for part in sorted(name_tokens(fields["patient_name"]))
            )
            patient = (pseudonym, patient_row, tokens)
        memo["patient", patient_key] = patient
    pseudonym, stored_patient, tokens = patient
    if stored_patient is None:
        return None
    study_row = memo.get(("study", study_uid))
    if study_row is None:
        seen = _parse_da(fields["study_date"])
        study_row = memo["study", study_uid] = (collection, study_uid, pseudonym, seen.year if seen else None)
    series_row = memo.get(("series", series_uid))
    if series_row is None:
        seen = _parse_da(fields["study_date"])
        series_row = memo["series", series_uid] = (
            collection,
            series_uid,
            study_uid,
            fields["modality"],
            fields["body_part"],
            fields["manufacturer"],
            fields["model"],
            fields["software"],
            fields["slice_thickness"],
            fields["pixel_spacing"],
            fields["rows"],
            fields["columns"],
            fields["kvp"],
            fields["field_strength"],
            fields["sequence"],
            fields["contrast"],
            fields["kernel"],
            seen.year if seen else None,
            fields["category"],
        )
    position, orientation = fields["position"], fields["orientation"]
    image_type = fields["image_type"]
    image_type = memo.setdefault(("text", image_type), image_type)
    instance_row = (
        collection,
        fields["sop_instance_uid"],
        series_row[1],
        path,
        fields["instance_number"],
        "\\".join(repr(value) for value in position) if position else None,
        "\\".join(repr(value) for value in orientation) if orientation else None,
        fields["rows"],
        fields["columns"],
        image_type,
    )
    file_row = (collection, path, stat[0], stat[1], "indexed", None)
    return file_row, instance_row, pseudonym, stored_patient, tokens, study_row, series_row


@dataclass(frozen=True)
class _RowReader:
    """Reads files into the rows the index stores: in each worker process, or here for a few files."""

    collection: str
    secret: bytes
    withdrawn: frozenset[str]
    exclude: Callable[[DicomHeader], str | None] | None

    def __call__(self, chunk: list[tuple[str, int, int]]) -> list[str | FileRows]:
        """Per file of ``chunk`` (path, size, mtime): its rows, or why it is skipped."""
        memo: dict[tuple[str, Any], Any] = {}  # rows, for _rows_for_file
        parsed: dict[Any, Any] = {}  # values a series shares, for _header_fields
        out: list[str | FileRows] = []
        for path, size, mtime in chunk:
            values = _read_values(path)
            if isinstance(values, str):
                out.append(values)
                continue
            fields = _header_fields(values, parsed)
            if self.exclude is not None:
                outside = self.exclude(DicomHeader(path=Path(path), **fields))
                if outside is not None:
                    out.append(outside)
                    continue
            rows = _rows_for_file(
                self.collection,
                path,
                (size, mtime),
                fields,
                secret=self.secret,
                withdrawn=self.withdrawn,
                memo=memo,
            )
            out.append(WITHDRAWN_REASON if rows is None else rows)
        return out


_worker_reader: _RowReader | None = None


def _start_worker(reader: _RowReader) -> None:
    global _worker_reader
    _worker_reader = reader


def _read_chunk(chunk: list[tuple[str, int, int]]) -> list[str | FileRows]:
    """What a worker process runs: :class:`_RowReader` of the harvest that started it."""
    assert _worker_reader is not None, "a worker process starts with its reader"
    return _worker_reader(chunk)


class DicomIndex:
    """The station-local SQLite index of every harvested collection.

    Parameters
    ----------
    path
        The ``index.sqlite`` file; created with its tables when absent.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.connection = sqlite3.connect(path)
        # write-ahead log: readers (the agent, the station API) never wait for a harvest, and a commit
        # is one append; NORMAL syncs at checkpoints only, so a power cut may lose the last commits but
        # never leaves a torn index (each batch's file and instance rows commit together: the next
        # harvest reads what was lost again)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = NORMAL")
        (version,) = self.connection.execute("PRAGMA user_version").fetchone()
        if version != SCHEMA_VERSION:  # derived data: an older index is dropped and harvested again
            with self.connection:
                for table in ("file", "instance", "series", "study", "patient", "collection_rule", "name_token"):
                    self.connection.execute(f"DROP TABLE IF EXISTS {table}")
        self.connection.executescript(_SCHEMA)
        self.connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def __repr__(self) -> str:
        return f"DicomIndex(path={str(self.path)!r})"

    def __enter__(self) -> DicomIndex:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self.connection.close()

    def _column(self, sql: str, *args: str) -> list[str]:
        return [str(row[0]) for row in self.connection.execute(sql, args)]

    def clear_collection(self, collection: str) -> None:
        """Forget every row of one collection."""
        with self.connection:
            self._delete_collection_rows(collection)

    def _delete_collection_rows(self, collection: str) -> None:
        """Delete one collection's rows inside the caller's transaction."""
        for table in ("file", "instance", "series", "study", "patient", "collection_rule", "name_token"):
            self.connection.execute(f"DELETE FROM {table} WHERE collection = ?", (collection,))  # noqa: S608

    def _prune_orphans(self, collection: str) -> None:
        """Delete series, studies and patients left without instances, inside the caller's transaction."""
        sql = self.connection.execute
        sql(
            "DELETE FROM series WHERE collection = ? AND series_uid NOT IN "
            "(SELECT series_uid FROM instance WHERE collection = ?)",
            (collection, collection),
        )
        sql(
            "DELETE FROM study WHERE collection = ? AND study_uid NOT IN "
            "(SELECT study_uid FROM series WHERE collection = ?)",
            (collection, collection),
        )
        sql(
            "DELETE FROM patient WHERE collection = ? AND pseudonym NOT IN "
            "(SELECT pseudonym FROM study WHERE collection = ?)",
            (collection, collection),
        )
        sql(
            "DELETE FROM name_token WHERE collection = ? AND pseudonym NOT IN "
            "(SELECT pseudonym FROM patient WHERE collection = ?)",
            (collection, collection),
        )

    def add_header(self, collection: str, header: DicomHeader, *, secret: bytes) -> bool:
        """Store one header (the patient id is pseudonymised first); ``False`` for a withdrawn subject.

        :func:`index_collection` stores the same rows, in batches.
        """
        fields = {name: getattr(header, name) for name in _HEADER_FIELDS}
        withdrawn = frozenset(str(row[0]) for row in self.connection.execute("SELECT pseudonym FROM withdrawn"))
        rows = _rows_for_file(collection, str(header.path), (0, 0), fields, secret=secret, withdrawn=withdrawn, memo={})
        if rows is None:
            return False
        _, instance_row, _, patient_row, tokens, study_row, series_row = rows
        with self.connection:
            self.connection.execute(_INSERT_PATIENT, patient_row)
            self.connection.executemany(_INSERT_NAME_PART, tokens)
            self.connection.execute(_INSERT_STUDY, study_row)
            self.connection.execute(_INSERT_SERIES, series_row)
            self.connection.execute(_INSERT_INSTANCE, instance_row)
        return True

    def withdraw(self, patient_id: str, *, secret: bytes) -> dict[str, int]:
        """Remove a subject (by local Patient ID) from every collection, and keep them out of later harvests.

        Their files stay where they are but are marked withdrawn: harvests skip them and trains
        never see them (:meth:`withdrawn_paths`). Returns the instances removed per collection.
        """
        pseudonym = pseudonym_for_patient_id(patient_id, secret)
        removed: dict[str, int] = {}
        sql = self.connection.execute
        with self.connection:
            sql("INSERT OR IGNORE INTO withdrawn VALUES (?, ?)", (pseudonym, date.today().isoformat()))
            rows = sql(
                "SELECT i.collection, i.path FROM instance i JOIN series s "
                "ON s.collection = i.collection AND s.series_uid = i.series_uid "
                "JOIN study st ON st.collection = s.collection AND st.study_uid = s.study_uid WHERE st.pseudonym = ?",
                (pseudonym,),
            ).fetchall()
            for collection, path in rows:
                sql("DELETE FROM instance WHERE collection = ? AND path = ?", (collection, path))
                sql(
                    "UPDATE file SET status = 'skipped', reason = ? WHERE collection = ? AND path = ?",
                    (WITHDRAWN_REASON, collection, path),
                )
                removed[collection] = removed.get(collection, 0) + 1
            for collection in removed:
                self._prune_orphans(collection)
            sql("DELETE FROM patient WHERE pseudonym = ?", (pseudonym,))
            sql("DELETE FROM name_token WHERE pseudonym = ?", (pseudonym,))
        return removed

    def withdrawn_paths(self, collection: str) -> set[str]:
        """Files of a collection that belong to withdrawn subjects."""
        sql = "SELECT path FROM file WHERE collection = ? AND reason = ?"
        return {str(row[0]) for row in self.connection.execute(sql, (collection, WITHDRAWN_REASON))}

    def collections(self) -> list[str]:
        """Return the slugs of every indexed collection."""
        return self._column("SELECT DISTINCT collection FROM patient ORDER BY collection")

    def name_tokens_for_collection(self, collection: str) -> frozenset[str]:
        """The keyed hashes of the collection's patients' name parts (:func:`token_for_name_part`)."""
        return frozenset(self._column("SELECT DISTINCT token FROM name_token WHERE collection = ?", collection))

    def subjects_for_collection(self, collection: str) -> list[str]:
        """Return the pseudonyms of every subject of a collection."""
        return self._column("SELECT pseudonym FROM patient WHERE collection = ? ORDER BY pseudonym", collection)

    def studies_for_subject(self, collection: str, pseudonym: str) -> list[str]:
        """Return the Study Instance UIDs of one subject."""
        sql = "SELECT study_uid FROM study WHERE collection = ? AND pseudonym = ? ORDER BY study_uid"
        return self._column(sql, collection, pseudonym)

    def series_for_study(self, collection: str, study_uid: str) -> list[str]:
        """Return the Series Instance UIDs of one study."""
        sql = "SELECT series_uid FROM series WHERE collection = ? AND study_uid = ? ORDER BY series_uid"
        return self._column(sql, collection, study_uid)

    def instances_for_series(self, collection: str, series_uid: str) -> list[str]:
        """Return the SOP Instance UIDs of one series."""
        sql = "SELECT sop_uid FROM instance WHERE collection = ? AND series_uid = ? ORDER BY sop_uid"
        return self._column(sql, collection, series_uid)

    def count_for_table(self, collection: str, table: str) -> int:
        """Return the number of rows of ``patient``, ``study``, ``series`` or ``instance`` in a collection."""
        if table not in {"patient", "study", "series", "instance"}:
            raise ValueError(f"unknown index table {table!r}")
        row = self.connection.execute(f"SELECT COUNT(*) FROM {table} WHERE collection = ?", (collection,)).fetchone()  # noqa: S608
        return int(row[0])

    def subject_counts_for_attribute(self, collection: str, attribute: str) -> dict[str, int]:
        """Return, per value of a series attribute, the number of distinct subjects having it.

        ``attribute`` is ``modality``, ``body_part`` or ``manufacturer``; series without a
        value are left out.
        """
        if attribute not in {"modality", "body_part", "manufacturer"}:
            raise ValueError(f"unknown series attribute {attribute!r}")
        sql = (
            f"SELECT s.{attribute}, COUNT(DISTINCT st.pseudonym) FROM series s "  # noqa: S608
            "JOIN study st ON st.collection = s.collection AND st.study_uid = s.study_uid "
            f"WHERE s.collection = ? AND s.{attribute} IS NOT NULL GROUP BY s.{attribute} ORDER BY s.{attribute}"
        )
        return {str(value): int(count) for value, count in self.connection.execute(sql, (collection,))}

    def patients(self, collection: str) -> list[tuple[str | None, str | None, int | None]]:
        """Every subject's (sex, age band, age in whole years) of a collection."""
        sql = "SELECT sex, age_band, age_years FROM patient WHERE collection = ? ORDER BY pseudonym"
        return [(sex, band, age) for sex, band, age in self.connection.execute(sql, (collection,))]

    def series_rows(self, collection: str) -> list[dict[str, Any]]:
        """Every series of a collection as a mapping of its columns, plus the subject's ``pseudonym``."""
        cursor = self.connection.execute(
            "SELECT s.*, st.pseudonym FROM series s JOIN study st "
            "ON st.collection = s.collection AND st.study_uid = s.study_uid WHERE s.collection = ? "
            "ORDER BY s.series_uid",
            (collection,),
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def slices_by_series(self, collection: str) -> dict[str, list[SliceHeader]]:
        """What the quality checks need of every instance, per series."""
        found: dict[str, list[SliceHeader]] = {}
        cursor = self.connection.execute(
            "SELECT series_uid, instance_number, position, orientation, rows, columns, image_type FROM instance "
            "WHERE collection = ? ORDER BY series_uid, sop_uid",
            (collection,),
        )
        for series_uid, number, position, orientation, rows, columns, image_type in cursor:
            found.setdefault(series_uid, []).append(
                SliceHeader(
                    instance_number=number,
                    position=tuple(float(v) for v in position.split("\\")) if position else None,  # type: ignore[arg-type]
                    orientation=tuple(float(v) for v in orientation.split("\\")) if orientation else None,
                    rows=rows,
                    columns=columns,
                    image_type=image_type,
                )
            )
        return found


def index_collection(
    root: Path,
    index: DicomIndex,
    *,
    collection: str,
    secret: bytes,
    on_progress: Callable[[Path, int], None] | None = None,
    workers: int = 1,
    exclude: Callable[[DicomHeader], str | None] | None = None,
    rule_key: str = "",
) -> IndexReport:
    """Harvest ``root`` as ``collection`` incrementally: only new or changed files are read.

    Each file's path, size and modification time are kept in the ``file`` table. A file whose
    three are unchanged since the last harvest is not read again; a changed one is re-read;
    the rows of a file that is gone are deleted. Rows are committed every few hundred files,
    so a harvest that crashes resumes without re-reading what it had finished. A bad file
    never stops the harvest: it is recorded as skipped, with its reason.

    Parameters
    ----------
    root
        The folder holding the collection's files.
    index
        Where to store the rows.
    collection
        The collection's slug.
    secret
        The station's pseudonymisation secret.
    on_progress
        Called after each file with its path and the number of files seen so far.
    workers
        Processes that read headers in parallel; 1 reads them here. The walk hands each worker
        chunks of files as it finds them; a worker turns a chunk into the rows to store (the
        pseudonym, the parsed values, the patient, study and series rows built once per
        series) and this process only writes them, one transaction per chunk. ``exclude`` runs
        in the workers, so it must be picklable (a :class:`~station.collections.CollectionRule`
        method is).
    exclude, rule_key
        The collection's rule (``collection.toml``): ``exclude`` says why a file does not belong
        (it is then skipped with that reason); when ``rule_key`` differs from the last harvest's,
        the collection is harvested afresh.

    Returns
    -------
    IndexReport
        How many files were indexed, unchanged and removed, and every skipped file and why
        (including those skipped by an earlier harvest and unchanged since).
    """
    report = IndexReport(collection=collection)
    db = index.connection
    known = {
        str(path): (int(size), int(mtime), str(status), reason)
        for path, size, mtime, status, reason in db.execute(
            "SELECT path, size, mtime_ns, status, reason FROM file WHERE collection = ?", (collection,)
        )
    }
    stored = db.execute("SELECT rule FROM collection_rule WHERE collection = ?", (collection,)).fetchone()
    if (stored[0] if stored else "") != rule_key:
        index.clear_collection(collection)  # another rule: every file must be judged again
        known = {}
        with db:
            db.execute("INSERT OR REPLACE INTO collection_rule VALUES (?, ?)", (collection, rule_key))
    if not known and index.count_for_table(collection, "instance"):
        index.clear_collection(collection)  # indexed before files were tracked: start afresh
    withdrawn = frozenset(str(row[0]) for row in db.execute("SELECT pseudonym FROM withdrawn"))
    reader = _RowReader(collection=collection, secret=secret, withdrawn=withdrawn, exclude=exclude)
    writer = _Writer(index, collection=collection, known=known, report=report, on_progress=on_progress)
    readers = _Readers(reader, writer, workers=workers)
    present: set[str] = set()
    chunk: list[tuple[str, int, int]] = []
    try:
        # one pass: an unchanged file costs one lstat; the others go to the workers in chunks as the
        # walk finds them, and the rows of finished chunks are written meanwhile
        for name, stat in _walk_files(root):
            present.add(name)
            previous = known.get(name)
            if stat is None:
                report.skipped.append(SkippedFile(Path(name), "cannot stat the file"))
            elif previous is not None and previous[:2] == stat:
                report.unchanged += 1
                if previous[2] == "skipped":
                    report.skipped.append(SkippedFile(Path(name), previous[3] or "skipped"))
            else:
                chunk.append((name, stat[0], stat[1]))
                if len(chunk) >= _BATCH:
                    readers.read(chunk)
                    chunk = []
                continue
            writer.tick(name)
        if chunk:
            readers.read(chunk)
        readers.finish()
    finally:
        readers.close()
    with db:
        for gone in sorted(set(known) - present):
            db.execute("DELETE FROM instance WHERE collection = ? AND path = ?", (collection, gone))
            db.execute("DELETE FROM file WHERE collection = ? AND path = ?", (collection, gone))
            report.removed += 1
        index._prune_orphans(collection)
    return report


class _Writer:
    """Writes the rows of read chunks, one transaction a chunk (its file rows say what is finished)."""

    def __init__(
        self,
        index: DicomIndex,
        *,
        collection: str,
        known: dict[str, tuple[int, int, str, str | None]],
        report: IndexReport,
        on_progress: Callable[[Path, int], None] | None,
    ) -> None:
        self.db = index.connection
        self.collection = collection
        self.known = known
        self.report = report
        self.on_progress = on_progress
        self.seen = 0
        self.written: set[tuple[str, str]] = set()  # the patients, studies and series this harvest stored

    def tick(self, path: str) -> None:
        """One more file is done."""
        self.seen += 1
        if self.on_progress is not None:
            self.on_progress(Path(path), self.seen)

    def write(self, chunk: list[tuple[str, int, int]], results: list[str | FileRows]) -> None:
        """Store one chunk's rows (what :class:`_RowReader` made of it) in one transaction."""
        db, collection, report, written = self.db, self.collection, self.report, self.written
        files_done: list[Row] = []
        instances: list[Row] = []
        patients: list[Row] = []
        tokens: list[Row] = []
        studies: list[Row] = []
        series: list[Row] = []
        with db:
            for (path, size, mtime), result in zip(chunk, results, strict=True):
                if path in self.known:  # a changed file: its old instance row goes (a new one has none)
                    db.execute("DELETE FROM instance WHERE collection = ? AND path = ?", (collection, path))
                if isinstance(result, str):
                    report.skipped.append(SkippedFile(Path(path), result))
                    files_done.append((collection, path, size, mtime, "skipped", result))
                else:
                    file_row, instance_row, pseudonym, patient_row, token_rows, study_row, series_row = result
                    if ("patient", pseudonym) not in written:
                        written.add(("patient", pseudonym))
                        patients.append(patient_row)
                        tokens.extend(token_rows)
                    if ("study", study_row[1]) not in written:
                        written.add(("study", study_row[1]))
                        studies.append(study_row)
                    if ("series", series_row[1]) not in written:
                        written.add(("series", series_row[1]))
                        series.append(series_row)
                    instances.append(instance_row)
                    files_done.append(file_row)
                    report.indexed += 1
                self.tick(path)
            db.executemany(_INSERT_PATIENT, patients)
            db.executemany(_INSERT_NAME_PART, tokens)
            db.executemany(_INSERT_STUDY, studies)
            db.executemany(_INSERT_SERIES, series)
            db.executemany(_INSERT_INSTANCE, instances)
            db.executemany(_INSERT_FILE, files_done)


class _Readers:
    """Reads chunks of files here or in worker processes, and hands their rows to the writer in order.

    The pool starts once more than ``_PARALLEL_FROM`` files are to be read (starting processes
    costs more than reading a few files). At most ``_IN_FLIGHT`` chunks per worker are read ahead of
    the writer, so memory stays bounded however large the tree.
    """

    def __init__(self, reader: _RowReader, writer: _Writer, *, workers: int) -> None:
        self.reader = reader
        self.writer = writer
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.waiting: list[list[tuple[str, int, int]]] = []  # chunks for which no pool is started yet
        self.in_flight: deque[tuple[list[tuple[str, int, int]], Future[list[str | FileRows]]]] = deque()

    def read(self, chunk: list[tuple[str, int, int]]) -> None:
        """Read ``chunk`` (now, or in a worker) and write the rows of the chunks finished so far."""
        if self.workers <= 1:
            self.writer.write(chunk, self.reader(chunk))
            return
        self.waiting.append(chunk)
        if self.pool is None:
            if sum(len(waiting) for waiting in self.waiting) <= _PARALLEL_FROM:
                return
            self.pool = ProcessPoolExecutor(
                max_workers=self.workers, initializer=_start_worker, initargs=(self.reader,)
            )
        for waiting in self.waiting:
            self.in_flight.append((waiting, self.pool.submit(_read_chunk, waiting)))
        self.waiting = []
        while self.in_flight and (self.in_flight[0][1].done() or len(self.in_flight) > _IN_FLIGHT * self.workers):
            finished, future = self.in_flight.popleft()
            self.writer.write(finished, future.result())

    def finish(self) -> None:
        """Read what is left and write every row."""
        for waiting in self.waiting:  # too few files for the pool
            self.writer.write(waiting, self.reader(waiting))
        self.waiting = []
        while self.in_flight:
            finished, future = self.in_flight.popleft()
            self.writer.write(finished, future.result())

    def close(self) -> None:
        """Stop the worker processes (what they had not started is cancelled)."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
