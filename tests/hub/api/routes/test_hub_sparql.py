"""/sparql: the SPARQL 1.1 Protocol over the catalog, read-only, with limits; standard clients."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
import rdflib
from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, HubFactory, serve_on_loopback, sign_station_requests

from hub import Settings, create_app
from protocol import Role

TITLES = (
    "SELECT ?title WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> ; <http://purl.org/dc/terms/title> ?title }"
    " ORDER BY ?title"
)


@pytest.fixture
def published(hub: HubFactory, station: EnrolledStation) -> str:
    hub.publish(station, "chest-ct", title="Chest CT")
    return hub.publish(station, "brain-mr", title="Brain MR")


def test_select_as_json_by_get(client: TestClient, published: str) -> None:
    answer = client.get("/sparql", params={"query": TITLES})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/sparql-results+json")
    rows = answer.json()["results"]["bindings"]
    assert [row["title"]["value"] for row in rows] == ["Brain MR", "Chest CT"]


def test_select_as_xml_csv_tsv(client: TestClient, published: str) -> None:
    xml = client.post(
        "/sparql",
        content=TITLES,
        headers={"Content-Type": "application/sparql-query", "Accept": "application/sparql-results+xml"},
    )
    as_csv = client.post("/sparql", data={"query": TITLES}, headers={"Accept": "text/csv"})
    tsv = client.get("/sparql", params={"query": TITLES, "format": "tsv"})

    ns = {"r": "http://www.w3.org/2005/sparql-results#"}
    literals = ElementTree.fromstring(xml.content).findall(".//r:literal", ns)  # noqa: S314 - our own output
    assert [node.text for node in literals] == ["Brain MR", "Chest CT"]
    assert list(csv.reader(io.StringIO(as_csv.text))) == [["title"], ["Brain MR"], ["Chest CT"]]
    assert tsv.text.splitlines()[0] == "?title"
    assert tsv.text.splitlines()[1] == '"Brain MR"'


def test_ask_and_construct(client: TestClient, published: str) -> None:
    ask = client.get("/sparql", params={"query": "ASK { ?s a <http://www.w3.org/ns/dcat#Dataset> }"})
    construct = (
        "CONSTRUCT { ?d <http://purl.org/dc/terms/title> ?t }"
        " WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> ; <http://purl.org/dc/terms/title> ?t }"
    )
    turtle = client.get("/sparql", params={"query": construct})
    jsonld = client.get("/sparql", params={"query": construct}, headers={"Accept": "application/ld+json"})

    assert ask.json()["boolean"] is True
    assert turtle.headers["content-type"].startswith("text/turtle")
    assert len(rdflib.Graph().parse(data=turtle.text, format="turtle")) == 2
    assert len(rdflib.Graph().parse(data=jsonld.text, format="json-ld")) == 2


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"params": {"query": "INSERT DATA { <urn:a> <urn:b> <urn:c> }"}}, 400, "read-only"),
        ({"params": {"update": "DROP ALL"}}, 403, "read-only"),
        ({"params": {"query": "SELECT WHERE {"}}, 400, "does not parse"),
        ({"params": {}}, 400, "send a SPARQL query"),
        ({"params": {"query": "ASK {}", "format": "yaml"}}, 406, "format must be"),
    ],
)
def test_bad_requests_are_refused_clearly(client: TestClient, kwargs: dict, status: int, message: str) -> None:  # type: ignore[type-arg]
    answer = client.get("/sparql", **kwargs)

    assert answer.status_code == status
    assert message in answer.json()["detail"]


def test_updates_by_post_are_refused(client: TestClient) -> None:
    form = client.post("/sparql", data={"update": "DROP ALL"})
    raw = client.post("/sparql", content="DROP ALL", headers={"Content-Type": "application/sparql-update"})
    other = client.post("/sparql", content="ASK {}", headers={"Content-Type": "text/plain"})

    assert (form.status_code, raw.status_code, other.status_code) == (403, 403, 415)


def test_result_limit_and_timeout(tmp_path: Path, hub: HubFactory, station: EnrolledStation) -> None:
    hub.publish(station)
    every = "SELECT * WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"
    limited = Settings(state_dir=tmp_path / "limited", sparql_result_limit=5)
    slow = Settings(state_dir=tmp_path / "slow", sparql_timeout_s=0.05, sparql_result_limit=10**9)
    for settings, status, message in ((limited, 400, "more than 5 results"), (slow, 503, "longer than")):
        with TestClient(create_app(settings)) as other:
            other.event_hooks["request"].append(sign_station_requests)
            other_hub = HubFactory(other)
            enrolled = other_hub.enrol_station(other_hub.create_user("admin", Role.ADMIN), "site-a")
            for name in ("a", "b", "c"):
                other_hub.publish(enrolled, f"coll-{name}")
            answer = other.get("/sparql", params={"query": every})
            assert answer.status_code == status, answer.text
            assert message in answer.json()["detail"]


def test_standard_clients_over_http(
    settings: Settings, hub: HubFactory, station: EnrolledStation, published: str
) -> None:
    from rdflib.plugins.stores.sparqlstore import SPARQLStore
    from SPARQLWrapper import JSON, SPARQLWrapper

    hub.client.__exit__(None, None, None)  # release the store: the served app opens it again
    with serve_on_loopback(create_app(settings)) as base:
        wrapper = SPARQLWrapper(f"{base}/sparql")
        wrapper.setQuery(TITLES)
        wrapper.setReturnFormat(JSON)
        rows = wrapper.query().convert()["results"]["bindings"]  # type: ignore[index,call-overload]

        store = SPARQLStore(f"{base}/sparql")
        graph = rdflib.Graph(store=store)
        titles = sorted(str(row[0]) for row in graph.query(TITLES))  # type: ignore[index]

    assert [row["title"]["value"] for row in rows] == ["Brain MR", "Chest CT"]
    assert titles == ["Brain MR", "Chest CT"]
    assert json.dumps(rows)  # plain JSON all the way
