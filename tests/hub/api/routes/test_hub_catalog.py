"""/collections: search over published summaries and the Turtle of a collection."""

from __future__ import annotations

import pyoxigraph as ox
from fastapi.testclient import TestClient
from hub_factories import COLLECTION, STATION, EnrolledStation, Headers, HubFactory, make_summary


def test_read_collections_filters(
    client: TestClient, hub: HubFactory, station: EnrolledStation, steward_headers: Headers
) -> None:
    hub.publish(station, "chest-ct")
    hub.publish(station, "brain-mr", summary=make_summary(subjects=30, modalities={"MR": 30}, body_parts={"HEAD": 30}))
    hub.publish(station, "tiny-ct", summary=make_summary(subjects=None, modalities={"CT": None}))

    def ids(**params: object) -> list[str]:
        answer = client.get("/collections", params=params, headers=steward_headers)
        assert answer.status_code == 200
        return sorted(item["id"] for item in answer.json()["data"])

    assert ids() == ["site-a/brain-mr", "site-a/chest-ct", "site-a/tiny-ct"]
    assert ids(modality="ct") == ["site-a/chest-ct", "site-a/tiny-ct"]
    assert ids(body_part="head") == ["site-a/brain-mr"]
    assert ids(min_subjects=10) == ["site-a/brain-mr", "site-a/chest-ct"]
    assert ids(modality="CT", min_subjects=1) == ["site-a/chest-ct"]


def test_read_collections_without_token(client: TestClient) -> None:
    assert client.get("/collections").status_code == 401


def test_read_collection_as_json(client: TestClient, collection_id: str, steward_headers: Headers) -> None:
    answer = client.get(f"/collections/{collection_id}", headers=steward_headers)

    assert answer.status_code == 200
    assert answer.json()["station"] == STATION
    assert answer.json()["collection"] == COLLECTION
    assert answer.json()["summary"]["modalities"] == {"CT": 12}


def test_read_collection_as_turtle(client: TestClient, collection_id: str, steward_headers: Headers) -> None:
    answer = client.get(f"/collections/{collection_id}", headers={**steward_headers, "Accept": "text/turtle"})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/turtle")
    triples = list(ox.parse(answer.text, ox.RdfFormat.TURTLE))
    subjects = {triple.subject.value for triple in triples}
    assert subjects == {  # the station's URN re-based on the hub, plus what the hub adds
        f"http://hub.test/dataset/{STATION}/{COLLECTION}",
        f"http://hub.test/distribution/{STATION}/{COLLECTION}",
        f"http://hub.test/station/{STATION}",
    }


def test_read_collection_unknown(client: TestClient, steward_headers: Headers) -> None:
    answer = client.get("/collections/site-a/nope", headers=steward_headers)

    assert answer.status_code == 404
