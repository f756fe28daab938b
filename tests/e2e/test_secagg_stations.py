"""Secure aggregation end to end: a hub on loopback HTTP and four real station agents (sandbox executor).

One station crashes after it shared its keys (before its masked update); the round still completes
with the other three, the hub rebuilds the dropped station's mask key from the survivors' shares,
and the registered model is the plain FedAvg of the three survivors' updates. What the hub stores
of any single station's update is unrelated to that update.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from safetensors.numpy import load as load_numpy
from sqlmodel import Session, select

from bench._serve import serve_on_loopback
from hub import Settings, create_app, crud
from hub.core import security
from hub.models import FLUpdate, UserCreate
from protocol import (
    FederatedPlan,
    OutputSpec,
    Role,
    TrainKind,
    TrainManifest,
    content_address,
    dequantise,
    generate_key_pair,
    scale_for,
    sign_manifest,
)
from station.agent import StationAgent, enrol, hub_client, publish_collections
from station.config import StationSettings
from station.indexer import DicomIndex, index_collection
from station.state import CollectionRecord, StationState
from station.synthetic import write_synthetic_collection
from trainkit.compression import read_safetensors

pytestmark = pytest.mark.slow

STATIONS = ("north", "east", "south", "west")
DROPPED = "west"
COLLECTION = "ct"
PASSWORD = "secure aggregation test"

TRAIN = """
import hashlib, json, os
import numpy as np
from safetensors.numpy import save_file

job = json.load(open(os.environ["TRAINYARD_JOB"]))
examples = sum(len(files) for _, _, files in os.walk(os.environ["TRAINYARD_DATA"]))
rng = np.random.default_rng(int(hashlib.sha256(job["station"].encode()).hexdigest()[:8], 16))
out = os.environ["TRAINYARD_OUT"]
weights = {"fc.weight": rng.normal(size=(40, 25)).astype(np.float32), "fc.bias": rng.normal(size=25).astype(np.float32)}
weights["bn.running_mean"] = np.full(25, examples, dtype=np.float32)
save_file(weights, os.path.join(out, "update.safetensors"), metadata={"compression": "none"})
json.dump({"num_examples": examples, "metrics": {"val_accuracy": 0.5}}, open(os.path.join(out, "update.json"), "w"))
"""


def plain_update(station: str) -> dict[str, np.ndarray]:
    """What TRAIN writes at ``station`` (the test knows it; the hub must not)."""
    rng = np.random.default_rng(int(hashlib.sha256(station.encode()).hexdigest()[:8], 16))
    return {
        "fc.weight": rng.normal(size=(40, 25)).astype(np.float32),
        "fc.bias": rng.normal(size=25).astype(np.float32),
    }


class StationCrash(BaseException):
    """Stops a station agent's thread as a crash would (nothing in the agent catches it)."""


@dataclass
class Federation:
    url: str
    app: Any
    researcher: httpx.Client
    keys: Any
    project_id: str
    collections: dict[str, str]
    examples: dict[str, int]
    bundle: str
    threads: list[threading.Thread]
    crashed: threading.Event
    settings: dict[str, StationSettings]
    stop: threading.Event

    def start(self, name: str, *, crash_on: tuple[str, ...] = ()) -> threading.Event:
        """Start station ``name``'s agent (again); it crashes at its first request to a path containing ``crash_on``."""
        crashed = threading.Event()
        state = StationState(self.settings[name].state_dir)
        client = hub_client(state.read_identity(), state.load_keys(), read_timeout_s=30)
        if crash_on:

            def crash(request: httpx.Request) -> None:
                if any(part in request.url.path for part in crash_on):
                    raise StationCrash

            client.event_hooks["request"].append(crash)
        agent = StationAgent(self.settings[name], client=client)
        thread = threading.Thread(target=_run_agent, args=(agent, self.stop, crashed), daemon=True)
        thread.start()
        self.threads.append(thread)
        return crashed


def _bundle() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        data = TRAIN.encode()
        info = tarfile.TarInfo("main.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _login(url: str, username: str) -> httpx.Client:
    answer = httpx.post(f"{url}/auth/login", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {answer.json()['access_token']}"}, timeout=60)


def _station(tmp: Path, url: str, admin: httpx.Client, name: str, index: int) -> tuple[StationSettings, int]:
    settings = StationSettings(
        state_dir=tmp / name, poll_wait_s=1, executor="sandbox", require_grants=False, heartbeat_s=5
    )
    state = StationState(settings.state_dir)
    state.ensure()
    token = admin.post("/stations/enrolment-tokens", json={"station": name}).json()["token"]
    enrol(state=state, hub_url=url, name=name, token=token)
    data = tmp / "data" / name
    write_synthetic_collection(data, site_index=index, seed=3, patients=6, slices=2)
    with DicomIndex(state.index_file) as dicom_index:
        index_collection(data, dicom_index, collection=COLLECTION, secret=state.load_or_create_pseudonym_key())
    state.write_collection(
        CollectionRecord(
            slug=COLLECTION, title="CT", description="Synthetic CT", root=str(data), indexed_at=datetime.now(UTC)
        )
    )
    publish_collections(settings)
    return settings, sum(1 for path in data.rglob("*") if path.is_file())


def _run_agent(agent: StationAgent, stop: threading.Event, crashed: threading.Event) -> None:
    """Run an agent until ``stop``; a :class:`StationCrash` ends it as a crash would."""
    try:
        agent.run(stop_event=stop)
    except StationCrash:
        crashed.set()


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    tmp = tmp_path_factory.mktemp("secagg")
    mp = pytest.MonkeyPatch()
    mp.setattr(security, "_N", 2**8)
    app = create_app(Settings(state_dir=tmp / "hub", base_iri="http://hub.test", fl_tick_s=0.5, long_poll_max_s=2))
    with serve_on_loopback(app) as url:
        with Session(app.state.engine) as session:
            for username, role, station in [("admin", Role.ADMIN, None), ("rosa", Role.RESEARCHER, None)] + [
                (f"steward-{name}", Role.STEWARD, name) for name in STATIONS
            ]:
                crud.create_user(
                    session=session,
                    user_create=UserCreate(username=username, password=PASSWORD, role=role, station=station),
                )
        admin, researcher = _login(url, "admin"), _login(url, "rosa")
        keys = generate_key_pair()
        body = {"signing_public_key": keys.signing_public, "encryption_public_key": keys.encryption_public}
        assert researcher.put("/users/me/keys", json=body).status_code == 200
        project = researcher.post(
            "/projects",
            json={"title": "Masked", "purpose": "Secure aggregation test", "data_use": ["DUO:0000006", "DUO:0000031"]},
        )
        project_id = project.json()["id"]
        collections, examples, all_settings = {}, {}, {}
        for index, name in enumerate(STATIONS):
            all_settings[name], examples[name] = _station(tmp, url, admin, name, index)
            collections[name] = f"{name}/{COLLECTION}"
            request = researcher.post(
                "/access-requests", json={"project_id": project_id, "collections": [collections[name]]}
            )
            decision = request.json()["decisions"][0]
            steward = _login(url, f"steward-{name}")
            approved = steward.post(
                f"/access-requests/{request.json()['id']}/decisions/{decision['id']}/approve", json={"comment": "ok"}
            )
            assert approved.status_code == 200, approved.text
        bundle = _bundle()
        address = content_address(bundle)
        assert researcher.put(f"/artifacts/{address}", content=bundle).status_code in (200, 201)
        fed = Federation(
            url, app, researcher, keys, project_id, collections, examples, address, [], threading.Event(),
            all_settings, threading.Event(),
        )  # fmt: skip
        for name in STATIONS:  # the dropped one crashes once its keys and shares are out, before the masked update
            crashed = fed.start(name, crash_on=("/secagg/masked", "/update/") if name == DROPPED else ())
            if name == DROPPED:
                fed.crashed = crashed
        yield fed
        fed.stop.set()
        for thread in fed.threads:
            thread.join(timeout=10)
    mp.undo()


def _submit(fed: Federation, **plan: Any) -> dict[str, Any]:
    manifest = TrainManifest(
        name="masked",
        kind=TrainKind.FEDERATED,
        entrypoint="main.py",
        bundle_hash=fed.bundle,
        outputs=(
            OutputSpec(name="update.safetensors", type="safetensors"),
            OutputSpec(name="update.json", type="json"),
        ),
        federated=FederatedPlan(**plan),
        project_id=fed.project_id,
        collections=tuple(fed.collections.values()),
        researcher="rosa",
        signing_public_key=fed.keys.signing_public,
        encryption_public_key=fed.keys.encryption_public,
        created_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    answer = fed.researcher.post("/trains", json=sign_manifest(manifest, fed.keys.signing).model_dump(mode="json"))
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _wait(fed: Federation, train_id: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        run: dict[str, Any] = fed.researcher.get(f"/trains/{train_id}/rounds").json()
        if run["status"] != "running":
            return run
        assert time.monotonic() < deadline, f"the run did not finish: {run}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def masked_run(federation: Federation) -> dict[str, Any]:
    train = _submit(
        federation,
        rounds=1,
        min_stations=3,
        compression="none",
        secagg=True,
        secagg_phase_s=15,
        round_deadline_s=240,
    )
    run = _wait(federation, train["id"])
    run["train_id"] = train["id"]
    return run


def test_the_round_completes_without_the_station_that_dropped_after_sharing(
    federation: Federation, masked_run: dict[str, Any]
) -> None:
    assert federation.crashed.is_set(), "the dropped station did not get as far as its masked update"
    assert masked_run["status"] == "finished", masked_run.get("reason")
    (row,) = masked_run["rounds"]
    survivors = {federation.collections[name] for name in STATIONS if name != DROPPED}
    assert set(row["contributed"]) == survivors
    assert "secure aggregation" in row["dropped"][federation.collections[DROPPED]]
    assert row["metrics"]["stations"] == 3.0


def test_the_model_is_the_plain_fedavg_of_the_survivors(federation: Federation, masked_run: dict[str, Any]) -> None:
    weights = federation.researcher.get(f"/models/{masked_run['model_id']}/weights")
    assert weights.status_code == 200
    actual = load_numpy(weights.content)
    survivors = [name for name in STATIONS if name != DROPPED]
    total = sum(federation.examples[name] for name in survivors)

    for key in ("fc.weight", "fc.bias"):
        expected = sum(plain_update(name)[key] * federation.examples[name] for name in survivors) / total
        assert np.allclose(actual[key], expected, atol=1e-6), key


def test_the_hub_holds_no_single_stations_update(federation: Federation, masked_run: dict[str, Any]) -> None:
    with Session(federation.app.state.engine) as session:
        rows = list(session.exec(select(FLUpdate).where(FLUpdate.train_id == masked_run["train_id"])))
    assert len(rows) == 3
    for row in rows:
        stored = read_safetensors(federation.app.state.artifacts.read_bytes(row.address))[0]
        station = row.collection.split("/")[0]
        plain = plain_update(station)
        assert all(value.dtype == np.uint32 for value in stored.values())
        alone = dequantise(stored["fc.weight"].reshape(-1), scale=scale_for(64.0, len(STATIONS)))
        correlation = np.corrcoef(alone, plain["fc.weight"].reshape(-1))[0, 1]
        assert abs(correlation) < 0.15, (station, correlation)
        # decoded alone it is noise spread over the whole fixed-point range (±2^31 / scale), not the update
        assert np.abs(alone).mean() > 20 * np.abs(plain["fc.weight"]).mean()


def test_a_station_restarted_mid_round_resumes_the_protocol(federation: Federation, masked_run: dict[str, Any]) -> None:
    crashed = federation.start(DROPPED, crash_on=("/secagg/masked",))  # dies after uploading its masked update
    train = _submit(
        federation, rounds=2, min_stations=3, compression="none", secagg=True, secagg_phase_s=30, round_deadline_s=240
    )
    assert crashed.wait(120), "the station did not get as far as its masked update"

    federation.start(DROPPED)  # the same state folder: it resumes the job with the round's kept secrets
    run = _wait(federation, train["id"])

    assert run["status"] == "finished", run.get("reason")
    assert [set(row["contributed"]) for row in run["rounds"]] == [set(federation.collections.values())] * 2
    # round 2 masks each change from round 1's model and the hub adds it back: the same mean again
    actual = load_numpy(federation.researcher.get(f"/models/{run['model_id']}/weights").content)
    total = sum(federation.examples.values())
    expected = sum(plain_update(name)["fc.bias"] * federation.examples[name] for name in STATIONS) / total
    assert np.allclose(actual["fc.bias"], expected, atol=1e-6)


def test_fedbn_keeps_batch_norm_out_of_the_masked_mean(federation: Federation, masked_run: dict[str, Any]) -> None:
    train = _submit(federation, strategy="fedbn", rounds=1, compression="none", secagg=True, round_deadline_s=240)
    run = _wait(federation, train["id"])

    assert run["status"] == "finished", run.get("reason")
    actual = load_numpy(federation.researcher.get(f"/models/{run['model_id']}/weights").content)
    assert set(actual) == {"fc.weight", "fc.bias"}  # the stations' batch norm never reaches the hub's model
    total = sum(federation.examples.values())
    expected = sum(plain_update(name)["fc.bias"] * federation.examples[name] for name in STATIONS) / total
    assert np.allclose(actual["fc.bias"], expected, atol=1e-6)
