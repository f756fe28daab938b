"""The FAIR Data Point: resolvable records, content negotiation, LDP navigation, the index ping."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import rdflib
from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, HubFactory
from rdflib.namespace import DCAT, DCTERMS, RDF

from hub import Settings, create_app

LDP = rdflib.Namespace("http://www.w3.org/ns/ldp#")
FDP = rdflib.Namespace("https://w3id.org/fdp/fdp-o#")
BASE = "http://hub.test"


@pytest.fixture
def published(hub: HubFactory, station: EnrolledStation) -> list[str]:
    return [hub.publish(station, "chest-ct", title="Chest CT"), hub.publish(station, "brain-mr", title="Brain MR")]


def graph_of(answer: object, fmt: str = "turtle") -> rdflib.Graph:
    return rdflib.Graph().parse(data=answer.text, format=fmt)  # type: ignore[attr-defined]


def test_fdp_points_at_its_catalog(client: TestClient) -> None:
    answer = client.get("/", headers={"Accept": "text/turtle"})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/turtle")
    graph = graph_of(answer)
    fdp = rdflib.URIRef(f"{BASE}/")
    assert (fdp, RDF.type, FDP.FAIRDataPoint) in graph
    assert (fdp, FDP.metadataCatalog, rdflib.URIRef(f"{BASE}/catalog/trainyard")) in graph
    assert f"<{BASE}/catalog/trainyard>" in answer.headers["link"]


def test_browser_is_sent_to_the_docs(client: TestClient) -> None:
    answer = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/docs"


def test_catalog_lists_datasets_in_an_ldp_container(client: TestClient, published: list[str]) -> None:
    graph = graph_of(client.get("/catalog/trainyard"))

    catalog = rdflib.URIRef(f"{BASE}/catalog/trainyard")
    datasets = set(graph.objects(catalog, DCAT.dataset))
    assert datasets == {
        rdflib.URIRef(f"{BASE}/dataset/site-a/chest-ct"),
        rdflib.URIRef(f"{BASE}/dataset/site-a/brain-mr"),
    }
    container = next(graph.subjects(RDF.type, LDP.DirectContainer))
    assert set(graph.objects(container, LDP.contains)) == datasets
    assert (catalog, RDF.type, DCAT.Catalog) in graph


def test_dataset_iri_resolves_to_its_record(client: TestClient, published: list[str]) -> None:
    graph = graph_of(client.get("/dataset/site-a/chest-ct"))

    dataset = rdflib.URIRef(f"{BASE}/dataset/site-a/chest-ct")
    assert (dataset, RDF.type, DCAT.Dataset) in graph
    assert (dataset, DCTERMS.title, rdflib.Literal("Chest CT")) in graph
    distribution = graph.value(dataset, DCAT.distribution)
    assert str(distribution) == f"{BASE}/distribution/site-a/chest-ct"
    assert graph.value(distribution, DCAT.accessURL) is not None


def test_distribution_iri_resolves(client: TestClient, published: list[str]) -> None:
    graph = graph_of(client.get("/distribution/site-a/chest-ct"))

    distribution = rdflib.URIRef(f"{BASE}/distribution/site-a/chest-ct")
    assert (distribution, RDF.type, DCAT.Distribution) in graph
    assert set(graph.subjects()) == {distribution}


@pytest.mark.parametrize(
    ("kwargs", "media", "parser"),
    [
        ({"headers": {"Accept": "application/ld+json"}}, "application/ld+json", "json-ld"),
        ({"headers": {"Accept": "application/rdf+xml"}}, "application/rdf+xml", "xml"),
        ({"headers": {"Accept": "application/n-triples"}}, "application/n-triples", "nt"),
        ({"params": {"format": "jsonld"}}, "application/ld+json", "json-ld"),
        ({"headers": {"Accept": "text/turtle;q=0.5, application/rdf+xml;q=0.9"}}, "application/rdf+xml", "xml"),
        ({}, "text/turtle", "turtle"),
    ],
)
def test_content_negotiation(client: TestClient, published: list[str], kwargs: dict, media: str, parser: str) -> None:  # type: ignore[type-arg]
    answer = client.get("/dataset/site-a/chest-ct", **kwargs)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media)
    assert len(graph_of(answer, parser)) > 5


def test_unknown_things_are_clear_errors(client: TestClient, published: list[str]) -> None:
    assert client.get("/dataset/site-a/nope").status_code == 404
    assert client.get("/catalog/other").status_code == 404
    assert client.get("/dataset/site-a/chest-ct", headers={"Accept": "image/png"}).status_code == 406
    assert client.get("/dataset/site-a/chest-ct", params={"format": "yaml"}).status_code == 406


class _Index(BaseHTTPRequestHandler):
    received: list[dict[str, str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        _Index.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def index_url() -> Iterator[str]:
    _Index.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_hub_pings_the_fdp_index_at_start(tmp_path: Path, index_url: str) -> None:
    unreachable = "http://127.0.0.1:9/"  # nothing listens: logged, never fatal
    settings = Settings(state_dir=tmp_path / "hub", base_iri=BASE, fdp_index_urls=[unreachable, index_url])

    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 10
        while not _Index.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/").status_code == 200

    assert _Index.received == [{"clientUrl": f"{BASE}/"}]


def test_every_iri_the_records_name_resolves(
    client: TestClient, hub: HubFactory, station: EnrolledStation, published: list[str]
) -> None:
    hub.publish(station, "chest-ct", title="Chest CT, second harvest")  # the first record becomes version 1

    catalogs = graph_of(client.get("/catalogs"))
    datasets = graph_of(client.get("/catalog/trainyard/datasets"))
    agent = graph_of(client.get("/station/site-a"))
    version = client.get("/dataset/site-a/chest-ct/version/1")

    fdp, catalog = rdflib.URIRef(f"{BASE}/"), rdflib.URIRef(f"{BASE}/catalog/trainyard")
    assert (rdflib.URIRef(f"{BASE}/catalogs"), LDP.membershipResource, fdp) in catalogs
    assert (rdflib.URIRef(f"{BASE}/catalogs"), LDP.contains, catalog) in catalogs
    contained = set(datasets.objects(rdflib.URIRef(f"{BASE}/catalog/trainyard/datasets"), LDP.contains))
    assert contained == {
        rdflib.URIRef(f"{BASE}/dataset/site-a/chest-ct"),
        rdflib.URIRef(f"{BASE}/dataset/site-a/brain-mr"),
    }
    station_agent = rdflib.URIRef(f"{BASE}/station/site-a")
    assert set(agent.subjects(DCTERMS.publisher, station_agent)) == contained
    assert version.status_code == 200
    old = graph_of(version)
    assert (
        rdflib.URIRef(f"{BASE}/dataset/site-a/chest-ct/version/1"),
        DCTERMS.title,
        rdflib.Literal("Chest CT"),
    ) in old
    for missing in ("/station/nowhere", "/dataset/site-a/chest-ct/version/9", "/catalog/other/datasets"):
        assert client.get(missing).status_code == 404, missing
    assert client.get("/dataset/site-a/chest-ct/version/0").status_code == 422
