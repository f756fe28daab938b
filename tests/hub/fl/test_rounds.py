"""Federated rounds at the hub, through the real API: stations poll, upload updates, rounds advance."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from hub_factories import OTHER_STATION, STATION, EnrolledStation, Headers, HubFactory, Researcher
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from hub import Settings, create_app
from hub.fl import decode_state
from protocol import (
    FederatedPlan,
    Job,
    JobFailure,
    JobStatus,
    ModelUpdateRef,
    ResultEnvelope,
    Role,
    SignedManifest,
    TrainKind,
    TrainManifest,
    content_address,
    seal,
    sign_envelope,
    sign_manifest,
)


@dataclass
class Federation:
    client: TestClient
    hub: HubFactory
    researcher: Researcher
    project_id: str
    stations: dict[str, EnrolledStation]
    collections: dict[str, str]
    bundle: str


@pytest.fixture
def federation(client: TestClient, hub: HubFactory, researcher: Researcher, admin_headers: Headers) -> Federation:
    project_id = hub.create_project(researcher)
    stations, collections = {}, {}
    for name in (STATION, OTHER_STATION):
        stations[name] = hub.enrol_station(admin_headers, name)
        collections[name] = hub.publish(stations[name])
        steward = hub.create_user(f"steward-{name}", Role.STEWARD, station=name)
        hub.grant(researcher, project_id, collections[name], steward)
    return Federation(client, hub, researcher, project_id, stations, collections, hub.upload_bundle(researcher))


def _manifest_for(fed: Federation, **plan: Any) -> dict[str, Any]:
    manifest = TrainManifest(
        name="fed-test",
        kind=TrainKind.FEDERATED,
        entrypoint="main.py",
        bundle_hash=fed.bundle,
        outputs=({"name": "update.safetensors", "type": "safetensors"},),  # type: ignore[arg-type]
        federated=FederatedPlan(**plan),
        project_id=fed.project_id,
        collections=tuple(fed.collections.values()),
        researcher=fed.researcher.username,
        signing_public_key=fed.researcher.keys.signing_public,
        encryption_public_key=fed.researcher.keys.encryption_public,
        created_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    signed: dict[str, Any] = sign_manifest(manifest, fed.researcher.keys.signing).model_dump(mode="json")
    return signed


def _submit(fed: Federation, **plan: Any) -> dict[str, Any]:
    answer = fed.client.post("/trains", json=_manifest_for(fed, **plan), headers=fed.researcher.headers)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _poll(fed: Federation, station: str) -> Job:
    answer = fed.client.get("/stations/me/jobs/next", params={"wait": 0}, headers=fed.stations[station].headers)
    assert answer.status_code == 200, answer.text
    return Job.model_validate(answer.json())


def _update_bytes(value: float) -> bytes:
    return save_safetensors(
        {"w": torch.full((2,), value), "b": torch.tensor([value])}, metadata={"compression": "none"}
    )


def _deliver(
    fed: Federation,
    station: str,
    job: Job,
    value: float,
    examples: int,
    *,
    metrics: dict[str, float] | None = None,
    data: bytes | None = None,
) -> Any:
    data = data if data is not None else _update_bytes(value)
    address = content_address(data)
    put = fed.client.put(
        f"/stations/me/jobs/{job.job_id}/update/{address}", content=data, headers=fed.stations[station].headers
    )
    assert put.status_code in (200, 201), put.text
    ref = ModelUpdateRef(address=address, size=len(data), num_examples=examples, metrics=metrics or {})
    return _post_envelope(fed, station, job, update=ref)


def _post_envelope(fed: Federation, station: str, job: Job, *, update: ModelUpdateRef | None = None) -> Any:
    envelope = ResultEnvelope(
        job_id=job.job_id,
        train_id=job.train_id,
        station=station,
        status=JobStatus.SUCCEEDED,
        sealed=seal(b"{}", fed.researcher.keys.encryption_public, associated_data=job.job_id),
        update=update,
        created_at=datetime.now(UTC),
    )
    signed = sign_envelope(envelope, fed.stations[station].keys.signing)
    return fed.client.post(
        f"/stations/me/jobs/{job.job_id}/result",
        json=signed.model_dump(mode="json"),
        headers=fed.stations[station].headers,
    )


def _fail(fed: Federation, station: str, job: Job) -> None:
    envelope = ResultEnvelope(
        job_id=job.job_id,
        train_id=job.train_id,
        station=station,
        status=JobStatus.FAILED,
        failure=JobFailure(reason="the train exited with code 1"),
        created_at=datetime.now(UTC),
    )
    signed = sign_envelope(envelope, fed.stations[station].keys.signing)
    answer = fed.client.post(
        f"/stations/me/jobs/{job.job_id}/result",
        json=signed.model_dump(mode="json"),
        headers=fed.stations[station].headers,
    )
    assert answer.status_code == 202, answer.text


def _rounds(fed: Federation, train_id: str) -> dict[str, Any]:
    answer = fed.client.get(f"/trains/{train_id}/rounds", headers=fed.researcher.headers)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_fedavg_run_weights_updates_per_round_and_registers_the_model(federation: Federation) -> None:
    # Prepare
    train = _submit(federation, rounds=2, min_stations=2, compression="none")
    assert len(train["jobs"]) == 2
    assert {job["fl_round"] for job in train["jobs"]} == {1}

    # Execute: round 1
    first = {name: _poll(federation, name) for name in federation.stations}
    assert all(job.round is not None and job.round.number == 1 for job in first.values())
    assert first[STATION].round is not None and first[STATION].round.global_model is None
    assert _deliver(federation, STATION, first[STATION], 1.0, 10, metrics={"val_accuracy": 0.5}).status_code == 202
    assert _rounds(federation, train["id"])["current_round"] == 1  # still waiting for site-b
    assert (
        _deliver(federation, OTHER_STATION, first[OTHER_STATION], 5.0, 30, metrics={"val_accuracy": 0.7}).status_code
        == 202
    )

    # Assert: round 2 carries the example-weighted mean (1*10 + 5*30) / 40 = 4
    second = {name: _poll(federation, name) for name in federation.stations}
    spec = second[STATION].round
    assert spec is not None and spec.number == 2 and spec.global_model is not None
    weights = federation.client.get(f"/artifacts/{spec.global_model}", headers=federation.stations[STATION].headers)
    assert torch.allclose(decode_state(weights.content)["w"], torch.full((2,), 4.0))
    run = _rounds(federation, train["id"])
    assert run["rounds"][0]["metrics"]["val_accuracy"] == pytest.approx(0.65)  # (0.5*10 + 0.7*30) / 40
    assert run["rounds"][0]["station_metrics"][federation.collections[STATION]] == {"val_accuracy": 0.5}
    assert run["rounds"][0]["bytes_up"] > 0

    # Execute: round 2, then the registry
    for name, value in ((STATION, 2.0), (OTHER_STATION, 2.0)):
        assert _deliver(federation, name, second[name], value, 10).status_code == 202
    run = _rounds(federation, train["id"])
    assert run["status"] == "finished"
    assert run["model_id"]
    model = federation.client.get(f"/models/{run['model_id']}", headers=federation.researcher.headers).json()
    assert model["provenance"]["strategy"] == "fedavg"
    assert [r["round"] for r in model["provenance"]["rounds"]] == [1, 2]
    weights = federation.client.get(f"/models/{run['model_id']}/weights", headers=federation.researcher.headers)
    assert weights.status_code == 200
    assert torch.allclose(load_safetensors(weights.content)["w"], torch.full((2,), 2.0))
    listed = federation.client.get("/models", headers=federation.researcher.headers).json()
    assert [item["id"] for item in listed["data"]] == [run["model_id"]]


def test_model_of_another_project_is_not_found(federation: Federation) -> None:
    train = _submit(federation, rounds=1, min_stations=1)
    for name in federation.stations:
        _deliver(federation, name, _poll(federation, name), 1.0, 10)
    model_id = _rounds(federation, train["id"])["model_id"]
    other = federation.hub.create_researcher("mallory")

    assert federation.client.get(f"/models/{model_id}", headers=other.headers).status_code == 404
    assert federation.client.get(f"/models/{model_id}/weights", headers=other.headers).status_code == 404
    assert federation.client.get("/models", headers=other.headers).json()["count"] == 0


def test_repeated_envelope_counts_once(federation: Federation) -> None:
    train = _submit(federation, rounds=2, min_stations=2)
    jobs = {name: _poll(federation, name) for name in federation.stations}
    _deliver(federation, STATION, jobs[STATION], 1.0, 10)
    assert _deliver(federation, STATION, jobs[STATION], 1.0, 10).status_code in (200, 409)
    _deliver(federation, OTHER_STATION, jobs[OTHER_STATION], 3.0, 10)

    run = _rounds(federation, train["id"])
    assert run["rounds"][0]["metrics"]["num_examples"] == 20.0
    assert run["current_round"] == 2


def test_envelope_naming_an_update_that_was_not_uploaded_is_refused(federation: Federation) -> None:
    _submit(federation, rounds=1, min_stations=2)
    job = _poll(federation, STATION)
    data = _update_bytes(1.0)
    missing = ModelUpdateRef(address=content_address(data), size=len(data), num_examples=10)

    answer = _post_envelope(federation, STATION, job, update=missing)
    assert answer.status_code == 409
    assert "PUT /stations/me/jobs/" in answer.json()["detail"]

    answer = _post_envelope(federation, STATION, job)
    assert answer.status_code == 400
    assert "names its model update" in answer.json()["detail"]


def test_update_with_a_wrong_address_or_size_is_refused(federation: Federation) -> None:
    _submit(federation, rounds=1, min_stations=2)
    job = _poll(federation, STATION)
    data = _update_bytes(1.0)
    wrong = "sha256:" + "0" * 64
    answer = federation.client.put(
        f"/stations/me/jobs/{job.job_id}/update/{wrong}", content=data, headers=federation.stations[STATION].headers
    )
    assert answer.status_code == 400
    assert "does not match its address" in answer.json()["detail"]

    address = content_address(data)
    federation.client.put(
        f"/stations/me/jobs/{job.job_id}/update/{address}", content=data, headers=federation.stations[STATION].headers
    )
    lying = ModelUpdateRef(address=address, size=len(data) + 1, num_examples=10)
    answer = _post_envelope(federation, STATION, job, update=lying)
    assert answer.status_code == 400
    assert "bytes, not the" in answer.json()["detail"]


def test_update_for_another_stations_job_is_refused(federation: Federation) -> None:
    _submit(federation, rounds=1, min_stations=2)
    job = _poll(federation, STATION)
    data = _update_bytes(1.0)
    answer = federation.client.put(
        f"/stations/me/jobs/{job.job_id}/update/{content_address(data)}",
        content=data,
        headers=federation.stations[OTHER_STATION].headers,
    )
    assert answer.status_code == 403


def test_federated_train_must_declare_a_safetensors_update(federation: Federation) -> None:
    manifest = TrainManifest(
        name="fed-test",
        kind=TrainKind.FEDERATED,
        entrypoint="main.py",
        bundle_hash=federation.bundle,
        outputs=({"name": "metrics.json", "type": "json"},),  # type: ignore[arg-type]
        project_id=federation.project_id,
        collections=tuple(federation.collections.values()),
        researcher=federation.researcher.username,
        signing_public_key=federation.researcher.keys.signing_public,
        encryption_public_key=federation.researcher.keys.encryption_public,
        created_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    signed = sign_manifest(manifest, federation.researcher.keys.signing)
    answer = federation.client.post(
        "/trains", json=signed.model_dump(mode="json"), headers=federation.researcher.headers
    )
    assert answer.status_code == 400
    assert "update.safetensors" in answer.json()["detail"]


def test_straggler_is_dropped_at_the_round_deadline(federation: Federation) -> None:
    train = _submit(federation, rounds=2, min_stations=1, round_deadline_s=0.5)
    jobs = {name: _poll(federation, name) for name in federation.stations}
    _deliver(federation, STATION, jobs[STATION], 1.0, 10)
    time.sleep(0.6)

    federation.client.app.state.rounds.tick()  # type: ignore[attr-defined]

    run = _rounds(federation, train["id"])
    assert run["current_round"] == 2
    first = run["rounds"][0]
    assert first["contributed"] == [federation.collections[STATION]]
    assert "deadline" in first["dropped"][federation.collections[OTHER_STATION]]
    late = federation.client.get(f"/trains/{train['id']}", headers=federation.researcher.headers).json()
    statuses = {(job["station"], job["fl_round"]): job["status"] for job in late["jobs"]}
    assert statuses[(OTHER_STATION, 1)] == "cancelled"


def test_too_few_updates_fail_the_run_with_a_reason(federation: Federation) -> None:
    train = _submit(federation, rounds=3, min_stations=2)
    jobs = {name: _poll(federation, name) for name in federation.stations}
    _deliver(federation, STATION, jobs[STATION], 1.0, 10)
    _fail(federation, OTHER_STATION, jobs[OTHER_STATION])

    run = _rounds(federation, train["id"])
    assert run["status"] == "failed"
    assert "fewer than the minimum of 2" in run["reason"]
    assert run["model_id"] is None


def test_early_stopping_ends_the_run_when_the_metric_stalls(federation: Federation) -> None:
    train = _submit(
        federation, rounds=10, min_stations=2, early_stopping_metric="val_accuracy", early_stopping_patience=1
    )
    for accuracy in (0.8, 0.7):
        jobs = {name: _poll(federation, name) for name in federation.stations}
        for name in federation.stations:
            _deliver(federation, name, jobs[name], 1.0, 10, metrics={"val_accuracy": accuracy})

    run = _rounds(federation, train["id"])
    assert run["status"] == "stopped_early"
    assert run["best_round"] == 1
    assert "did not improve" in run["reason"]
    assert run["model_id"]


def test_cancel_stops_the_run(federation: Federation) -> None:
    train = _submit(federation, rounds=3, min_stations=2)
    answer = federation.client.post(f"/trains/{train['id']}/cancel", headers=federation.researcher.headers)
    assert answer.status_code == 200

    run = _rounds(federation, train["id"])
    assert run["status"] == "cancelled"
    assert run["rounds"][0]["status"] == "cancelled"


def test_analysis_train_has_no_rounds(federation: Federation, signed_manifest: SignedManifest) -> None:
    train = federation.hub.submit(signed_manifest, federation.researcher)
    answer = federation.client.get(f"/trains/{train['id']}/rounds", headers=federation.researcher.headers)
    assert answer.status_code == 404


def test_round_left_open_by_a_restart_is_finished_at_start_up(settings: Settings, federation: Federation) -> None:
    # Prepare: both updates are stored, but the hub "crashed" before aggregating
    train = _submit(federation, rounds=1, min_stations=2)
    rounds = federation.client.app.state.rounds  # type: ignore[attr-defined]
    advance = rounds.advance
    rounds.advance = lambda *args, **kwargs: None
    try:
        for name in federation.stations:
            assert _deliver(federation, name, _poll(federation, name), 1.0, 10).status_code == 202
    finally:
        rounds.advance = advance
    assert _rounds(federation, train["id"])["status"] == "running"

    # Execute: the hub stops; a new one starts on the same state
    federation.client.__exit__(None, None, None)
    with TestClient(create_app(settings)) as restarted:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            run = restarted.get(f"/trains/{train['id']}/rounds", headers=federation.researcher.headers).json()
            if run["status"] != "running":
                break
            time.sleep(0.1)

    # Assert
    assert run["status"] == "finished"
    assert run["model_id"]


@pytest.fixture
def signed_manifest(federation: Federation) -> Iterator[SignedManifest]:
    """An analysis manifest for the federation's project."""
    manifest = TrainManifest(
        name="cohort-stats",
        entrypoint="main.py",
        bundle_hash=federation.bundle,
        outputs=({"name": "stats.json", "type": "json"},),  # type: ignore[arg-type]
        project_id=federation.project_id,
        collections=(federation.collections[STATION],),
        researcher=federation.researcher.username,
        signing_public_key=federation.researcher.keys.signing_public,
        encryption_public_key=federation.researcher.keys.encryption_public,
        created_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    yield sign_manifest(manifest, federation.researcher.keys.signing)


def test_compressed_rounds_add_the_decoded_changes_to_the_global_model(federation: Federation) -> None:
    import numpy as np

    from trainkit.compression import compress_update

    train = _submit(federation, rounds=2, min_stations=2, compression="topk", topk_fraction=0.5)
    first = {name: _poll(federation, name) for name in federation.stations}
    for name in federation.stations:  # round 1: whole weights (there is no global model to change yet)
        assert _deliver(federation, name, first[name], 1.0, 10).status_code == 202
    second = {name: _poll(federation, name) for name in federation.stations}
    assert second[STATION].round is not None
    assert second[STATION].round.config["compression"] == "topk"
    assert second[STATION].round.config["topk_fraction"] == 0.5

    changes = {STATION: [4.0, 0.0], OTHER_STATION: [0.0, 2.0]}  # top-1 of each: only the large entry travels
    for name, change in changes.items():
        delta = {"w": np.array(change, dtype=np.float32), "b": np.array([0.0], dtype=np.float32)}
        data, _residual = compress_update(delta, method="topk", fraction=0.5, dense_below=0)
        assert _deliver(federation, name, second[name], 0.0, 10, data=data).status_code == 202

    run = _rounds(federation, train["id"])
    assert run["status"] == "finished"
    weights = federation.client.get(f"/models/{run['model_id']}/weights", headers=federation.researcher.headers)
    assert torch.allclose(load_safetensors(weights.content)["w"], torch.tensor([3.0, 2.0]))  # 1 + mean of changes


def test_a_malformed_compressed_update_drops_its_station_not_the_round(federation: Federation) -> None:
    import numpy as np

    from trainkit.compression import compress_update, read_safetensors, write_safetensors

    train = _submit(federation, rounds=2, min_stations=1, compression="topk", topk_fraction=0.5)
    first = {name: _poll(federation, name) for name in federation.stations}
    for name in federation.stations:
        assert _deliver(federation, name, first[name], 1.0, 10).status_code == 202
    second = {name: _poll(federation, name) for name in federation.stations}
    good, _ = compress_update({"w": np.array([4.0, 0.0], np.float32), "b": np.zeros(1, np.float32)}, method="topk")
    tensors, metadata = read_safetensors(good)
    bad = write_safetensors(tensors, {**metadata, "layout": "b=1,w=3"})  # w is 2 entries in the model

    assert _deliver(federation, STATION, second[STATION], 0.0, 10, data=good).status_code == 202
    assert _deliver(federation, OTHER_STATION, second[OTHER_STATION], 0.0, 10, data=bad).status_code == 202

    run = _rounds(federation, train["id"])
    assert run["status"] == "finished"
    last = run["rounds"][-1]
    assert last["contributed"] == [federation.collections[STATION]]
    reason = last["dropped"][federation.collections[OTHER_STATION]]
    assert "its update was refused" in reason and "shapes differ" in reason
    weights = federation.client.get(f"/models/{run['model_id']}/weights", headers=federation.researcher.headers)
    assert torch.allclose(load_safetensors(weights.content)["w"], torch.tensor([5.0, 1.0]))


def test_differential_privacy_needs_the_initial_model_and_clips_each_change(federation: Federation) -> None:
    initial = save_safetensors({"w": torch.zeros(2), "b": torch.zeros(1)}, metadata={"compression": "none"})
    address = content_address(initial)
    manifest = _manifest_for(federation, dp_clip_norm=1.0, dp_noise_multiplier=0.0)
    refused = federation.client.post("/trains", json=manifest, headers=federation.researcher.headers)
    assert refused.status_code == 400
    assert "upload the initial model" in refused.json()["detail"]
    missing = federation.client.post(
        "/trains",
        json=_manifest_for(federation, dp_clip_norm=1.0, dp_noise_multiplier=0.0, initial_model=address),
        headers=federation.researcher.headers,
    )
    assert missing.status_code == 400 and "is not uploaded" in missing.json()["detail"]
    put = federation.client.put(f"/artifacts/{address}", content=initial, headers=federation.researcher.headers)
    assert put.status_code in (200, 201)

    train = _submit(
        federation, rounds=1, min_stations=2, dp_clip_norm=1.0, dp_noise_multiplier=0.0, initial_model=address
    )
    first = {name: _poll(federation, name) for name in federation.stations}
    assert first[STATION].round is not None and first[STATION].round.global_model == address  # stations start there
    assert _deliver(federation, STATION, first[STATION], 3.0, 10).status_code == 202  # change norm 3*sqrt(3)
    assert _deliver(federation, OTHER_STATION, first[OTHER_STATION], 0.1, 1000).status_code == 202

    run = _rounds(federation, train["id"])
    weights = federation.client.get(f"/models/{run['model_id']}/weights", headers=federation.researcher.headers)
    clipped = 1 / math.sqrt(3)  # each entry of the first change after clipping to norm 1
    expected = torch.full((2,), (clipped + 0.1) / 2)  # equal weights, whatever the example counts
    assert torch.allclose(load_safetensors(weights.content)["w"], expected, atol=1e-5)
    model = federation.client.get(f"/models/{run['model_id']}", headers=federation.researcher.headers).json()
    assert model["provenance"]["dp"]["clip_norm"] == 1.0
    assert "central DP" in model["provenance"]["dp"]["mechanism"]


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"strategy": "cwt"}, "works with fedavg, fedprox and fedbn, not cwt"),
        ({"strategy": "swt"}, "works with fedavg, fedprox and fedbn, not swt"),
        ({"strategy": "ensemble"}, "works with fedavg, fedprox and fedbn, not ensemble"),
        ({"compression": "topk"}, "cannot use topk compression"),
        ({"compression": "sign"}, "cannot use sign compression"),
        ({"dp_clip_norm": 1.0, "dp_noise_multiplier": 1.0}, "cannot be combined with the hub's differential privacy"),
        ({"max_staleness": 1}, "needs max_staleness = 0"),
    ],
)
def test_secure_aggregation_is_refused_where_the_hub_would_need_one_update(
    federation: Federation, plan: dict[str, Any], message: str
) -> None:
    answer = federation.client.post(
        "/trains", json=_manifest_for(federation, secagg=True, **plan), headers=federation.researcher.headers
    )

    assert answer.status_code == 400
    assert message in answer.json()["detail"]


def _advert(fed: Federation, station: str, job: Job, *, signer: Any = None) -> dict[str, Any]:
    from protocol import advert_bytes, generate_key_pair, sign_bytes

    round_keys, mask_keys = generate_key_pair(), generate_key_pair()
    participant = fed.collections[station]
    assert job.round is not None
    signed = advert_bytes(
        train_id=job.train_id,
        round_number=job.round.number,
        participant=participant,
        c_public=round_keys.encryption_public,
        s_public=mask_keys.encryption_public,
        num_examples=20,
    )
    key = signer or fed.stations[station].keys.signing
    return {
        "participant": participant,
        "c_public": round_keys.encryption_public,
        "s_public": mask_keys.encryption_public,
        "num_examples": 20,
        "signature": sign_bytes(key, signed),
    }


def test_secure_aggregation_routes_check_signatures_and_keep_shares_for_their_recipient(
    federation: Federation,
) -> None:
    _submit(federation, secagg=True, min_stations=2, compression="none")
    jobs = {name: _poll(federation, name) for name in federation.stations}
    a, b = STATION, OTHER_STATION
    path = {name: f"/stations/me/jobs/{jobs[name].job_id}/secagg" for name in jobs}
    headers = {name: federation.stations[name].headers for name in jobs}

    # keys: the roster waits; a forged or foreign advert is refused
    assert federation.client.get(f"{path[a]}/roster", headers=headers[a]).status_code == 204
    forged = _advert(federation, a, jobs[a], signer=federation.stations[b].keys.signing)
    assert federation.client.put(f"{path[a]}/keys", json=forged, headers=headers[a]).status_code == 403
    foreign = _advert(federation, b, jobs[b])
    assert federation.client.put(f"{path[a]}/keys", json=foreign, headers=headers[a]).status_code == 403
    assert federation.client.get(f"{path[b]}/roster", headers=headers[a]).status_code == 403  # not a's job
    for name in jobs:
        advert = _advert(federation, name, jobs[name])
        assert federation.client.put(f"{path[name]}/keys", json=advert, headers=headers[name]).status_code == 200
        assert federation.client.put(f"{path[name]}/keys", json=advert, headers=headers[name]).status_code == 200
    roster = federation.client.get(f"{path[a]}/roster", headers=headers[a])
    assert roster.status_code == 200, roster.text
    assert [m["advert"]["participant"] for m in roster.json()["members"]] == sorted(federation.collections.values())
    assert roster.json()["threshold"] == 2

    # shares: each station reads only the shares addressed to it
    for name, other in ((a, b), (b, a)):
        box = {
            "sender": federation.collections[name],
            "recipient": federation.collections[other],
            "nonce": f"nonce-{name}",
            "ciphertext": f"for-{other}",
        }
        answer = federation.client.put(f"{path[name]}/shares", json={"shares": [box]}, headers=headers[name])
        assert answer.status_code == 200, answer.text
    shares = federation.client.get(f"{path[a]}/shares", headers=headers[a]).json()
    assert [s["ciphertext"] for s in shares["shares"]] == [f"for-{a}"]
    assert shares["total_examples"] == 40


def test_dp_sgd_at_the_stations_goes_in_the_round_config_and_its_largest_epsilon_in_the_provenance(
    federation: Federation,
) -> None:
    train = _submit(federation, rounds=2, min_stations=2, dp_sgd_noise_multiplier=1.1, dp_sgd_clip=0.5, dp_delta=1e-6)
    spent = {1: {STATION: 0.4, OTHER_STATION: 0.6}, 2: {STATION: 0.9, OTHER_STATION: 0.8}}
    for number in (1, 2):
        jobs = {name: _poll(federation, name) for name in federation.stations}
        config = jobs[STATION].round.config if jobs[STATION].round else {}
        assert config["dp_sgd_noise_multiplier"] == 1.1 and config["dp_sgd_clip"] == 0.5
        assert config["dp_delta"] == 1e-6 and "dp_clip_norm" not in config
        for name, job in jobs.items():
            metrics = {"dp_sgd_epsilon": spent[number][name], "dp_sgd_sampling_rate": 0.05 if name == STATION else 0.1}
            assert _deliver(federation, name, job, float(number), 10, metrics=metrics).status_code == 202

    run = _rounds(federation, train["id"])
    assert run["status"] == "finished", run
    model = federation.client.get(f"/models/{run['model_id']}", headers=federation.researcher.headers).json()
    dp = model["provenance"]["dp"]
    assert dp["mechanism"] == "DP-SGD at each station (local DP on each station's data)"
    assert dp["epsilon"] == 0.9  # the largest ε a station spent by the last round
    assert sorted(dp["stations"].values()) == [0.8, 0.9]
    assert dp["delta"] == 1e-6 and dp["noise_multiplier"] == 1.1 and dp["clip_norm"] == 0.5
    assert dp["sampling_rate"] == 0.1 and dp["epochs"] == 1 and dp["rounds"] == 2


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            {"dp_clip_norm": 1.0, "dp_noise_multiplier": 1.0},
            "choose one kind of differential privacy: DP-SGD at each station (dp_sgd_noise_multiplier) or the hub's "
            "noise at aggregation (dp_clip_norm and dp_noise_multiplier), not both",
        ),
        ({"strategy": "fedbn"}, "DP-SGD (dp_sgd_noise_multiplier) cannot train batch norm"),
    ],
)
def test_dp_sgd_is_refused_with_the_hubs_dp_and_with_fedbn(
    federation: Federation, plan: dict[str, Any], message: str
) -> None:
    answer = federation.client.post(
        "/trains",
        json=_manifest_for(federation, dp_sgd_noise_multiplier=1.0, **plan),
        headers=federation.researcher.headers,
    )

    assert answer.status_code == 400
    assert message in answer.json()["detail"]


def test_dp_sgd_goes_with_secure_aggregation(federation: Federation) -> None:
    train = _submit(federation, secagg=True, dp_sgd_noise_multiplier=1.0)
    assert train["id"]
