"""A federated round's job running at one station of a test hub, made through the real API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from hub_factories import STATION, EnrolledStation, HubFactory, Researcher

from protocol import FederatedPlan, Job, Role, TrainKind, TrainManifest, sign_manifest


@dataclass(frozen=True)
class RunningRound:
    """The station, the researcher and the delivered (running) job of round 1."""

    station: EnrolledStation
    researcher: Researcher
    job: Job


def running_round(client: TestClient, *, station_name: str = STATION) -> RunningRound:
    """Enrol a station, grant its collection, submit a one-station FedAvg train and deliver round 1's job."""
    hub = HubFactory(client)
    admin = hub.create_user("admin", Role.ADMIN)
    station = hub.enrol_station(admin, station_name)
    collection = hub.publish(station)
    researcher = hub.create_researcher("rosa")
    project_id = hub.create_project(researcher)
    steward = hub.create_user(f"steward-{station_name}", Role.STEWARD, station=station_name)
    hub.grant(researcher, project_id, collection, steward)
    manifest = TrainManifest(
        name="fed-large",
        kind=TrainKind.FEDERATED,
        entrypoint="main.py",
        bundle_hash=hub.upload_bundle(researcher),
        outputs=({"name": "update.safetensors", "type": "safetensors"},),  # type: ignore[arg-type]
        federated=FederatedPlan(rounds=1, min_stations=1),
        project_id=project_id,
        collections=(collection,),
        researcher=researcher.username,
        signing_public_key=researcher.keys.signing_public,
        encryption_public_key=researcher.keys.encryption_public,
        created_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    hub.submit(sign_manifest(manifest, researcher.keys.signing), researcher)
    answer = client.get("/stations/me/jobs/next", params={"wait": 0}, headers=station.headers)
    assert answer.status_code == 200, answer.text
    return RunningRound(station=station, researcher=researcher, job=Job.model_validate(answer.json()))
