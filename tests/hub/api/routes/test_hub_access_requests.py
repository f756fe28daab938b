"""/projects and /access-requests: requests, steward decisions, grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, Headers, HubFactory, Researcher, make_manifest

from protocol import Grant, KeyPair, Role, generate_key_pair, sign_grant


def _decision_path(request: dict[str, Any], verb: str) -> str:
    return f"/access-requests/{request['id']}/decisions/{request['decisions'][0]['id']}/{verb}"


def test_create_project(client: TestClient, researcher: Researcher) -> None:
    answer = client.post("/projects", json={"title": "T", "purpose": "P"}, headers=researcher.headers)

    assert answer.status_code == 201
    assert answer.json()["owner"] == "rosa"


def test_create_project_not_researcher(client: TestClient, steward_headers: Headers) -> None:
    answer = client.post("/projects", json={"title": "T", "purpose": "P"}, headers=steward_headers)

    assert answer.status_code == 403


def test_read_projects_lists_own(client: TestClient, hub: HubFactory, researcher: Researcher, project_id: str) -> None:
    other = hub.create_researcher("mallory")
    hub.create_project(other)

    answer = client.get("/projects", headers=researcher.headers)

    assert answer.json()["count"] == 1
    assert answer.json()["data"][0]["id"] == project_id


def test_create_access_request_pending_decisions(
    client: TestClient, researcher: Researcher, project_id: str, collection_id: str
) -> None:
    body = {"project_id": project_id, "collections": [collection_id, collection_id]}

    answer = client.post("/access-requests", json=body, headers=researcher.headers)

    assert answer.status_code == 201
    request = answer.json()
    assert request["requester"] == "rosa"
    (decision,) = request["decisions"]
    assert decision["station"] == "site-a"
    assert decision["collection"] == "chest-ct"
    assert decision["status"] == "pending"
    assert decision["decided_by"] is None


def test_create_access_request_unknown_collection(client: TestClient, researcher: Researcher, project_id: str) -> None:
    body = {"project_id": project_id, "collections": ["site-a/nope"]}

    answer = client.post("/access-requests", json=body, headers=researcher.headers)

    assert answer.status_code == 404
    assert "site-a/nope" in answer.json()["detail"]


def test_create_access_request_not_project_owner(
    client: TestClient, hub: HubFactory, project_id: str, collection_id: str
) -> None:
    mallory = hub.create_researcher("mallory")
    body = {"project_id": project_id, "collections": [collection_id]}

    answer = client.post("/access-requests", json=body, headers=mallory.headers)

    assert answer.status_code == 403


def test_create_access_request_unknown_project(client: TestClient, researcher: Researcher, collection_id: str) -> None:
    body = {"project_id": "nope", "collections": [collection_id]}

    assert client.post("/access-requests", json=body, headers=researcher.headers).status_code == 404


def test_approve_decision_by_station_steward(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    request = hub.request_access(researcher, project_id, [collection_id])

    answer = client.post(_decision_path(request, "approve"), json={"comment": "fine"}, headers=steward_headers)

    assert answer.status_code == 200
    decision = answer.json()["decisions"][0]
    assert decision["status"] == "approved"
    assert decision["decided_by"] == "steward-a"
    assert decision["comment"] == "fine"
    assert decision["decided_at"] is not None


def test_approve_decision_without_body(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    request = hub.request_access(researcher, project_id, [collection_id])

    answer = client.post(_decision_path(request, "approve"), headers=steward_headers)

    assert answer.status_code == 200
    assert answer.json()["decisions"][0]["comment"] is None


def test_decline_decision_by_station_steward(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    request = hub.request_access(researcher, project_id, [collection_id])

    answer = client.post(_decision_path(request, "decline"), json={"comment": "no"}, headers=steward_headers)

    assert answer.status_code == 200
    assert answer.json()["decisions"][0]["status"] == "declined"


def test_approve_decision_steward_of_other_station(
    client: TestClient, hub: HubFactory, researcher: Researcher, project_id: str, collection_id: str
) -> None:
    request = hub.request_access(researcher, project_id, [collection_id])
    steward_b = hub.create_user("steward-b", Role.STEWARD, station="site-b")

    answer = client.post(_decision_path(request, "approve"), headers=steward_b)

    assert answer.status_code == 403
    assert "site-a" in answer.json()["detail"]


def test_approve_decision_as_researcher(
    client: TestClient, hub: HubFactory, researcher: Researcher, project_id: str, collection_id: str
) -> None:
    request = hub.request_access(researcher, project_id, [collection_id])

    answer = client.post(_decision_path(request, "approve"), headers=researcher.headers)

    assert answer.status_code == 403


def test_approve_decision_twice(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    request = hub.request_access(researcher, project_id, [collection_id])
    assert client.post(_decision_path(request, "approve"), headers=steward_headers).status_code == 200

    again = client.post(
        _decision_path(request, "decline"), json={"comment": "changed my mind"}, headers=steward_headers
    )

    assert again.status_code == 409
    assert "decision that is approved" in again.json()["detail"]


def test_approve_decision_unknown(client: TestClient, steward_headers: Headers) -> None:
    answer = client.post("/access-requests/nope/decisions/nope/approve", headers=steward_headers)

    assert answer.status_code == 404


def test_read_access_requests_by_role(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
    admin_headers: Headers,
) -> None:
    hub.request_access(researcher, project_id, [collection_id])
    steward_b = hub.create_user("steward-b", Role.STEWARD, station="site-b")
    mallory = hub.create_researcher("mallory")

    def count(headers: Headers) -> int:
        return int(client.get("/access-requests", headers=headers).json()["count"])

    assert count(researcher.headers) == 1
    assert count(steward_headers) == 1
    assert count(admin_headers) == 1
    assert count(steward_b) == 0
    assert count(mallory.headers) == 0


# -- steward-signed grants -----------------------------------------------------------------


def _grant_for(
    request: dict[str, Any], steward_keys: KeyPair, researcher: Researcher, **overrides: object
) -> dict[str, Any]:
    decision = request["decisions"][0]
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "grant_id": decision["id"],
        "project_id": request["project_id"],
        "station": decision["station"],
        "collection": decision["collection"],
        "researcher": researcher.username,
        "researcher_key_id": researcher.keys.key_id,
        "steward": "steward-a",
        "steward_key_id": steward_keys.key_id,
        "not_before": now - timedelta(minutes=1),
        "not_after": now + timedelta(days=30),
        "issued_at": now,
        **overrides,
    }
    return sign_grant(Grant.model_validate(fields), steward_keys.signing).model_dump(mode="json")


def _steward_with_keys(client: TestClient, steward_headers: Headers) -> KeyPair:
    keys = generate_key_pair()
    body = {"signing_public_key": keys.signing_public, "encryption_public_key": keys.encryption_public}
    assert client.put("/users/me/keys", json=body, headers=steward_headers).status_code == 200
    return keys


def test_approve_with_signed_grant_delivers_it_with_jobs(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
    station: EnrolledStation,
) -> None:
    keys = _steward_with_keys(client, steward_headers)
    request = hub.request_access(researcher, project_id, [collection_id])
    grant = _grant_for(request, keys, researcher)

    answer = client.post(_decision_path(request, "approve"), json={"signed_grant": grant}, headers=steward_headers)
    bundle = hub.upload_bundle(researcher)
    hub.submit(
        make_manifest(researcher, project_id=project_id, collections=(collection_id,), bundle_hash=bundle), researcher
    )
    job = client.get("/stations/me/jobs/next", headers=station.headers).json()

    assert answer.status_code == 200
    assert answer.json()["decisions"][0]["signed_grant"] == grant
    assert job["grants"] == [grant]


def test_grant_signed_by_another_key_is_refused(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    keys = _steward_with_keys(client, steward_headers)
    request = hub.request_access(researcher, project_id, [collection_id])
    forged = _grant_for(request, generate_key_pair(), researcher, steward_key_id=keys.key_id)

    answer = client.post(_decision_path(request, "approve"), json={"signed_grant": forged}, headers=steward_headers)

    assert answer.status_code == 403
    assert "not signed by you" in answer.json()["detail"]
    assert (
        client.get("/access-requests", headers=steward_headers).json()["data"][0]["decisions"][0]["status"] == "pending"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("project_id", "another-project"), ("collection", "brain-mr"), ("researcher_key_id", "0" * 16)],
)
def test_grant_for_something_else_is_refused(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
    field: str,
    value: str,
) -> None:
    keys = _steward_with_keys(client, steward_headers)
    request = hub.request_access(researcher, project_id, [collection_id])
    grant = _grant_for(request, keys, researcher, **{field: value})

    answer = client.post(_decision_path(request, "approve"), json={"signed_grant": grant}, headers=steward_headers)

    assert answer.status_code == 400
    assert field in answer.json()["detail"]


def test_signed_grant_needs_registered_steward_keys(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    request = hub.request_access(researcher, project_id, [collection_id])
    grant = _grant_for(request, generate_key_pair(), researcher)

    answer = client.post(_decision_path(request, "approve"), json={"signed_grant": grant}, headers=steward_headers)

    assert answer.status_code == 400
    assert "register your public keys" in answer.json()["detail"]
