"""Train folders: read ``train.toml`` and pack the folder as a reproducible source bundle."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from protocol import FederatedPlan, OutputSpec, ProtocolError, TrainKind

from ._trains import ParameterSpec, parse_parameters, parse_resources, validate_parameters

__all__ = ["TrainConfig", "build_bundle", "read_train_config"]

_SKIP_PARTS = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache"}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_MAX_BUNDLE_BYTES = 64 << 20


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """What ``train.toml`` declares."""

    name: str
    version: str
    kind: TrainKind
    entrypoint: str
    outputs: tuple[OutputSpec, ...]
    parameters: dict[str, Any]
    parameter_specs: dict[str, ParameterSpec] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    description: str = ""
    federated: FederatedPlan | None = None

    def parameters_with(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """The defaults updated with ``given``, each checked against its declared spec."""
        return validate_parameters(self.parameter_specs, given, where=f"train {self.name!r}")


def read_train_config(train_dir: Path) -> TrainConfig:
    """Read and check ``train_dir/train.toml``.

    Raises
    ------
    ProtocolError
        When the file is missing, is not TOML, or misses a required key.
    """
    path = train_dir / "train.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProtocolError(f"{train_dir} is not a train: it has no train.toml") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{path} is not valid TOML: {exc}") from exc
    train = data.get("train", data)
    try:
        name = str(train["name"])
        entrypoint = str(train["entrypoint"])
        if not isinstance(train["outputs"], list) or not train["outputs"]:
            raise ProtocolError(f"{path}: outputs must be a non-empty list of {{ name, type }} tables")
        outputs = tuple(OutputSpec.model_validate(item) for item in train["outputs"])
        kind = TrainKind(train.get("kind", TrainKind.ANALYSIS))
    except KeyError as exc:
        raise ProtocolError(f"{path} misses the key {exc.args[0]!r}") from exc
    except ValueError as exc:
        raise ProtocolError(f"{path}: {exc}") from exc
    if not _SLUG.match(name):
        raise ProtocolError(f"{path}: name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    if not (train_dir / entrypoint).is_file():
        raise ProtocolError(f"{path}: the entrypoint {entrypoint!r} does not exist in the train folder")
    specs = parse_parameters(data.get("parameters", {}), path=path)
    resources = parse_resources(data.get("resources", {}), path=path)
    federated = _parse_federated(data.get("federated"), kind=kind, outputs=outputs, path=path)
    parameters = {name: spec.default for name, spec in specs.items() if spec.default is not None}
    return TrainConfig(
        name=name,
        version=str(train.get("version", "0.1.0")),
        kind=kind,
        entrypoint=entrypoint,
        outputs=outputs,
        parameters=parameters,
        parameter_specs=specs,
        resources=resources,
        description=str(train.get("description", "")),
        federated=federated,
    )


def _parse_federated(raw: Any, *, kind: TrainKind, outputs: tuple[OutputSpec, ...], path: Path) -> FederatedPlan | None:
    """The ``[federated]`` table: a federated train's round plan (defaults when left out)."""
    if kind != TrainKind.FEDERATED:
        if raw is not None:
            raise ProtocolError(f'{path}: a [federated] table needs kind = "federated"')
        return None
    if raw is not None and not isinstance(raw, dict):
        raise ProtocolError(f"{path}: [federated] must be a table")
    try:
        plan = FederatedPlan.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"federated.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ProtocolError(f"{path}: {problems}") from exc
    kinds = {spec.name: spec.type for spec in outputs}
    if kinds.get(plan.update_output) != "safetensors":
        raise ProtocolError(
            f"{path}: a federated train declares its update as an output "
            f'{{ name = "{plan.update_output}", type = "safetensors" }}'
        )
    return plan


def _files_of(train_dir: Path) -> list[Path]:
    files = []
    for path in sorted(train_dir.rglob("*")):
        relative = path.relative_to(train_dir)
        if _SKIP_PARTS.intersection(relative.parts) or path.suffix == ".pyc":
            continue
        if path.is_symlink():
            raise ProtocolError(f"{relative} is a symbolic link; bundles hold regular files only")
        if path.is_file():
            files.append(path)
    return files


def build_bundle(train_dir: Path) -> bytes:
    """Pack a train folder as a gzipped tar whose bytes depend only on the files' content.

    Names are sorted, times, owners and modes normalised, so the same folder always gives
    the same content address.
    """
    read_train_config(train_dir)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _files_of(train_dir):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(train_dir).as_posix())
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = gzip.compress(raw.getvalue(), mtime=0)
    if len(packed) > _MAX_BUNDLE_BYTES:
        raise ProtocolError(f"the train bundle is {len(packed)} bytes; the limit is {_MAX_BUNDLE_BYTES}")
    return packed
