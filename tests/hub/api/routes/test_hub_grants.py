"""/grants: suspend ↔ resume, revoke and expiry stop the project's jobs at that station."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, Headers, HubFactory, Researcher, make_manifest

from hub import Settings
from protocol import Grant, Role, SignedManifest, generate_key_pair, sign_grant


def _grant(client: TestClient, headers: Headers) -> dict[str, Any]:
    (grant,) = client.get("/grants", headers=headers).json()["data"]
    return dict(grant)


def _move(client: TestClient, grant: dict[str, Any], verb: str, headers: Headers, comment: str | None = None) -> Any:
    body = {} if comment is None else {"comment": comment}
    return client.post(f"/grants/{grant['id']}/{verb}", json=body, headers=headers)


def _train_jobs(client: TestClient, train: dict[str, Any], researcher: Researcher) -> list[str]:
    answer = client.get(f"/trains/{train['id']}", headers=researcher.headers)
    return [job["status"] for job in answer.json()["jobs"]]


def test_suspend_cancels_queued_jobs_and_refuses_new_trains_until_resumed(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    steward_headers: Headers,
    signed_manifest: SignedManifest,
    granted_project: str,
    collection_id: str,
) -> None:
    train = hub.submit(signed_manifest, researcher)
    grant = _grant(client, steward_headers)

    without_reason = _move(client, grant, "suspend", steward_headers)
    suspended = _move(client, grant, "suspend", steward_headers, "ethics renewal pending")

    assert without_reason.status_code == 400
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert _train_jobs(client, train, researcher) == ["cancelled"]
    bundle = hub.upload_bundle(researcher)
    manifest = make_manifest(researcher, project_id=granted_project, collections=(collection_id,), bundle_hash=bundle)
    refused = client.post("/trains", json=manifest.model_dump(mode="json"), headers=researcher.headers)
    assert refused.status_code == 403
    assert "suspended" in refused.json()["detail"]

    assert _move(client, grant, "resume", steward_headers).json()["status"] == "active"
    again = make_manifest(researcher, project_id=granted_project, collections=(collection_id,), bundle_hash=bundle)
    assert client.post("/trains", json=again.model_dump(mode="json"), headers=researcher.headers).status_code == 201


def test_revoke_stops_a_running_job(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    steward_headers: Headers,
    signed_manifest: SignedManifest,
) -> None:
    hub.submit(signed_manifest, researcher)
    job = client.get("/stations/me/jobs/next", params={"wait": 0}, headers=station.headers).json()
    beat = f"/stations/me/jobs/{job['job_id']}/heartbeat"
    assert client.post(beat, headers=station.headers).status_code == 200
    grant = _grant(client, steward_headers)

    revoked = _move(client, grant, "revoke", steward_headers, "consent withdrawn by the cohort")

    assert revoked.json()["status"] == "revoked"
    stopped = client.post(beat, headers=station.headers)
    assert stopped.status_code == 409
    assert "cancelled" in stopped.json()["detail"]
    assert _move(client, grant, "resume", steward_headers).status_code == 409
    assert _move(client, grant, "revoke", steward_headers, "again").status_code == 409


def test_grant_moves_are_the_station_stewards_only(
    client: TestClient, hub: HubFactory, researcher: Researcher, steward_headers: Headers, granted_project: str
) -> None:
    grant = _grant(client, steward_headers)
    steward_b = hub.create_user("steward-b", Role.STEWARD, station="site-b")

    other_station = _move(client, grant, "suspend", steward_b, "mine now")
    researcher_tries = _move(client, grant, "suspend", researcher.headers, "pause")

    assert other_station.status_code == 403
    assert "site-a" in other_station.json()["detail"]
    assert researcher_tries.status_code == 403
    assert client.get("/grants", headers=steward_b).json()["count"] == 0
    assert _move(client, {"id": "nope"}, "suspend", steward_headers, "x").status_code == 404


def test_grants_are_visible_to_project_members_only(
    client: TestClient, hub: HubFactory, researcher: Researcher, steward_headers: Headers, granted_project: str
) -> None:
    grant = _grant(client, researcher.headers)
    mallory = hub.create_researcher("mallory")

    assert client.get(f"/grants/{grant['id']}", headers=researcher.headers).status_code == 200
    assert client.get(f"/grants/{grant['id']}", headers=mallory.headers).status_code == 404
    assert client.get("/grants", headers=mallory.headers).json()["count"] == 0
    assert client.get("/grants", params={"state": "revoked"}, headers=researcher.headers).json()["count"] == 0


def test_grant_moves_are_events_of_the_request(
    client: TestClient, researcher: Researcher, steward_headers: Headers, granted_project: str
) -> None:
    grant = _grant(client, steward_headers)
    _move(client, grant, "suspend", steward_headers, "audit visit")
    _move(client, grant, "resume", steward_headers)

    history = client.get(f"/access-requests/{grant['access_request_id']}/events", headers=researcher.headers).json()

    moves = [(event["kind"], event["action"], event["comment"]) for event in history["data"][-2:]]
    assert moves == [("grant", "suspend", "audit visit"), ("grant", "resume", None)]


def test_grant_expires_at_its_end_and_cancels_jobs(
    client: TestClient,
    hub: HubFactory,
    settings: Settings,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    keys = generate_key_pair()
    body = {"signing_public_key": keys.signing_public, "encryption_public_key": keys.encryption_public}
    assert client.put("/users/me/keys", json=body, headers=steward_headers).status_code == 200
    request = hub.request_access(researcher, project_id, [collection_id])
    decision = request["decisions"][0]  # type: ignore[index]
    now = datetime.now(UTC)
    grant = Grant(
        grant_id=decision["id"],
        project_id=project_id,
        station=decision["station"],
        collection=decision["collection"],
        researcher="rosa",
        researcher_key_id=researcher.keys.key_id,
        steward="steward-a",
        steward_key_id=keys.key_id,
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(seconds=2),
        issued_at=now,
    )
    path = f"/access-requests/{request['id']}/decisions/{decision['id']}/approve"
    signed = sign_grant(grant, keys.signing).model_dump(mode="json")
    assert client.post(path, json={"signed_grant": signed}, headers=steward_headers).status_code == 200
    bundle = hub.upload_bundle(researcher)
    train = hub.submit(
        make_manifest(researcher, project_id=project_id, collections=(collection_id,), bundle_hash=bundle), researcher
    )

    time.sleep(2.2)
    (expired,) = client.get("/grants", headers=researcher.headers).json()["data"]

    assert expired["status"] == "expired"
    assert _train_jobs(client, train, researcher) == ["cancelled"]
