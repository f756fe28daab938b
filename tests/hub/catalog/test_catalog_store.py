"""The catalog store: a station's Turtle re-based on the hub, and nothing but its own collection."""

import pyoxigraph as ox
import pytest

from hub.catalog.records import distribution_triples
from hub.catalog.store import CatalogStore, graph_iri_for_collection
from protocol import ProtocolError

URN = "urn:trainyard:collection:site-a:chest-ct"
GRAPH = graph_iri_for_collection("http://hub.test", "site-a", "chest-ct")
TURTLE = f"""
@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
<{URN}> a dcat:Dataset ; dct:title "Chest CT" ; dcat:qualifiedRelation [ dct:title "note" ] .
<{URN}#policy> dct:title "policy" .
"""


def test_replace_collection_rebases_the_urn_and_adds_the_hub_triples() -> None:
    store = CatalogStore()
    extra = distribution_triples("http://hub.test", "site-a", "chest-ct", station_name="site-a")

    count = store.replace_collection(GRAPH, TURTLE, station="site-a", collection="chest-ct", extra=extra)

    subjects = {triple.subject for triple in store.graph_triples(GRAPH) if isinstance(triple.subject, ox.NamedNode)}
    assert GRAPH == "http://hub.test/dataset/site-a/chest-ct"
    assert ox.NamedNode(GRAPH) in subjects and ox.NamedNode(GRAPH + "#policy") in subjects
    assert all("urn:trainyard" not in str(triple) for triple in store.graph_triples(GRAPH))
    assert count == 5 + len(extra)


def test_republication_replaces_the_graph() -> None:
    store = CatalogStore()
    store.replace_collection(GRAPH, TURTLE, station="site-a", collection="chest-ct")

    store.replace_collection(
        GRAPH, f'<{URN}> <http://purl.org/dc/terms/title> "New" .', station="site-a", collection="chest-ct"
    )

    assert len(store.graph_triples(GRAPH)) == 1


@pytest.mark.parametrize(
    ("turtle", "message"),
    [
        ('<http://hub.test/catalog/trainyard> <http://purl.org/dc/terms/title> "pwned" .', "not collection"),
        ('<urn:trainyard:collection:site-b:x> <http://purl.org/dc/terms/title> "x" .', "not collection"),
        (f"<{URN}> <http://purl.org/dc/terms/relation> <urn:trainyard:collection:site-b:x> .", "another collection"),
        (f"<{URN}> <http://purl.org/dc/terms/title> ", "does not parse"),
    ],
)
def test_a_station_describes_only_its_own_collection(turtle: str, message: str) -> None:
    store = CatalogStore()

    with pytest.raises(ProtocolError, match=message):
        store.replace_collection(GRAPH, turtle, station="site-a", collection="chest-ct")
    assert store.graph_triples(GRAPH) == []
