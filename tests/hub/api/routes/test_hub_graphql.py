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


RICH = """
query ($filter: CollectionFilter) {
  search(filter: $filter) {
    totalCount
    nodes { id subjects diseases annotations dataUse minAge maxAge }
    facets {
      disease { value count } annotation { value count } dataUse { value count }
      subjects { value count } age { value count } purpose { value count }
    }
  }
}
"""


def _publish_clinical(hub: HubFactory, station: EnrolledStation) -> None:
    from protocol import CollectionMetadata, CollectionSummary, DiseaseCode

    def summary(subjects: int, ages: tuple[int, int]) -> CollectionSummary:
        base = make_summary(subjects=subjects)
        return base.model_copy(update={"min_typical_age": ages[0], "max_typical_age": ages[1]})

    hub.publish(
        station,
        "lung-ct",
        summary=summary(120, (45, 80)),
        metadata=CollectionMetadata(
            disease_codes=(DiseaseCode(system="ICD-10", code="C34.1", label="Upper lobe lung cancer"),),
            data_use=("DUO:0000006",),
            annotations=("segmentation",),
        ),
    )
    hub.publish(
        station,
        "breast-mg",
        summary=summary(17, (30, 60)),
        metadata=CollectionMetadata(
            disease_codes=(DiseaseCode(system="ICD-10", code="C50.9"),), data_use=("DUO:0000042", "DUO:0000015")
        ),
    )


def _post(client: TestClient, query: str, headers: Headers | None = None, **variables: object) -> dict[str, Any]:
    answer = client.post("/graphql", json={"query": query, "variables": variables}, headers=headers or {})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_search_by_disease_age_annotation_and_purpose(
    client: TestClient, hub: HubFactory, station: EnrolledStation, researcher: Researcher
) -> None:
    _publish_clinical(hub, station)

    def found(**filter: object) -> list[str]:
        body = _post(client, RICH, researcher.headers, filter=filter)
        assert "errors" not in body, body
        return [node["id"] for node in body["data"]["search"]["nodes"]]

    assert found(disease=["C34"]) == ["site-a/lung-ct"]
    assert found(disease=["ICD-10:C50.9"]) == ["site-a/breast-mg"]
    assert found(minAge=70) == ["site-a/lung-ct"]
    assert found(maxAge=40) == ["site-a/breast-mg"]
    assert found(annotation=["Segmentation"]) == ["site-a/lung-ct"]
    assert found(dataUse=["DUO:0000042"]) == ["site-a/breast-mg"]
    assert found(purpose="DUO:0000031") == []  # methods development: HMB does not cover it, NMDS forbids it
    assert found(purpose="DUO:0000007", purposeDiseases=["C34"]) == ["site-a/lung-ct", "site-a/breast-mg"]
    everything = _post(client, RICH, researcher.headers)["data"]["search"]
    hit = everything["nodes"][0]
    assert hit == {
        "id": "site-a/lung-ct",
        "subjects": 120,
        "diseases": ["ICD-10:C34.1"],
        "annotations": ["Segmentation"],
        "dataUse": ["DUO:0000006"],
        "minAge": 45,
        "maxAge": 80,
    }
    facets = {name: {v["value"]: v["count"] for v in values} for name, values in everything["facets"].items()}
    assert facets["disease"] == {"ICD-10:C34.1": 1, "ICD-10:C50.9": 1}
    assert facets["subjects"] == {"0-49": 1, "100-499": 1}
    assert facets["age"]["50-59"] == 2 and facets["age"]["80-89"] == 1 and "20-29" not in facets["age"]
    assert facets["purpose"] == {"DUO:0000042": 1, "DUO:0000006": 2}


def test_bad_ranges_and_purposes_are_refused(client: TestClient, researcher: Researcher) -> None:
    for bad, message in (
        ({"minSubjects": 50, "maxSubjects": 10}, "above max"),
        ({"minAge": -1}, "negative"),
        ({"purpose": "health research"}, "DUO code"),
    ):
        body = _post(client, RICH, researcher.headers, filter=bad)
        assert message in body["errors"][0]["message"]


def test_anonymous_subject_sweeps_never_reveal_counts_below_the_rounding(
    client: TestClient, hub: HubFactory, station: EnrolledStation
) -> None:
    hub.publish(station, "small", summary=make_summary(subjects=7, modalities={"CT": 7}))
    hub.publish(station, "medium", summary=make_summary(subjects=23, modalities={"CT": 23}))
    query = "query ($f: CollectionFilter) { search(filter: $f) { totalCount nodes { id subjects } } }"

    hits_by_exact_value: dict[int, int] = {}
    for value in range(0, 40):
        body = _post(client, query, f={"minSubjects": value, "maxSubjects": value})
        hits_by_exact_value[value] = body["data"]["search"]["totalCount"]
        for node in body["data"]["search"]["nodes"]:
            assert node["subjects"] % 10 == 0

    # a guest's one-value ranges only ever match multiples of ten: the exact 7 and 23 stay hidden
    assert {value for value, hits in hits_by_exact_value.items() if hits} == {0, 20}
    shown = [node["subjects"] for node in _post(client, query)["data"]["search"]["nodes"]]
    assert all(count == 0 or count >= 5 for count in shown)


DETAIL = """
query ($id: String!) {
  collection(id: $id) {
    id title subjects disclosureThreshold minAge maxAge
    modalities { value count } sexes { value count } qualityFlags { value count }
    acquisitionRanges { parameter low median high unit subjects }
    diseases { code system notation label } annotations dataUse
  }
  stations { id collections subjects modalities lastSeenAt }
}
"""


def test_collection_details_and_stations(
    client: TestClient, hub: HubFactory, station: EnrolledStation, researcher: Researcher
) -> None:
    _publish_clinical(hub, station)

    member = _post(client, DETAIL, researcher.headers, id="site-a/lung-ct")["data"]
    guest = _post(client, DETAIL, id="site-a/breast-mg")["data"]
    missing = _post(client, DETAIL, researcher.headers, id="site-a/nope")["data"]

    detail = member["collection"]
    assert (detail["title"], detail["subjects"], detail["disclosureThreshold"]) == ("Chest CT", 120, 5)
    assert (detail["minAge"], detail["maxAge"]) == (45, 80)
    assert detail["diseases"] == [
        {"code": "ICD-10:C34.1", "system": "ICD-10", "notation": "C34.1", "label": "Upper lobe lung cancer"}
    ]
    assert detail["annotations"] == ["Segmentation"] and detail["dataUse"] == ["DUO:0000006"]
    assert member["stations"] == [
        {
            "id": "site-a",
            "collections": 2,
            "subjects": 137,
            "modalities": ["CT"],
            "lastSeenAt": member["stations"][0]["lastSeenAt"],
        }
    ]
    assert guest["collection"]["subjects"] == 10  # 17 rounded down for guests
    assert guest["collection"]["modalities"] == [{"value": "CT", "count": 10}]
    assert guest["stations"][0]["subjects"] == 130 and guest["stations"][0]["lastSeenAt"] is None
    assert missing["collection"] is None


def test_facets_asked_through_a_fragment_are_counted(
    client: TestClient, hub: HubFactory, station: EnrolledStation, researcher: Researcher
) -> None:
    _publish_clinical(hub, station)
    query = """
    fragment F on Facets { disease { value count } }
    query { search { facets { ...F } } }
    """

    body = _post(client, query, researcher.headers)

    assert {v["value"] for v in body["data"]["search"]["facets"]["disease"]} == {"ICD-10:C34.1", "ICD-10:C50.9"}
