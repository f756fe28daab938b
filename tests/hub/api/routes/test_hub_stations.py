"""/stations: enrolment tokens, enrolment, listing and publishing collections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from hub_factories import COLLECTION, STATION, EnrolledStation, Headers, HubFactory, make_publication, make_summary
from sqlalchemy import update
from sqlmodel import Session

from hub.models import EnrolmentToken
from protocol import Role, generate_key_pair, sign_publication


def _enrolment(name: str, token: str) -> dict[str, str]:
    keys = generate_key_pair()
    return {
        "name": name,
        "enrolment_token": token,
        "signing_public_key": keys.signing_public,
        "encryption_public_key": keys.encryption_public,
    }


def test_create_enrolment_token_as_admin(client: TestClient, admin_headers: Headers) -> None:
    answer = client.post("/stations/enrolment-tokens", json={"station": "site-a"}, headers=admin_headers)

    assert answer.status_code == 201
    assert answer.json()["station"] == "site-a"
    assert len(answer.json()["token"]) >= 32


def test_create_enrolment_token_not_admin(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    answer = client.post("/stations/enrolment-tokens", json={"station": "site-a"}, headers=headers)

    assert answer.status_code == 403


def test_create_enrolment_token_bad_slug(client: TestClient, admin_headers: Headers) -> None:
    answer = client.post("/stations/enrolment-tokens", json={"station": "Site A!"}, headers=admin_headers)

    assert answer.status_code == 422


def test_enrol_station_returns_api_token(client: TestClient, hub: HubFactory, admin_headers: Headers) -> None:
    token = hub.create_enrolment_token(admin_headers, "site-a")

    answer = client.post("/stations/enrol", json=_enrolment("site-a", token))

    assert answer.status_code == 201
    assert answer.json()["station_id"] == "site-a"
    assert answer.json()["api_token"]


def test_enrol_station_used_token(client: TestClient, hub: HubFactory, admin_headers: Headers) -> None:
    token = hub.create_enrolment_token(admin_headers, "site-a")
    assert client.post("/stations/enrol", json=_enrolment("site-a", token)).status_code == 201

    answer = client.post("/stations/enrol", json=_enrolment("site-a", token))

    assert answer.status_code == 403
    assert "already used" in answer.json()["detail"]


def test_enrol_station_wrong_name(client: TestClient, hub: HubFactory, admin_headers: Headers) -> None:
    token = hub.create_enrolment_token(admin_headers, "site-a")

    answer = client.post("/stations/enrol", json=_enrolment("site-b", token))

    assert answer.status_code == 403


def test_enrol_station_expired_token(client: TestClient, hub: HubFactory, admin_headers: Headers) -> None:
    token = hub.create_enrolment_token(admin_headers, "site-a")
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        session.exec(update(EnrolmentToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()

    answer = client.post("/stations/enrol", json=_enrolment("site-a", token))

    assert answer.status_code == 403


def test_enrol_station_again_revokes_old_token(client: TestClient, hub: HubFactory, admin_headers: Headers) -> None:
    first = hub.enrol_station(admin_headers, "site-a")
    second = hub.enrol_station(admin_headers, "site-a")

    assert client.get("/stations/me/jobs/next", headers=first.headers).status_code == 401
    assert client.get("/stations/me/jobs/next", headers=second.headers).status_code == 204


def test_read_stations(client: TestClient, station: EnrolledStation, steward_headers: Headers) -> None:
    answer = client.get("/stations", headers=steward_headers)

    assert answer.status_code == 200
    assert answer.json()["count"] == 1
    (listed,) = answer.json()["data"]
    assert listed["id"] == listed["name"] == STATION
    assert listed["signing_public_key"] == station.keys.signing_public
    assert "api_token" not in listed


def test_publish_collection(client: TestClient, station: EnrolledStation) -> None:
    publication = make_publication(station)

    answer = client.put(
        f"/stations/me/collections/{COLLECTION}", json=publication.model_dump(mode="json"), headers=station.headers
    )

    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == f"{STATION}/{COLLECTION}"
    assert body["iri"] == f"http://hub.test/dataset/{STATION}/{COLLECTION}"
    assert body["summary"]["subjects"] == 12


def test_publish_collection_tampered_signature(client: TestClient, station: EnrolledStation) -> None:
    publication = make_publication(station)
    tampered = publication.model_copy(update={"title": "Something else"})

    answer = client.put(
        f"/stations/me/collections/{COLLECTION}", json=tampered.model_dump(mode="json"), headers=station.headers
    )

    assert answer.status_code == 403
    assert "not signed by station 'site-a'" in answer.json()["detail"]


def test_publish_collection_signed_by_other_key(client: TestClient, station: EnrolledStation) -> None:
    publication = sign_publication(make_publication(station), generate_key_pair().signing)

    answer = client.put(
        f"/stations/me/collections/{COLLECTION}", json=publication.model_dump(mode="json"), headers=station.headers
    )

    assert answer.status_code == 403


def test_publish_collection_for_other_station(client: TestClient, hub: HubFactory, admin_headers: Headers) -> None:
    site_a = hub.enrol_station(admin_headers, "site-a")
    site_b = hub.enrol_station(admin_headers, "site-b")
    publication = make_publication(EnrolledStation(name="site-b", keys=site_a.keys, headers=site_a.headers))

    answer = client.put(
        f"/stations/me/collections/{COLLECTION}", json=publication.model_dump(mode="json"), headers=site_a.headers
    )

    assert answer.status_code == 403
    assert "cannot publish for station 'site-b'" in answer.json()["detail"]
    assert site_b.name == "site-b"


def test_publish_collection_path_mismatch(client: TestClient, station: EnrolledStation) -> None:
    publication = make_publication(station)

    answer = client.put(
        "/stations/me/collections/other", json=publication.model_dump(mode="json"), headers=station.headers
    )

    assert answer.status_code == 400


def test_publish_collection_invalid_turtle(client: TestClient, station: EnrolledStation) -> None:
    publication = make_publication(station, turtle="<urn:a> <urn:b> .")

    answer = client.put(
        f"/stations/me/collections/{COLLECTION}", json=publication.model_dump(mode="json"), headers=station.headers
    )

    assert answer.status_code == 400
    assert "does not parse" in answer.json()["detail"]
    assert "line 1" in answer.json()["detail"]


def test_publish_collection_with_user_token(
    client: TestClient, station: EnrolledStation, admin_headers: Headers
) -> None:
    publication = make_publication(station)

    answer = client.put(
        f"/stations/me/collections/{COLLECTION}", json=publication.model_dump(mode="json"), headers=admin_headers
    )

    assert answer.status_code == 401


def test_publish_collection_again_replaces_it(
    client: TestClient, hub: HubFactory, station: EnrolledStation, admin_headers: Headers
) -> None:
    hub.publish(station, title="Old title")
    hub.publish(station, title="New title", summary=make_summary(subjects=40))

    answer = client.get(f"/collections/{STATION}/{COLLECTION}", headers=admin_headers)
    turtle = client.get(f"/collections/{STATION}/{COLLECTION}", headers={**admin_headers, "Accept": "text/turtle"}).text

    assert answer.json()["title"] == "New title"
    assert answer.json()["summary"]["subjects"] == 40
    assert "New title" in turtle
    assert "Old title" not in turtle


def test_publication_that_breaks_the_shapes_is_refused_with_a_report(
    client: TestClient, station: EnrolledStation
) -> None:
    turtle = "<urn:trainyard:collection:site-a:chest-ct> a <http://www.w3.org/ns/dcat#Dataset> ."
    publication = make_publication(station, COLLECTION, turtle=turtle)

    answer = client.put(
        f"/stations/me/collections/{COLLECTION}", json=publication.model_dump(mode="json"), headers=station.headers
    )

    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "does not conform" in detail["message"]
    assert {problem["path"] for problem in detail["problems"]} >= {"dct:title", "dct:description", "ty:station"}
    assert client.get("/dataset/site-a/chest-ct").status_code == 404  # nothing was stored
