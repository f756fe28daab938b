"""The parts of ``train.toml`` beyond name and outputs: parameter schemas, resources, templates.

A parameter is either a bare default (``k = 5``) or a small JSON-Schema-like table::

    [parameters]
    k = { type = "integer", default = 5, minimum = 2, maximum = 50 }
    modality = { type = "string", default = "CT", enum = ["CT", "MR"] }

and ``[resources]`` says what one job needs (``cpu``, ``memory_mb`` or ``memory = "2g"``,
``gpu``, ``time_s`` or ``time = "10m"``); stations refuse jobs that ask more than they allow.
Every error names the file and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import ProtocolError

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "ParameterSpec",
    "build_image",
    "image_id_of_archive",
    "parse_parameters",
    "parse_resources",
    "validate_parameters",
    "write_template",
]

_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
_SPEC_KEYS = {"type", "default", "minimum", "maximum", "min", "max", "enum", "description", "required"}
_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h)?\s*$", re.IGNORECASE)
_MEMORY_FACTOR = {"": 1 / (1 << 20), "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}
_DURATION_FACTOR = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, kw_only=True)
class ParameterSpec:
    """One declared parameter: its type, default and bounds."""

    name: str
    type: str | None = None
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    required: bool = False
    description: str = ""

    def check(self, value: Any, *, where: str) -> None:
        """Raise :class:`ProtocolError` naming ``where`` when ``value`` breaks this spec."""
        if self.type is not None:
            types = _TYPES[self.type]
            is_bool = isinstance(value, bool)
            if not isinstance(value, types) or (is_bool and self.type in {"integer", "number"}):
                raise ProtocolError(f"{where}: parameter {self.name!r} must be of type {self.type}, not {value!r}")
        if self.minimum is not None and isinstance(value, int | float) and value < self.minimum:
            raise ProtocolError(f"{where}: parameter {self.name!r} is {value!r}, below its minimum {self.minimum:g}")
        if self.maximum is not None and isinstance(value, int | float) and value > self.maximum:
            raise ProtocolError(f"{where}: parameter {self.name!r} is {value!r}, above its maximum {self.maximum:g}")
        if self.enum is not None and value not in self.enum:
            raise ProtocolError(f"{where}: parameter {self.name!r} is {value!r}; allowed: {list(self.enum)}")


def _number(value: Any, *, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{where} must be a number, not {value!r}")
    return float(value)


def parse_parameters(raw: Any, *, path: Path) -> dict[str, ParameterSpec]:
    """Read the ``[parameters]`` table; check every default against its own spec."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"{path}: [parameters] must be a table")
    specs: dict[str, ParameterSpec] = {}
    for name, value in raw.items():
        where = f"{path}: parameters.{name}"
        if not isinstance(value, dict):
            specs[name] = ParameterSpec(name=name, default=value)
            continue
        unknown = sorted(set(value) - _SPEC_KEYS)
        if unknown:
            raise ProtocolError(f"{where} has unknown keys {unknown}; known: {sorted(_SPEC_KEYS)}")
        kind = value.get("type")
        if kind is not None and kind not in _TYPES:
            raise ProtocolError(f"{where}.type is {kind!r}; choose one of {sorted(_TYPES)}")
        low = value.get("minimum", value.get("min"))
        high = value.get("maximum", value.get("max"))
        enum = value.get("enum")
        if enum is not None and not isinstance(enum, list):
            raise ProtocolError(f"{where}.enum must be a list")
        spec = ParameterSpec(
            name=name,
            type=kind,
            default=value.get("default"),
            minimum=None if low is None else _number(low, where=f"{where}.minimum"),
            maximum=None if high is None else _number(high, where=f"{where}.maximum"),
            enum=None if enum is None else tuple(enum),
            required=bool(value.get("required", False)),
            description=str(value.get("description", "")),
        )
        if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
            raise ProtocolError(f"{where}: minimum {spec.minimum:g} is above maximum {spec.maximum:g}")
        if spec.default is not None:
            spec.check(spec.default, where=f"{path} (default)")
        elif not spec.required:
            raise ProtocolError(f"{where} has no default; give one or mark it required = true")
        specs[name] = spec
    return specs


def validate_parameters(
    specs: dict[str, ParameterSpec], given: dict[str, Any] | None, *, where: str = "parameters"
) -> dict[str, Any]:
    """Merge ``given`` over the defaults and check each value; unknown names are errors.

    Examples
    --------
    >>> specs = {"k": ParameterSpec(name="k", type="integer", default=5, minimum=2)}
    >>> validate_parameters(specs, {"k": 7})
    {'k': 7}
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ProtocolError(f"{where}: unknown parameters {unknown}; the train declares {sorted(specs)}")
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            spec.check(given[name], where=where)
            values[name] = given[name]
        elif spec.default is not None:
            values[name] = spec.default
        elif spec.required:
            raise ProtocolError(f"{where}: the parameter {name!r} is required")
    return values


def _memory_mb(value: Any, *, where: str) -> float:
    if isinstance(value, str):
        match = _MEMORY.match(value)
        if match is None:
            raise ProtocolError(f"{where} {value!r} is not a size such as '512m' or '2g'")
        return float(match.group(1)) * _MEMORY_FACTOR[match.group(2).lower()]
    return _number(value, where=where)


def _seconds(value: Any, *, where: str) -> float:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ProtocolError(f"{where} {value!r} is not a duration such as '90s', '10m' or '1h'")
        return float(match.group(1)) * _DURATION_FACTOR[(match.group(2) or "").lower()]
    return _number(value, where=where)


_RESOURCE_ALIASES = {
    "cpu": "cpu",
    "cpus": "cpu",
    "memory_mb": "memory_mb",
    "memory": "memory_mb",
    "gpu": "gpu",
    "gpus": "gpu",
    "time_s": "time_s",
    "timeout_s": "time_s",
    "time": "time_s",
}


def parse_resources(raw: Any, *, path: Path) -> dict[str, float]:
    """Read ``[resources]`` into ``cpu``, ``memory_mb``, ``gpu`` and ``time_s`` (absent keys stay absent)."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"{path}: [resources] must be a table")
    resources: dict[str, float] = {}
    for key, value in raw.items():
        where = f"{path}: resources.{key}"
        canonical = _RESOURCE_ALIASES.get(key)
        if canonical is None:
            raise ProtocolError(f"{where} is unknown; known: cpu, memory (or memory_mb), gpu, time (or time_s)")
        if canonical == "memory_mb":
            amount = _memory_mb(value, where=where)
        elif canonical == "time_s":
            amount = _seconds(value, where=where)
        elif canonical == "gpu" and isinstance(value, bool):
            amount = 1.0 if value else 0.0
        else:
            amount = _number(value, where=where)
        if amount < 0 or (canonical != "gpu" and amount == 0):
            raise ProtocolError(f"{where} must be positive, not {value!r}")
        if canonical == "gpu" and amount != int(amount):
            raise ProtocolError(f"{where} counts whole devices, not {value!r}")
        resources[canonical] = amount
    return resources


_ANALYSIS_MAIN = '''"""{name}: an analysis train. It reads /data, writes only declared outputs to /out."""

import trainkit

job = trainkit.job()
k = int(job.parameters["k"])
files = sum(1 for _ in trainkit.iter_dicom_files(job.data_dir))
job.out.write_json("result.json", {{"files": trainkit.suppress_small_count(files, k=k), "k": k}})
'''

_FEDERATED_MAIN = '''"""{name}: a federated train. Each round it trains locally and writes its update to /out.

The hub sends the round's config and (after round 1) the global model; the train writes its new
weights as safetensors (never pickles) plus ``update.json`` (example count and metrics). The hub
aggregates the stations' updates between rounds.
"""

import numpy as np
from safetensors.numpy import load_file, save

import trainkit

job = trainkit.job()
if job.round is None:
    raise SystemExit("{name} is a federated train: it runs in a hub-run round")
config = job.round.config
weights = {{"w": np.zeros(4, dtype=np.float32)}}  # round 1 starts from the same seed everywhere
if job.round.global_model is not None:
    weights = load_file(str(job.round.global_model))

# Train here on the files under job.data_dir for config["local_epochs"] epochs.
examples = sum(1 for _ in trainkit.iter_dicom_files(job.data_dir))
weights = {{key: value + float(config.get("learning_rate", 0.01)) for key, value in weights.items()}}

job.out.write_bytes("update.safetensors", save(weights))
job.out.write_json("update.json", {{"num_examples": examples, "metrics": {{"examples": examples}}}})
'''

_TEMPLATES = {
    "analysis": (
        _ANALYSIS_MAIN,
        """name = "{name}"
version = "0.1.0"
kind = "analysis"
entrypoint = "main.py"
description = "What this train computes, for the stewards who approve it."
outputs = [{{ name = "result.json", type = "json" }}]

[parameters]
k = {{ type = "integer", default = 5, minimum = 2, maximum = 50, description = "smallest count published" }}

[resources]
cpu = 1
memory = "1g"
time = "10m"
gpu = 0
""",
    ),
    "federated": (
        _FEDERATED_MAIN,
        """name = "{name}"
version = "0.1.0"
kind = "federated"
entrypoint = "main.py"
description = "What this model learns, for the stewards who approve it."
outputs = [
  {{ name = "update.safetensors", type = "safetensors" }},
  {{ name = "update.json", type = "json" }},
]

[federated]
strategy = "fedavg"
rounds = 3
min_stations = 2
local_epochs = 1
learning_rate = 0.01

[resources]
cpu = 2
memory = "4g"
time = "30m"
gpu = 0
""",
    ),
}


def write_template(directory: Path, *, name: str, kind: str) -> list[Path]:
    """Create a new train folder ``directory`` from the ``kind`` template; return the files written."""
    if kind not in _TEMPLATES:
        raise ProtocolError(f"no template for kind {kind!r}; choose one of {sorted(_TEMPLATES)}")
    if not re.match(r"^[a-z0-9][a-z0-9._-]{0,62}$", name):
        raise ProtocolError(f"name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    if directory.exists() and any(directory.iterdir()):
        raise ProtocolError(f"{directory} exists and is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    main, toml = _TEMPLATES[kind]
    written = [directory / "train.toml", directory / "main.py"]
    written[0].write_text(toml.format(name=name), encoding="utf-8")
    written[1].write_text(main.format(name=name), encoding="utf-8")
    return written


DEFAULT_BASE_IMAGE = "trainyard/train-base:0.1"


def image_id_of_archive(archive: bytes) -> str:
    """Return the image id (``sha256:...``, the config's digest) a ``docker save`` tar holds.

    Raises
    ------
    ProtocolError
        When the archive is not a single-image ``docker save`` tar.
    """
    import io
    import json
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            entries = json.loads(member.read())
    except (tarfile.TarError, KeyError, ValueError) as exc:
        raise ProtocolError(f"not a 'docker save' archive: {exc}") from exc
    if not isinstance(entries, list) or len(entries) != 1 or "Config" not in entries[0]:
        raise ProtocolError("a train image archive holds exactly one image")
    config = str(entries[0]["Config"])
    digest = config.removeprefix("blobs/sha256/").removesuffix(".json")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ProtocolError(f"the archive's image config {config!r} is not content-addressed")
    return f"sha256:{digest}"


def build_image(train_dir: Path, bundle: bytes, *, base_image: str = DEFAULT_BASE_IMAGE) -> tuple[str, bytes]:
    """Build an image ``FROM base_image`` with the bundle at /train; return its id and ``docker save`` tar.

    Needs the Docker SDK and an engine holding ``base_image`` (nothing is pulled).
    """
    import gzip
    import io
    import tarfile

    try:
        from docker.client import DockerClient
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise ProtocolError(f"building an image needs the docker SDK: {exc}") from exc
    dockerfile = f"FROM {base_image}\nCOPY --chown=0:0 train/ /train/\nWORKDIR /train\n".encode()
    context = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(gzip.decompress(bundle))) as source,
        tarfile.open(fileobj=context, mode="w") as tar,
    ):
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for member in source.getmembers():
            data = source.extractfile(member)
            member.name = f"train/{member.name}"
            tar.addfile(member, data)
    context.seek(0)
    try:
        client = DockerClient.from_env()
        image, _logs = client.images.build(fileobj=context, custom_context=True, pull=False, rm=True)
        archive = b"".join(image.save(named=False))
    except DockerException as exc:
        raise ProtocolError(f"cannot build the train image of {train_dir} from {base_image!r}: {exc}") from exc
    image_id = image_id_of_archive(archive)
    if image_id != image.id:
        raise ProtocolError(f"the saved archive names image {image_id}, the engine built {image.id}")
    return image_id, archive
