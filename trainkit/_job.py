"""Read the job a station hands to a train.

The station writes ``/job/job.json`` and names the train's folders in environment
variables (see ``station/executors/_base.py``):

=====================  ====================  =====================================
variable               default               what
=====================  ====================  =====================================
``TRAINYARD_JOB``      ``/job/job.json``     the job file
``TRAINYARD_DATA``     ``/data``             the collection, read-only
``TRAINYARD_OUT``      ``/out``              the only writable folder
``TRAINYARD_TRAIN``    ``/train``            the train's own files, read-only
=====================  ====================  =====================================

The job file is a JSON object::

    {"job_id": "...", "station": "...", "collection": "...",
     "parameters": {"k": 5},
     "outputs": [{"name": "cohort.json", "type": "json"}]}

``outputs`` entries may also be bare names. A full ``protocol.Job`` document (with a
``signed_manifest``) is understood as well. Parameters are the ``[parameters]`` table of
the train's ``train.toml`` updated with the job's parameters.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import TrainkitError
from ._outputs import OutputWriter, is_plain_file_name

__all__ = ["Job", "Round", "job"]

DEFAULT_JOB_FILE = "/job/job.json"
DEFAULT_DATA_DIR = "/data"
DEFAULT_OUT_DIR = "/out"
DEFAULT_TRAIN_DIR = "/train"


@dataclass(frozen=True, kw_only=True)
class Round:
    """A federated job's round, as the station hands it over in the job file's ``round`` section.

    Attributes
    ----------
    number
        The round, from 1.
    config
        The hub's round config (keys of ``protocol.FLConfigKey``: local epochs, learning rate, ...).
    global_model
        The global model's safetensors file (None in round 1: start from the seed).
    station_state
        What this train kept at this station after its previous round (None the first time);
        write the new one as ``station_state.safetensors`` in the output folder.
    """

    number: int
    config: dict[str, Any] = field(default_factory=dict)
    global_model: Path | None = None
    station_state: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Job:
    """One run of a train at one station, as the train sees it.

    Attributes
    ----------
    job_id, station, collection
        Which job this is, where it runs and on which collection.
    data_dir
        The collection's files (read-only).
    train_dir
        The train's own files (read-only).
    parameters
        ``train.toml`` defaults updated with the job's parameters.
    declared_outputs
        Output name → type (``json``, ``csv``, ``text`` or ``safetensors``).
    out
        The writer for the declared outputs.
    round
        A federated job's round (None for analysis trains).
    """

    job_id: str
    station: str
    collection: str
    data_dir: Path
    train_dir: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    declared_outputs: dict[str, str] = field(default_factory=dict)
    out: OutputWriter
    round: Round | None = None


def _string_field(document: Mapping[str, Any], key: str, *, required: bool, source: Path) -> str:
    """Read one string field of the job document."""
    value = document.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise TrainkitError(f"job file {source}: {key!r} must be a non-empty string")
    return value


def _parse_outputs(raw: Any, *, source: Path) -> dict[str, str]:
    """Turn the job's ``outputs`` list into name → type."""
    if not isinstance(raw, list | tuple):
        raise TrainkitError(f"job file {source}: 'outputs' must be a list")
    outputs: dict[str, str] = {}
    for entry in raw:
        if isinstance(entry, str):
            name, kind = entry, "json" if entry.endswith(".json") else "text"
        elif isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            name, kind = entry["name"], str(entry.get("type", "json"))
        else:
            raise TrainkitError(f"job file {source}: each output is a name or {{'name': ..., 'type': ...}}")
        if not is_plain_file_name(name):
            raise TrainkitError(f"job file {source}: output name {name!r} is not a plain file name")
        outputs[name] = kind
    return outputs


def _parse_round(raw: Any, *, source: Path) -> Round | None:
    """Read the job file's ``round`` section; file names are relative to the job file's folder."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise TrainkitError(f"job file {source}: 'round' must be an object")
    number = raw.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise TrainkitError(f"job file {source}: 'round.number' must be a whole number from 1")
    config = raw.get("config", {})
    if not isinstance(config, Mapping):
        raise TrainkitError(f"job file {source}: 'round.config' must be an object")

    def file_of(key: str) -> Path | None:
        name = raw.get(key)
        if name is None:
            return None
        if not isinstance(name, str) or not is_plain_file_name(name):
            raise TrainkitError(f"job file {source}: 'round.{key}' must be a plain file name")
        return source.parent / name

    return Round(
        number=number,
        config=dict(config),
        global_model=file_of("global_model"),
        station_state=file_of("station_state"),
    )


def _parameter_defaults(table: Any) -> dict[str, Any]:
    """``[parameters]`` defaults: a plain value, or the ``default`` of a ``{ type = ..., default = ... }`` spec."""
    if not isinstance(table, Mapping):
        return {}
    defaults: dict[str, Any] = {}
    for name, value in table.items():
        if isinstance(value, Mapping):
            if "default" in value:
                defaults[name] = value["default"]
        else:
            defaults[name] = value
    return defaults


def _read_train_toml(train_dir: Path) -> dict[str, Any]:
    """Read ``train.toml`` from the train folder; empty when there is none."""
    path = train_dir / "train.toml"
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TrainkitError(f"cannot read {path}: {exc}") from exc


def _read_job_document(path: Path) -> dict[str, Any]:
    """Load the job file as a JSON object, with a clear error when it is missing or broken."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise TrainkitError(
            f"no job file at {path}; a train runs inside a station (set TRAINYARD_JOB to run it by hand)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainkitError(f"cannot read the job file {path}: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrainkitError(f"job file {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise TrainkitError(f"job file {path} must hold a JSON object")
    return document


def job() -> Job:
    """Read the current job from the job file and the ``TRAINYARD_*`` environment.

    Returns
    -------
    Job
        The job, with an output writer bound to the output folder.

    Raises
    ------
    TrainkitError
        When the job file is missing, not JSON, or lacks a field; or ``train.toml`` is broken.

    Examples
    --------
    >>> import trainkit
    >>> current = trainkit.job()  # doctest: +SKIP
    >>> k = int(current.parameters["k"])  # doctest: +SKIP
    >>> current.out.write_json("cohort.json", {"k": k})  # doctest: +SKIP
    """
    source = Path(os.environ.get("TRAINYARD_JOB") or DEFAULT_JOB_FILE)
    data_dir = Path(os.environ.get("TRAINYARD_DATA") or DEFAULT_DATA_DIR)
    out_dir = Path(os.environ.get("TRAINYARD_OUT") or DEFAULT_OUT_DIR)
    train_dir = Path(os.environ.get("TRAINYARD_TRAIN") or DEFAULT_TRAIN_DIR)

    document = _read_job_document(source)
    signed = document.get("signed_manifest", {})
    manifest = signed.get("manifest", {}) if isinstance(signed, Mapping) else None
    if not isinstance(manifest, Mapping):
        raise TrainkitError(f"job file {source}: 'signed_manifest.manifest' must be an object")
    toml = _read_train_toml(train_dir)

    parameters = document.get("parameters", manifest.get("parameters", {}))
    if not isinstance(parameters, Mapping):
        raise TrainkitError(f"job file {source}: 'parameters' must be an object")
    merged = {**_parameter_defaults(toml.get("parameters", {})), **parameters}

    raw_outputs = document.get("outputs", manifest.get("outputs", toml.get("outputs")))
    if raw_outputs is None:
        raise TrainkitError(f"job file {source}: no 'outputs' declared")
    outputs = _parse_outputs(raw_outputs, source=source)

    return Job(
        job_id=_string_field(document, "job_id", required=True, source=source),
        station=_string_field(document, "station", required=False, source=source),
        collection=_string_field(document, "collection", required=False, source=source),
        data_dir=data_dir,
        train_dir=train_dir,
        parameters=merged,
        declared_outputs=outputs,
        out=OutputWriter(out_dir, outputs),
        round=_parse_round(document.get("round"), source=source),
    )
