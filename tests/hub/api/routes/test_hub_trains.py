"""/trains: accepting signed trains only with keys, bundle and grants in place."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient
from hub_factories import STATION, EnrolledStation, Headers, HubFactory, Researcher, make_manifest

from protocol import Role, SignedManifest, content_address, generate_key_pair


def test_create_train_queues_one_job_per_collection(
    client: TestClient, researcher: Researcher, signed_manifest: SignedManifest
) -> None:
    answer = client.post("/trains", json=signed_manifest.model_dump(mode="json"), headers=researcher.headers)

    assert answer.status_code == 201
    train = answer.json()
    assert train["name"] == "cohort-stats"
    assert train["kind"] == "analysis"
    assert train["project_id"] == signed_manifest.manifest.project_id
    (job,) = train["jobs"]
    assert (job["station"], job["collection"], job["status"]) == (STATION, "chest-ct", "queued")


def test_create_train_two_stations(
    client: TestClient,
    hub: HubFactory,
    admin_headers: Headers,
    researcher: Researcher,
    granted_project: str,
    collection_id: str,
) -> None:
    site_b = hub.enrol_station(admin_headers, "site-b")
    other_id = hub.publish(site_b, "brain-mr")
    steward_b = hub.create_user("steward-b", Role.STEWARD, station="site-b")
    hub.grant(researcher, granted_project, other_id, steward_b)
    signed = make_manifest(
        researcher,
        project_id=granted_project,
        collections=(collection_id, other_id),
        bundle_hash=hub.upload_bundle(researcher),
    )

    train = hub.submit(signed, researcher)

    assert sorted(job["station"] for job in train["jobs"]) == ["site-a", "site-b"]  # type: ignore[attr-defined]


def test_create_train_without_grant(
    client: TestClient, hub: HubFactory, researcher: Researcher, project_id: str, collection_id: str
) -> None:
    signed = make_manifest(
        researcher, project_id=project_id, collections=(collection_id,), bundle_hash=hub.upload_bundle(researcher)
    )

    answer = client.post("/trains", json=signed.model_dump(mode="json"), headers=researcher.headers)

    assert answer.status_code == 403
    assert f"holds no active grant on collection {collection_id!r}" in answer.json()["detail"]


def test_create_train_with_rejected_decision(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    request = hub.request_access(researcher, project_id, [collection_id])
    decision = request["decisions"][0]  # type: ignore[index]
    path = f"/access-requests/{request['id']}/decisions/{decision['id']}/decline"
    assert client.post(path, json={"comment": "no ethics approval"}, headers=steward_headers).status_code == 200
    signed = make_manifest(
        researcher, project_id=project_id, collections=(collection_id,), bundle_hash=hub.upload_bundle(researcher)
    )

    answer = client.post("/trains", json=signed.model_dump(mode="json"), headers=researcher.headers)

    assert answer.status_code == 403


def test_create_train_signed_by_other_key(
    client: TestClient, hub: HubFactory, researcher: Researcher, granted_project: str, collection_id: str
) -> None:
    signed = make_manifest(
        researcher,
        project_id=granted_project,
        collections=(collection_id,),
        bundle_hash=hub.upload_bundle(researcher),
        keys=generate_key_pair(),
    )

    answer = client.post("/trains", json=signed.model_dump(mode="json"), headers=researcher.headers)

    assert answer.status_code == 403
    assert "not the researcher's registered key" in answer.json()["detail"]


def test_create_train_tampered_manifest(
    client: TestClient, researcher: Researcher, signed_manifest: SignedManifest
) -> None:
    body = signed_manifest.model_dump(mode="json")
    body["manifest"]["entrypoint"] = "evil.py"

    answer = client.post("/trains", json=body, headers=researcher.headers)

    assert answer.status_code == 403
    assert "does not verify" in answer.json()["detail"]


def test_create_train_without_registered_keys(
    client: TestClient, hub: HubFactory, granted_project: str, collection_id: str
) -> None:
    headers = hub.create_user("newbie", Role.RESEARCHER)
    keys = generate_key_pair()
    unregistered = Researcher(username="newbie", keys=keys, headers=headers)
    signed = make_manifest(
        unregistered, project_id=granted_project, collections=(collection_id,), bundle_hash=content_address(b"x")
    )

    answer = client.post("/trains", json=signed.model_dump(mode="json"), headers=headers)

    assert answer.status_code == 403
    assert "register your public keys" in answer.json()["detail"]


def test_create_train_bundle_missing(
    client: TestClient, researcher: Researcher, granted_project: str, collection_id: str
) -> None:
    signed = make_manifest(
        researcher, project_id=granted_project, collections=(collection_id,), bundle_hash=content_address(b"absent")
    )

    answer = client.post("/trains", json=signed.model_dump(mode="json"), headers=researcher.headers)

    assert answer.status_code == 400
    assert "is not uploaded" in answer.json()["detail"]


def test_create_train_names_other_researcher(
    client: TestClient, hub: HubFactory, researcher: Researcher, granted_project: str, collection_id: str
) -> None:
    signed = make_manifest(
        researcher,
        project_id=granted_project,
        collections=(collection_id,),
        bundle_hash=hub.upload_bundle(researcher),
        researcher_name="someone-else",
    )

    answer = client.post("/trains", json=signed.model_dump(mode="json"), headers=researcher.headers)

    assert answer.status_code == 403


def test_create_train_for_other_researchers_project(
    client: TestClient, hub: HubFactory, granted_project: str, collection_id: str
) -> None:
    mallory = hub.create_researcher("mallory")
    signed = make_manifest(
        mallory, project_id=granted_project, collections=(collection_id,), bundle_hash=hub.upload_bundle(mallory)
    )

    answer = client.post("/trains", json=signed.model_dump(mode="json"), headers=mallory.headers)

    assert answer.status_code == 403
    assert "project's owner" in answer.json()["detail"]


def test_create_train_unknown_project(
    client: TestClient, hub: HubFactory, researcher: Researcher, collection_id: str
) -> None:
    signed = make_manifest(
        researcher, project_id="nope", collections=(collection_id,), bundle_hash=hub.upload_bundle(researcher)
    )

    answer = client.post("/trains", json=signed.model_dump(mode="json"), headers=researcher.headers)

    assert answer.status_code == 404


def test_create_train_same_manifest_twice(
    client: TestClient, hub: HubFactory, researcher: Researcher, signed_manifest: SignedManifest
) -> None:
    hub.submit(signed_manifest, researcher)

    answer = client.post("/trains", json=signed_manifest.model_dump(mode="json"), headers=researcher.headers)

    assert answer.status_code == 409


def test_create_train_not_researcher(
    client: TestClient, steward_headers: Headers, signed_manifest: SignedManifest
) -> None:
    answer = client.post("/trains", json=signed_manifest.model_dump(mode="json"), headers=steward_headers)

    assert answer.status_code == 403


def test_read_trains_lists_own(
    client: TestClient, hub: HubFactory, researcher: Researcher, signed_manifest: SignedManifest
) -> None:
    train = hub.submit(signed_manifest, researcher)
    other = hub.create_researcher("mallory")

    mine = client.get("/trains", headers=researcher.headers).json()
    theirs = client.get("/trains", headers=other.headers).json()

    assert mine["count"] == 1
    assert mine["data"][0]["id"] == train["id"]
    assert theirs == {"data": [], "count": 0}


def test_read_train_not_owner(
    client: TestClient, hub: HubFactory, researcher: Researcher, signed_manifest: SignedManifest
) -> None:
    train = hub.submit(signed_manifest, researcher)
    other = hub.create_researcher("mallory")

    answer = client.get(f"/trains/{train['id']}", headers=other.headers)

    assert answer.status_code == 403


def test_read_train_unknown(client: TestClient, researcher: Researcher) -> None:
    assert client.get("/trains/nope", headers=researcher.headers).status_code == 404


def test_create_train_wakes_no_other_station(
    client: TestClient, hub: HubFactory, admin_headers: Headers, researcher: Researcher, signed_manifest: SignedManifest
) -> None:
    site_b: EnrolledStation = hub.enrol_station(admin_headers, "site-b")
    hub.submit(signed_manifest, researcher)

    answer = client.get("/stations/me/jobs/next", headers=site_b.headers)

    assert answer.status_code == 204


def test_co_recipients_must_be_members_with_their_registered_keys_and_may_read_results(
    client: TestClient, hub: HubFactory, researcher: Researcher, granted_project: str, collection_id: str
) -> None:
    from protocol import Recipient, sign_manifest

    lena, eve = hub.create_researcher("lena"), hub.create_researcher("eve")
    assert (
        client.patch(f"/projects/{granted_project}", json={"members": ["lena"]}, headers=researcher.headers).status_code
        == 200
    )
    keys = client.get(f"/projects/{granted_project}", headers=researcher.headers).json()["member_keys"]
    assert keys["lena"] == lena.keys.encryption_public
    bundle = hub.upload_bundle(researcher)

    def submit(*recipients: Recipient) -> httpx.Response:
        base = make_manifest(researcher, project_id=granted_project, collections=(collection_id,), bundle_hash=bundle)
        manifest = base.manifest.model_copy(update={"co_recipients": recipients})
        signed = sign_manifest(manifest, researcher.keys.signing)
        return client.post("/trains", json=signed.model_dump(mode="json"), headers=researcher.headers)

    outsider = submit(Recipient(name="eve", encryption_public_key=eve.keys.encryption_public))
    wrong_key = submit(Recipient(name="lena", encryption_public_key=eve.keys.encryption_public))
    accepted = submit(Recipient(name="lena", encryption_public_key=lena.keys.encryption_public))

    assert outsider.status_code == 400
    assert "'eve' is not another member" in outsider.json()["detail"]
    assert wrong_key.status_code == 400
    assert "not their registered encryption key" in wrong_key.json()["detail"]
    assert accepted.status_code == 201, accepted.text
    train = accepted.json()
    assert client.get(f"/trains/{train['id']}", headers=lena.headers).status_code == 200
    assert client.get(f"/trains/{train['id']}", headers=eve.headers).status_code == 403
    job_id = train["jobs"][0]["id"]
    assert client.get(f"/jobs/{job_id}/result", headers=lena.headers).status_code == 404  # allowed, none yet
    assert client.get(f"/jobs/{job_id}/result", headers=eve.headers).status_code == 403
    assert client.post(f"/trains/{train['id']}/cancel", headers=lena.headers).status_code == 403  # the owner's
