"""Guests see rounded counts everywhere: GraphQL, /sparql and the FAIR Data Point agree; members see the published ones.

Over real HTTP (uvicorn on loopback) with SPARQLWrapper, as a guest and as a logged-in member.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import rdflib
from hub_factories import EnrolledStation, HubFactory, Researcher, serve_on_loopback
from SPARQLWrapper import JSON, SPARQLWrapper

from hub import Settings, create_app
from protocol import CollectionSummary

TY = "https://w3id.org/trainyard/ontology#"
HEALTH = "http://healthdataportal.eu/ns/health#"
COUNTS = (
    f"<{TY}numberOfSubjects>",
    f"<{TY}numberOfStudies>",
    f"<{TY}numberOfSeries>",
    f"<{TY}numberOfInstances>",
    f"<{TY}subjects>",
    f"<{HEALTH}numberOfUniqueIndividuals>",
    f"<{HEALTH}numberOfRecords>",
)
EVERY_COUNT = f"SELECT ?p ?n WHERE {{ ?s ?p ?n FILTER (?p IN ({', '.join(COUNTS)})) }}"
SUMMARY = CollectionSummary(
    k=5,
    subjects=37,
    studies=41,
    series=113,
    instances=3391,
    modalities={"CT": 37},
    body_parts={"CHEST": 37},
    manufacturers={"ACME": 37},
    sexes={"F": 17, "M": 20},
    min_typical_age=44,
    max_typical_age=71,
)


def _sparql(base: str, query: str, headers: dict[str, str] | None = None) -> Any:
    wrapper = SPARQLWrapper(f"{base}/sparql")
    for name, value in (headers or {}).items():
        wrapper.addCustomHttpHeader(name, value)
    wrapper.setQuery(query)
    wrapper.setReturnFormat(JSON)
    return wrapper.query().convert()


def _counts(answer: Any) -> list[tuple[str, int]]:
    rows = answer["results"]["bindings"]
    return sorted((row["p"]["value"].rsplit("#", 1)[-1], int(row["n"]["value"])) for row in rows)


def _graphql(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    query = "{ search { nodes { subjects studies series instances } } }"
    data: dict[str, Any] = http.post("/graphql", json={"query": query}, headers=headers).json()["data"]
    return data["search"]["nodes"][0]  # type: ignore[no-any-return]


@pytest.fixture
def served(settings: Settings, hub: HubFactory, station: EnrolledStation, researcher: Researcher) -> str:
    hub.publish(station, "chest-ct", summary=SUMMARY)
    hub.client.__exit__(None, None, None)  # release the store: the served app opens it again
    return "chest-ct"


def test_guests_get_the_same_rounded_counts_from_sparql_fdp_and_graphql(
    settings: Settings, researcher: Researcher, served: str
) -> None:
    with serve_on_loopback(create_app(settings)) as base, httpx.Client(base_url=base) as http:
        guest_sparql = _counts(_sparql(base, EVERY_COUNT))
        member_sparql = _counts(_sparql(base, EVERY_COUNT, researcher.headers))
        guest_gql, member_gql = _graphql(http, {}), _graphql(http, researcher.headers)
        guest_fdp = http.get("/dataset/site-a/chest-ct", params={"format": "nt"})
        member_fdp = http.get("/dataset/site-a/chest-ct", params={"format": "nt"}, headers=researcher.headers)

    assert member_sparql == sorted(
        [
            ("numberOfInstances", 3391),
            ("numberOfRecords", 3391),
            ("numberOfSeries", 113),
            ("numberOfStudies", 41),
            ("numberOfSubjects", 37),
            ("numberOfUniqueIndividuals", 37),
            ("subjects", 17),
            ("subjects", 20),
        ]
    )
    assert guest_sparql == sorted((name, count - count % 10) for name, count in member_sparql)
    assert member_gql == {"subjects": 37, "studies": 41, "series": 113, "instances": 3391}
    assert guest_gql == {"subjects": 30, "studies": 40, "series": 110, "instances": 3390}  # what SPARQL says
    assert guest_fdp.headers["vary"] == "Accept, Authorization"
    for answer, shown in ((guest_fdp, guest_sparql), (member_fdp, member_sparql)):
        graph = rdflib.Graph().parse(data=answer.text, format="nt")
        served_counts = sorted(
            (str(predicate).rsplit("#", 1)[-1], int(str(value)))
            for _, predicate, value in graph
            if f"<{predicate}>" in COUNTS
        )
        assert served_counts == shown
    assert "44" in guest_fdp.text and "71" in guest_fdp.text  # typical ages are not counts: as GraphQL shows them


def test_a_guest_query_cannot_filter_or_compute_on_an_exact_count(
    settings: Settings, researcher: Researcher, served: str
) -> None:
    exact = f"ASK {{ ?d <{TY}numberOfSubjects> ?n FILTER (?n = 37) }}"
    rounded = f"ASK {{ ?d <{TY}numberOfSubjects> ?n FILTER (?n = 30) }}"
    digit = f"SELECT (SUM(?n - FLOOR(?n / 10) * 10) AS ?rest) WHERE {{ ?d <{TY}numberOfSubjects> ?n }}"
    readers: list[dict[str, str]] = [{}, researcher.headers]
    with serve_on_loopback(create_app(settings)) as base:
        guest = [_sparql(base, query)["boolean"] for query in (exact, rounded)]
        member = [_sparql(base, query, researcher.headers)["boolean"] for query in (exact, rounded)]
        rest = [
            int(float(_sparql(base, digit, headers)["results"]["bindings"][0]["rest"]["value"])) for headers in readers
        ]

    assert guest == [False, True]
    assert member == [True, False]
    assert rest == [0, 7]


def test_republication_reaches_the_guest_view_and_it_survives_a_restart(
    settings: Settings, hub: HubFactory, station: EnrolledStation, researcher: Researcher
) -> None:
    hub.publish(station, "chest-ct", summary=SUMMARY)
    hub.publish(station, "chest-ct", summary=SUMMARY.model_copy(update={"subjects": 52, "sexes": {}}))
    subjects = f"SELECT ?p ?n WHERE {{ ?s ?p ?n FILTER (?p = <{TY}numberOfSubjects>) }}"

    assert _counts(hub.client.get("/sparql", params={"query": subjects}).json()) == [("numberOfSubjects", 50)]
    hub.client.__exit__(None, None, None)
    marker = settings.catalog_dir.with_name(settings.catalog_dir.name + "-guest.stale")
    assert settings.catalog_dir.with_name("catalog-guest").is_dir() and not marker.exists()
    with serve_on_loopback(create_app(settings)) as base:
        guest = _counts(_sparql(base, subjects))
        member = _counts(_sparql(base, subjects, researcher.headers))
        versions = _sparql(base, "SELECT ?v WHERE { ?v <http://purl.org/dc/terms/isVersionOf> ?d }")

    assert (guest, member) == ([("numberOfSubjects", 50)], [("numberOfSubjects", 52)])
    assert len(versions["results"]["bindings"]) == 1  # earlier versions are in the guests' view too


def test_tokens_on_sparql_and_fdp(
    client: Any, hub: HubFactory, station: EnrolledStation, researcher: Researcher
) -> None:
    hub.publish(station, "chest-ct", summary=SUMMARY)
    query = {"query": f"SELECT ?n WHERE {{ ?d <{TY}numberOfSubjects> ?n }}"}

    as_station = client.get("/sparql", params=query, headers=station.headers)
    expired = client.get("/sparql", params=query, headers={"Authorization": "Bearer not-a-token"})
    fdp = client.get("/dataset/site-a/chest-ct", headers={"Authorization": "Bearer not-a-token"})

    assert as_station.json()["results"]["bindings"][0]["n"]["value"] == "30"  # a station reads as a guest
    assert expired.status_code == 401 and "log in again" in expired.json()["detail"]
    assert fdp.status_code == 401
