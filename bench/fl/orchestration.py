"""The hub's orchestration cost per station per round, for 4 to 64 stations.

A real hub app serves on loopback (uvicorn, SQLite, the content-addressed artifact store). N
simulated stations are enrolled, each publishes a collection and the researcher's project holds
a grant on every one; a FedAvg train over all N collections then runs ``--rounds`` rounds. A
simulated station does no training: it long-polls its job, PUTs a fixed small update (the
digits MLP's size, about 5,000 float16 numbers) and posts its signed envelope, so the round's
wall time is the hub's work plus HTTP: handing out N jobs, taking N uploads and envelopes,
aggregating, opening the next round. Stations answer one after the other (the hub is measured,
not the network), so the figure is the hub's time per station per round.

    .venv/bin/python -m bench.fl.orchestration --stations 4 16 64

merges ``orchestration_ms_per_station_round`` (per N) into ``bench/results/fl.json``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import torch
from safetensors.torch import save as save_safetensors

from bench._serve import serve_on_loopback
from hub import Settings, create_app
from protocol import (
    FederatedPlan,
    Job,
    JobStatus,
    ModelUpdateRef,
    ResultEnvelope,
    Role,
    TrainKind,
    TrainManifest,
    content_address,
    seal,
    sign_envelope,
    sign_manifest,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "hub"))
from hub_factories import EnrolledStation, HubFactory, Researcher, sign_station_requests

RESULTS = Path(__file__).resolve().parents[1] / "results" / "fl.json"
UPDATE_NUMBERS = 5_000


def _update(value: float) -> bytes:
    tensor = torch.full((UPDATE_NUMBERS,), value, dtype=torch.float16)
    return save_safetensors({"w": tensor}, metadata={"compression": "fp16"})


def _manifest(researcher: Researcher, *, project_id: str, collections: list[str], bundle: str, rounds: int) -> Any:
    manifest = TrainManifest(
        name="orchestration-probe",
        kind=TrainKind.FEDERATED,
        entrypoint="main.py",
        bundle_hash=bundle,
        outputs=({"name": "update.safetensors", "type": "safetensors"},),
        federated=FederatedPlan(strategy="fedavg", rounds=rounds, min_stations=1, round_deadline_s=3600),
        project_id=project_id,
        collections=tuple(collections),
        researcher=researcher.username,
        signing_public_key=researcher.keys.signing_public,
        encryption_public_key=researcher.keys.encryption_public,
        created_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    return sign_manifest(manifest, researcher.keys.signing).model_dump(mode="json")


def _answer(client: httpx.Client, station: EnrolledStation, researcher: Researcher, value: float) -> None:
    """One simulated station's turn: poll, upload the update, post the envelope."""
    polled = client.get("/stations/me/jobs/next", params={"wait": 0}, headers=station.headers)
    if polled.status_code != 200:
        raise RuntimeError(f"{station.name}: no job ({polled.status_code} {polled.text[:200]})")
    job = Job.model_validate(polled.json())
    data = _update(value)
    address = content_address(data)
    put = client.put(f"/stations/me/jobs/{job.job_id}/update/{address}", content=data, headers=station.headers)
    if put.status_code not in (200, 201):
        raise RuntimeError(f"{station.name}: update refused ({put.status_code} {put.text[:200]})")
    envelope = ResultEnvelope(
        job_id=job.job_id,
        train_id=job.train_id,
        station=station.name,
        status=JobStatus.SUCCEEDED,
        sealed=seal(b"{}", researcher.keys.encryption_public, associated_data=job.job_id),
        update=ModelUpdateRef(address=address, size=len(data), num_examples=100, metrics={"val_accuracy": value}),
        created_at=datetime.now(UTC),
    )
    signed = sign_envelope(envelope, station.keys.signing).model_dump(mode="json")
    posted = client.post(f"/stations/me/jobs/{job.job_id}/result", json=signed, headers=station.headers)
    if posted.status_code not in (200, 202):
        raise RuntimeError(f"{station.name}: envelope refused ({posted.status_code} {posted.text[:200]})")


def measure(stations: int, rounds: int, workdir: Path) -> dict[str, float]:
    """Set up a federation of ``stations`` and time ``rounds`` rounds; return the per-round figures."""
    settings = Settings(state_dir=workdir / "hub", base_iri="http://hub.bench", max_upload_bytes=16 * 1024 * 1024)
    app = create_app(settings)
    with serve_on_loopback(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        client.event_hooks["request"].append(sign_station_requests)
        client.app = app  # type: ignore[attr-defined]  # HubFactory reads the engine from it
        hub = HubFactory(client)
        admin = hub.create_user("admin", Role.ADMIN)
        researcher = hub.create_researcher("rosa")
        project_id = hub.create_project(researcher)
        enrolled, collections = [], []
        for index in range(stations):
            name = f"site-{index:03d}"
            station = hub.enrol_station(admin, name)
            collections.append(hub.publish(station))
            steward = hub.create_user(f"steward-{index:03d}", Role.STEWARD, station=name)
            hub.grant(researcher, project_id, collections[-1], steward)
            enrolled.append(station)
        bundle = hub.upload_bundle(researcher)
        signed = _manifest(researcher, project_id=project_id, collections=collections, bundle=bundle, rounds=rounds)
        submitted = client.post("/trains", json=signed, headers=researcher.headers)
        if submitted.status_code != 201:
            raise RuntimeError(f"the train was refused: {submitted.text[:300]}")
        train_id = submitted.json()["id"]
        times = []
        for number in range(1, rounds + 1):
            started = time.perf_counter()
            for index, station in enumerate(enrolled):
                _answer(client, station, researcher, value=0.01 * (index + number))
            times.append(time.perf_counter() - started)
        run = client.get(f"/trains/{train_id}/rounds", headers=researcher.headers).json()
        if run["status"] != "finished":
            raise RuntimeError(f"the run did not finish: {run['status']} {run.get('reason')}")
    steady = times[1:] or times  # round 1 includes the first requests' warm-up
    return {
        "stations": stations,
        "round_s": statistics.median(steady),
        "ms_per_station_round": 1000 * statistics.median(steady) / stations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for count in args.stations:
        with tempfile.TemporaryDirectory(prefix="trainyard-orch-") as tmp:
            row = measure(count, args.rounds, Path(tmp))
        rows.append(row)
        print(f"{count:3d} stations: round {row['round_s']:.3f} s, {row['ms_per_station_round']:.1f} ms per station")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["orchestration"] = rows
    results["orchestration_ms_per_station_round"] = {str(r["stations"]): r["ms_per_station_round"] for r in rows}
    results["orchestration_command"] = "python -m bench.fl.orchestration --stations " + " ".join(
        str(count) for count in args.stations
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
