"""The catalog on an external SPARQL 1.1 store: a real Virtuoso (Debian's virtuoso-opensource), started here.

One Virtuoso serves the module; each test removes the graphs it made under ``http://hub.test``.
Updates go through ``/sparql-auth`` with digest credentials, as a production hub would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyoxigraph as ox
import pytest
from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, HubFactory, Researcher, make_summary
from pydantic import SecretStr

from hub import Settings, create_app
from hub.catalog.index import records_from_store
from hub.catalog.records import dataset_iri, distribution_triples
from hub.catalog.remote import RemoteSparqlStore, RemoteStoreError
from hub.catalog.store import CatalogStore
from protocol import CollectionMetadata, DiseaseCode
from station.catalog import collection_to_turtle

pytestmark = pytest.mark.slow

BASE = "http://hub.test"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_INI = """[Database]
DatabaseFile = {dir}/virtuoso.db
ErrorLogFile = {dir}/virtuoso.log
LockFile = {dir}/virtuoso.lck
TransactionFile = {dir}/virtuoso.trx
xa_persistent_file = {dir}/virtuoso.pxa
[TempDatabase]
DatabaseFile = {dir}/virtuoso-temp.db
TransactionFile = {dir}/virtuoso-temp.trx
[Parameters]
ServerPort = {sql_port}
DisableUnixSocket = 1
CaseMode = 2
DirsAllowed = .
NumberOfBuffers = 10000
MaxDirtyBuffers = 6000
[HTTPServer]
ServerPort = {http_port}
ServerRoot = {dir}
ServerThreads = 4
Charset = UTF-8
[SPARQL]
ResultSetMaxRows = 1000000
MaxQueryExecutionTime = 60
"""


@pytest.fixture(scope="module")
def virtuoso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh Virtuoso on loopback; yields its base URL."""
    binary = shutil.which("virtuoso-t")
    if binary is None:
        pytest.skip("virtuoso-t is not installed (apt-get install virtuoso-opensource; make test does it)")
    folder = tmp_path_factory.mktemp("virtuoso")
    http_port = _free_port()
    (folder / "virtuoso.ini").write_text(_INI.format(dir=folder, sql_port=_free_port(), http_port=http_port))
    log = (folder / "stdout.log").open("w")
    process = subprocess.Popen(
        [binary, "+foreground", "+configfile", str(folder / "virtuoso.ini")], cwd=folder, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/sparql", params={"query": "ASK {}"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Virtuoso did not start: {(folder / 'virtuoso.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


DBA_PASSWORD = "dba"  # Virtuoso's fresh database default, on loopback for this test only


def _remote(base: str, password: str = DBA_PASSWORD) -> RemoteSparqlStore:
    return RemoteSparqlStore(f"{base}/sparql", update_url=f"{base}/sparql-auth", username="dba", password=password)


@pytest.fixture
def remote(virtuoso: str) -> Iterator[RemoteSparqlStore]:
    """A client of the module's Virtuoso; the graphs of this hub are dropped afterwards."""
    store = _remote(virtuoso)
    yield store
    answer = store.query(
        f'SELECT DISTINCT ?g WHERE {{ GRAPH ?g {{ ?s ?p ?o }} FILTER (STRSTARTS(STR(?g), "{BASE}")) }}'
    )
    graphs = [row["g"] for row in answer]  # type: ignore[union-attr]
    if graphs:
        store.update(" ;\n".join(f"DROP SILENT GRAPH {graph}" for graph in graphs))
    store.close()


def _publish(catalog: CatalogStore, title: str = "Chest CT") -> str:
    metadata = CollectionMetadata(
        disease_codes=(DiseaseCode(system="ICD-10", code="C34.1", label="Upper lobe lung cancer"),),
        data_use=("DUO:0000006",),
        annotations=("segmentation",),
    )
    turtle = collection_to_turtle(
        station="site-a",
        collection="chest-ct",
        title=title,
        description="Thorax",
        summary=make_summary(subjects=12),
        issued=datetime(2026, 1, 1, tzinfo=UTC),
        metadata=metadata,
    )
    # a station may use blank nodes too: Virtuoso refuses them in INSERT DATA, the store must not
    turtle += (
        "\n<urn:trainyard:collection:site-a:chest-ct> <http://www.w3.org/ns/dcat#qualifiedRelation>"
        " [ a <http://www.w3.org/ns/dcat#Relationship> ] .\n"
    )
    iri = dataset_iri(BASE, "site-a", "chest-ct")
    catalog.replace_collection(
        iri,
        turtle,
        station="site-a",
        collection="chest-ct",
        extra=distribution_triples(BASE, "site-a", "chest-ct", station_name="site-a"),
    )
    return iri


def test_publication_replacement_and_history_on_virtuoso(remote: RemoteSparqlStore) -> None:
    catalog = CatalogStore(remote=remote)
    embedded = CatalogStore()

    iri = _publish(catalog)
    _publish(embedded)
    _publish(catalog, title="Chest CT, second edition")

    [record] = records_from_store(catalog.store)
    assert record.title == "Chest CT, second edition"
    assert (record.disease, record.data_use, record.annotation) == (
        ("ICD-10:C34.1",),
        ("DUO:0000006",),
        ("Segmentation",),
    )
    [same] = records_from_store(embedded.store)
    assert {**record.__dict__, "title": ""} == {**same.__dict__, "title": ""}  # the same projection as Oxigraph
    assert catalog.has_graph(iri) and catalog.has_graph(f"{iri}/version/1")
    assert not catalog.has_graph(f"{iri}/version/2")
    triples = catalog.graph_triples(iri)
    revision = ox.NamedNode("http://www.w3.org/ns/prov#wasRevisionOf")
    assert ox.Triple(ox.NamedNode(iri), revision, ox.NamedNode(f"{iri}/version/1")) in triples
    assert any(isinstance(triple.object, ox.BlankNode) for triple in triples)
    exported = list(ox.parse(catalog.export_turtle(iri), ox.RdfFormat.TURTLE))
    assert len(exported) == len(triples)


def test_bad_queries_and_credentials_get_clear_errors(virtuoso: str, remote: RemoteSparqlStore) -> None:
    with pytest.raises(SyntaxError, match="syntax error"):
        remote.query("SELECT ?x WHERE {")
    with pytest.raises(RemoteStoreError, match="refused the request"):
        _remote(virtuoso, password="wrong").update("DROP SILENT GRAPH <http://hub.test/nothing>")
    with pytest.raises(RemoteStoreError, match="cannot be reached"):
        RemoteSparqlStore(f"http://127.0.0.1:{_free_port()}/sparql").query("ASK {}")


@pytest.fixture
def settings(virtuoso: str, remote: RemoteSparqlStore, tmp_path: Path) -> Settings:
    """A hub whose catalog lives in the module's Virtuoso (overrides the hub tests' embedded store)."""
    return Settings(
        state_dir=tmp_path / "hub",
        base_iri=BASE,
        catalog_sparql_query_url=f"{virtuoso}/sparql",
        catalog_sparql_update_url=f"{virtuoso}/sparql-auth",
        catalog_sparql_username="dba",
        catalog_sparql_password=SecretStr(DBA_PASSWORD),
    )


def test_the_hub_runs_on_virtuoso(
    settings: Settings, client: TestClient, hub: HubFactory, station: EnrolledStation, researcher: Researcher
) -> None:
    hub.publish(station, "chest-ct", summary=make_summary(subjects=42))

    search = {"query": "{ search { totalCount nodes { id subjects } } }"}
    found = client.post("/graphql", json=search, headers=researcher.headers).json()["data"]["search"]
    titles = "SELECT ?t WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> ; <http://purl.org/dc/terms/title> ?t }"
    accept = {"Accept": "application/sparql-results+json"}
    sparql = client.get("/sparql", params={"query": titles}, headers={**accept, **researcher.headers})
    guest = client.get("/sparql", params={"query": titles}, headers=accept)
    dataset = client.get("/dataset/site-a/chest-ct", headers={"Accept": "text/turtle"})

    assert found == {"totalCount": 1, "nodes": [{"id": "site-a/chest-ct", "subjects": 42}]}
    assert sparql.status_code == 200, sparql.text
    assert guest.status_code == 401 and "keeps no guests' view" in guest.json()["detail"]  # exact counts: members
    assert "42" not in dataset.text and "40" in dataset.text  # the FAIR Data Point rounds guests' counts
    assert [row["t"]["value"] for row in sparql.json()["results"]["bindings"]] == ["Chest CT"]
    assert dataset.status_code == 200 and "Chest CT" in dataset.text
    with TestClient(create_app(settings)) as restarted:  # the index is rebuilt from Virtuoso at start-up
        answer = restarted.post("/graphql", json=search).json()
    assert answer["data"]["search"]["totalCount"] == 1
