"""A federated job at the station: the global model in, the update out, local state kept here.

The hub sends a round's job with the global model's content address. The station downloads and
verifies it, and hands it to the train as ``/job/global.safetensors`` together with whatever the
train kept from its previous round at this station (``/job/station_state.safetensors``: FedBN's
local batch-norm statistics, a compressor's error-feedback residual). That state never leaves the
station: the train writes it to ``/out/station_state.safetensors`` and the station moves it out of
the outputs before they are checked.

The update itself (a declared safetensors output, ``update.safetensors`` by default) travels to
the hub as a content-addressed upload that the signed envelope names; ``update.json`` beside it
gives the example count and metrics (:class:`protocol.UpdateKey`).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol import FederatedPlan, Job, ModelUpdateRef, PolicyError, UpdateKey, b64decode, content_address

from .outbox import file_name_for_job

__all__ = [
    "GLOBAL_MODEL_FILE",
    "STATION_STATE_FILE",
    "UPDATE_INFO_FILE",
    "keep_station_state",
    "prepare_round",
    "take_update",
]

GLOBAL_MODEL_FILE = "global.safetensors"
STATION_STATE_FILE = "station_state.safetensors"
UPDATE_INFO_FILE = "update.json"
_MAX_METRICS = 64


def _state_path(state_root: Path, job: Job) -> Path:
    """Where this train keeps its local state at this station, per collection."""
    return state_root / "fl" / file_name_for_job(job.train_id) / f"{file_name_for_job(job.collection)}.safetensors"


def prepare_round(
    job: Job, job_dir: Path, *, state_root: Path, download: Callable[[str, Path], object]
) -> dict[str, Any]:
    """Put the round's inputs in ``job_dir``; return the ``round`` section of the job file.

    ``download(address, target)`` streams the global model to the file ``target`` (checked against
    its address on the way), so a large model is never held in memory.
    """
    assert job.round is not None
    section: dict[str, Any] = {"number": job.round.number, "config": dict(job.round.config)}
    section["global_model"] = None
    if job.round.global_model is not None:
        download(job.round.global_model, job_dir / GLOBAL_MODEL_FILE)
        section["global_model"] = GLOBAL_MODEL_FILE
    kept = _state_path(state_root, job)
    section["station_state"] = None
    if kept.is_file():
        shutil.copyfile(kept, job_dir / STATION_STATE_FILE)
        section["station_state"] = STATION_STATE_FILE
    return section


def keep_station_state(job: Job, out_dir: Path, *, state_root: Path) -> bool:
    """Move the train's local state out of ``/out`` into the station's state (never uploaded)."""
    written = out_dir / STATION_STATE_FILE
    if not written.exists():
        return False
    if written.is_symlink() or not written.is_file():
        raise PolicyError(f"{STATION_STATE_FILE} in /out is not a regular file")
    target = _state_path(state_root, job)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.move(str(written), target)
    return True


def _metrics(raw: object) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > _MAX_METRICS:
        raise PolicyError(f"{UPDATE_INFO_FILE}: metrics must be an object of at most {_MAX_METRICS} numbers")
    metrics: dict[str, float] = {}
    for key, value in raw.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise PolicyError(f"{UPDATE_INFO_FILE}: metric {key!r} is not a finite number")
        metrics[str(key)[:64]] = float(value)
    return metrics


def take_update(job: Job, files: dict[str, str], *, k: int) -> tuple[bytes, ModelUpdateRef, dict[str, str]]:
    """Split the update out of a round's outputs; return its bytes, its reference and the other outputs.

    Raises
    ------
    PolicyError
        When the update or its ``update.json`` is missing or malformed, or it was trained on fewer than
        ``k`` examples (a count that small would be disclosed to the hub).
    """
    plan = job.signed_manifest.manifest.federated or FederatedPlan()
    if plan.update_output not in files:
        raise PolicyError(f"the train wrote no model update {plan.update_output!r}")
    data = b64decode(files[plan.update_output])
    info: dict[str, Any] = {}
    if UPDATE_INFO_FILE in files:
        try:
            info = json.loads(b64decode(files[UPDATE_INFO_FILE]))
        except ValueError as exc:
            raise PolicyError(f"{UPDATE_INFO_FILE} is not JSON: {exc}") from exc
        if not isinstance(info, dict):
            raise PolicyError(f"{UPDATE_INFO_FILE} must be a JSON object")
    examples = info.get(UpdateKey.NUM_EXAMPLES.value)
    if not isinstance(examples, int) or isinstance(examples, bool) or examples < 0:
        raise PolicyError(f"{UPDATE_INFO_FILE} must give {UpdateKey.NUM_EXAMPLES.value!r} as a whole number")
    if examples < k:
        raise PolicyError(f"the update was trained on {examples} examples, fewer than the station's k = {k}")
    ref = ModelUpdateRef(
        address=content_address(data),
        size=len(data),
        num_examples=examples,
        metrics=_metrics(info.get(UpdateKey.METRICS.value)),
    )
    rest = {name: value for name, value in files.items() if name != plan.update_output}
    return data, ref, rest
