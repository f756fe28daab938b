"""A round's update uploaded in chunks becomes a registered model; the client streams its weights to a file.

Real HTTP on loopback: the hub app served by uvicorn, the station's chunks signed as a station signs
them, the researcher's client downloading (and resuming) the registry's weights.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from bench._serve import serve_on_loopback
from client import TrainyardClient
from client._client import ClientError
from hub import Settings, create_app
from hub.core import security
from protocol import JobStatus, ModelUpdateRef, ResultEnvelope, content_address_for_file, seal, sign_envelope
from station.agent import StationSignature
from station.transfer import upload_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub"))  # the hub tests' factories
from fl_jobs import RunningRound, running_round
from hub_factories import HubFactory, sign_station_requests

CHUNK = 64 * 1024


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, TestClient]]:
    monkeypatch.setattr(security, "_N", 2**8)
    app = create_app(Settings(state_dir=tmp_path / "hub", base_iri="http://127.0.0.1", upload_chunk_bytes=CHUNK))
    with serve_on_loopback(app) as url:
        setup = TestClient(app)  # the served app's own state; uvicorn runs its lifespan
        setup.event_hooks["request"].append(sign_station_requests)
        yield url, setup


def _register(url: str, setup: TestClient, tmp_path: Path) -> tuple[RunningRound, str, dict[str, torch.Tensor]]:
    """Upload round 1's update in chunks, post its envelope; the one-round run registers the model."""
    fl = running_round(setup)
    weights = {"w": torch.arange(100_000, dtype=torch.float32), "b": torch.ones(3)}
    update = tmp_path / "update.safetensors"
    save_file(weights, update, metadata={"compression": "none"})
    address = content_address_for_file(update)
    with httpx.Client(base_url=url, headers=fl.station.headers, auth=StationSignature(fl.station.keys)) as station:
        status = upload_file(station, fl.job.job_id, update, address=address)
        assert status.complete
        envelope = ResultEnvelope(
            job_id=fl.job.job_id,
            train_id=fl.job.train_id,
            station=fl.station.name,
            status=JobStatus.SUCCEEDED,
            sealed=seal(b"{}", fl.researcher.keys.encryption_public, associated_data=fl.job.job_id),
            update=ModelUpdateRef(address=address, size=update.stat().st_size, num_examples=20),
            created_at=datetime.now(UTC),
        )
        signed = sign_envelope(envelope, fl.station.keys.signing).model_dump(mode="json")
        posted = station.post(f"/stations/me/jobs/{fl.job.job_id}/result", json=signed)
        assert posted.status_code == 202, posted.text
    (model,) = setup.get("/models", headers=fl.researcher.headers).json()["data"]
    return fl, str(model["id"]), weights


def test_a_chunked_update_becomes_a_model_the_researcher_streams_and_resumes(
    served: tuple[str, TestClient], tmp_path: Path
) -> None:
    url, setup = served
    fl, model_id, weights = _register(url, setup, tmp_path)
    researcher = TrainyardClient(url, token=fl.researcher.headers["Authorization"].removeprefix("Bearer "))
    target = tmp_path / "models" / "model.safetensors"

    whole = researcher.download_model_weights(model_id, target)
    data = whole.read_bytes()
    target.unlink()
    target.with_name("model.safetensors.part").write_bytes(data[:1000])  # a download that broke off
    ranged = setup.get(f"/models/{model_id}/weights", headers={**fl.researcher.headers, "Range": "bytes=1000-"})
    resumed = researcher.download_model_weights(model_id, target)

    assert ranged.status_code == 206 and ranged.content == data[1000:]  # the registry route streams ranges
    assert resumed.read_bytes() == data
    assert torch.equal(load_file(resumed)["w"], weights["w"])
    assert not target.with_name("model.safetensors.part").exists()


def test_the_registry_download_stays_with_the_project_s_researchers(
    served: tuple[str, TestClient], tmp_path: Path
) -> None:
    url, setup = served
    _fl, model_id, _weights = _register(url, setup, tmp_path)
    other = HubFactory(setup).create_researcher("mallory")
    outsider = TrainyardClient(url, token=other.headers["Authorization"].removeprefix("Bearer "))

    with pytest.raises(ClientError) as refused:
        outsider.download_model_weights(model_id, tmp_path / "stolen.safetensors")

    assert refused.value.status == 404
    assert not (tmp_path / "stolen.safetensors").exists()
    assert not (tmp_path / "stolen.safetensors.part").exists()
