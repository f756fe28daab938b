"""POST /graphql: collections(modality, bodyPart, minSubjects)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, Headers, HubFactory, Researcher, make_summary

QUERY = """
query Collections($modality: String, $bodyPart: String, $minSubjects: Int) {
  collections(modality: $modality, bodyPart: $bodyPart, minSubjects: $minSubjects) {
    id iri station collection title description subjects studies series instances
    modalities { value count } bodyParts { value count } manufacturers { value count }
  }
}
"""


def _search(client: TestClient, headers: Headers, **variables: object) -> list[dict[str, Any]]:
    answer = client.post("/graphql", json={"query": QUERY, "variables": variables}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert "errors" not in answer.json(), answer.json()
    found: list[dict[str, Any]] = answer.json()["data"]["collections"]
    return found


def test_graphql_collections_fields(
    client: TestClient, hub: HubFactory, station: EnrolledStation, steward_headers: Headers
) -> None:
    hub.publish(station, "chest-ct", summary=make_summary(subjects=12, modalities={"CT": 12, "SR": None}))

    (found,) = _search(client, steward_headers)

    assert found["id"] == "site-a/chest-ct"
    assert found["iri"] == "http://hub.test/dataset/site-a/chest-ct"
    assert found["subjects"] == 12
    assert found["series"] == 36
    assert found["modalities"] == [{"value": "CT", "count": 12}, {"value": "SR", "count": None}]
    assert found["bodyParts"] == [{"value": "CHEST", "count": 12}]
    assert found["manufacturers"] == [{"value": "ACME", "count": 12}]


def test_graphql_collections_filters_with_suppressed_counts(
    client: TestClient, hub: HubFactory, station: EnrolledStation, steward_headers: Headers
) -> None:
    hub.publish(station, "chest-ct")
    hub.publish(station, "brain-mr", summary=make_summary(subjects=30, modalities={"MR": 30}, body_parts={"HEAD": 30}))
    hub.publish(station, "tiny-ct", summary=make_summary(subjects=None, modalities={"CT": None}))

    def ids(**variables: object) -> list[str]:
        return sorted(found["id"] for found in _search(client, steward_headers, **variables))

    assert ids(modality="ct") == ["site-a/chest-ct", "site-a/tiny-ct"]
    assert ids(bodyPart="Head") == ["site-a/brain-mr"]
    assert ids(minSubjects=5) == ["site-a/brain-mr", "site-a/chest-ct"]
    assert ids(minSubjects=20) == ["site-a/brain-mr"]
    assert ids(modality="CT", minSubjects=1) == ["site-a/chest-ct"]
    assert ids(modality="PT") == []


def test_graphql_suppressed_counts_are_null(
    client: TestClient, hub: HubFactory, station: EnrolledStation, steward_headers: Headers
) -> None:
    hub.publish(station, "tiny-ct", summary=make_summary(subjects=None, modalities={"CT": None}))

    (found,) = _search(client, steward_headers)

    assert found["subjects"] is None
    assert found["instances"] is None
    assert found["modalities"] == [{"value": "CT", "count": None}]


def test_graphql_collections_need_a_login_but_a_bad_token_is_refused(client: TestClient) -> None:
    guest = client.post("/graphql", json={"query": QUERY})
    bad = client.post("/graphql", json={"query": QUERY}, headers={"Authorization": "Bearer nope"})

    assert guest.status_code == 200
    assert "log in first" in guest.json()["errors"][0]["message"]
    assert bad.status_code == 401


def test_graphql_ide_page_opens_without_token(client: TestClient) -> None:
    answer = client.get("/graphql", headers={"Accept": "text/html"})

    assert answer.status_code == 200
    assert "graphiql" in answer.text.lower()


def test_openapi_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation_ids = {operation["operationId"] for path in spec["paths"].values() for operation in path.values()}

    assert client.get("/docs").status_code == 200
    assert {"trains-create_train", "stations-read_next_job", "catalog-read_collections"} <= operation_ids


SEARCH = """
query ($filter: CollectionFilter, $after: String) {
  search(filter: $filter, first: 1, after: $after) {
    totalCount
    nodes { id subjects modalities }
    facets { modality { value count } station { value count } }
    pageInfo { endCursor hasNextPage }
  }
}
"""


def test_search_with_facets_and_paging(
    client: TestClient, hub: HubFactory, station: EnrolledStation, researcher: Researcher
) -> None:
    hub.publish(station, "chest-ct", summary=make_summary(subjects=12, modalities={"CT": 12}))
    hub.publish(station, "brain-mr", summary=make_summary(subjects=47, modalities={"MR": 47}))

    first = client.post("/graphql", json={"query": SEARCH}, headers=researcher.headers).json()["data"]["search"]
    after = first["pageInfo"]["endCursor"]
    second = client.post(
        "/graphql", json={"query": SEARCH, "variables": {"after": after}}, headers=researcher.headers
    ).json()["data"]["search"]
    only_ct = client.post(
        "/graphql", json={"query": SEARCH, "variables": {"filter": {"modality": ["CT"]}}}, headers=researcher.headers
    ).json()["data"]["search"]

    assert (
        first["totalCount"] == 2 and first["nodes"][0]["id"] == "site-a/brain-mr" and first["pageInfo"]["hasNextPage"]
    )
    assert second["nodes"][0]["id"] == "site-a/chest-ct" and not second["pageInfo"]["hasNextPage"]
    assert only_ct["totalCount"] == 1
    assert {f["value"]: f["count"] for f in only_ct["facets"]["modality"]} == {"CT": 1, "MR": 1}


def test_guests_search_with_rounded_counts(client: TestClient, hub: HubFactory, station: EnrolledStation) -> None:
    hub.publish(station, "brain-mr", summary=make_summary(subjects=47, modalities={"MR": 47}))

    guest = client.post("/graphql", json={"query": SEARCH}).json()["data"]["search"]

    assert guest["nodes"][0]["subjects"] == 40


def test_query_depth_and_bad_arguments_are_refused(client: TestClient, researcher: Researcher) -> None:
    too_many = client.post(
        "/graphql", json={"query": "{ search(first: 500) { totalCount } }"}, headers=researcher.headers
    )
    bad_cursor = client.post(
        "/graphql", json={"query": '{ search(after: "zzz") { totalCount } }'}, headers=researcher.headers
    )
    aliases = "{ " + " ".join(f"a{n}: search {{ totalCount }}" for n in range(20)) + " }"
    aliased = client.post("/graphql", json={"query": aliases}, headers=researcher.headers)

    assert "between 1 and 100" in too_many.json()["errors"][0]["message"]
    assert "cursor" in bad_cursor.json()["errors"][0]["message"]
    assert "aliases included" in aliased.json()["errors"][0]["message"]
