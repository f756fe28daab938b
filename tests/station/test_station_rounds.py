"""A federated job at the station: round inputs in the job folder, the update split from the outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import protocol
from protocol import FederatedPlan, Job, KeyPair, PolicyError, RoundSpec, b64encode
from station.rounds import STATION_STATE_FILE, keep_station_state, prepare_round, take_update

GLOBAL = b"global model bytes"


def _federated(job: Job, *, number: int = 2, global_model: str | None = None) -> Job:
    manifest = job.signed_manifest.manifest.model_copy(
        update={"kind": protocol.TrainKind.FEDERATED, "federated": FederatedPlan()}
    )
    return job.model_copy(
        update={
            "round": RoundSpec(number=number, global_model=global_model, config={"local_epochs": 1}),
            "signed_manifest": protocol.SignedManifest(manifest=manifest, signature=job.signed_manifest.signature),
        }
    )


@pytest.fixture
def fl_job(researcher: KeyPair, job_for: object) -> Job:
    job = job_for(researcher, b"bundle")  # type: ignore[operator]
    return _federated(job, global_model=protocol.content_address(GLOBAL))


def _files(update: bytes, info: object) -> dict[str, str]:
    return {"update.safetensors": b64encode(update), "update.json": b64encode(json.dumps(info).encode())}


def test_prepare_round_puts_the_global_model_and_kept_state_in_the_job_folder(fl_job: Job, tmp_path: Path) -> None:
    job_dir, out_dir, root = tmp_path / "job", tmp_path / "out", tmp_path / "state"
    job_dir.mkdir()
    out_dir.mkdir()
    (out_dir / STATION_STATE_FILE).write_bytes(b"local batch-norm statistics")
    assert keep_station_state(fl_job, out_dir, state_root=root)
    assert not (out_dir / STATION_STATE_FILE).exists()  # never among the outputs

    section = prepare_round(
        fl_job, job_dir, state_root=root, download=lambda address, target: target.write_bytes(GLOBAL)
    )

    assert section == {
        "number": 2,
        "config": {"local_epochs": 1},
        "global_model": "global.safetensors",
        "station_state": STATION_STATE_FILE,
    }
    assert (job_dir / "global.safetensors").read_bytes() == GLOBAL
    assert (job_dir / STATION_STATE_FILE).read_bytes() == b"local batch-norm statistics"


def test_first_round_has_no_global_model(fl_job: Job, tmp_path: Path) -> None:
    first = fl_job.model_copy(update={"round": RoundSpec(number=1)})

    section = prepare_round(
        first, tmp_path, state_root=tmp_path / "state", download=lambda address, target: target.write_bytes(b"")
    )

    assert section["global_model"] is None
    assert section["station_state"] is None


def test_take_update_splits_the_update_from_the_outputs(fl_job: Job) -> None:
    data, ref, rest = take_update(fl_job, _files(b"weights", {"num_examples": 12, "metrics": {"acc": 0.5}}), k=5)

    assert data == b"weights"
    assert ref.address == protocol.content_address(b"weights")
    assert (ref.size, ref.num_examples, ref.metrics) == (7, 12, {"acc": 0.5})
    assert set(rest) == {"update.json"}


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"num_examples": 3}, "fewer than the station's k = 5"),
        ({}, "as a whole number"),
        ({"num_examples": "12"}, "as a whole number"),
        ({"num_examples": 12, "metrics": {"acc": "high"}}, "not a finite number"),
        ({"num_examples": 12, "metrics": [1, 2]}, "must be an object"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_take_update_refuses_bad_update_info(fl_job: Job, info: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        take_update(fl_job, _files(b"weights", info), k=5)


def test_take_update_without_an_update_is_refused(fl_job: Job) -> None:
    with pytest.raises(PolicyError, match="no model update"):
        take_update(fl_job, {"update.json": b64encode(b"{}")}, k=5)


def test_station_state_that_is_not_a_file_is_refused(fl_job: Job, tmp_path: Path) -> None:
    (tmp_path / STATION_STATE_FILE).mkdir()

    with pytest.raises(PolicyError, match="not a regular file"):
        keep_station_state(fl_job, tmp_path, state_root=tmp_path / "state")
