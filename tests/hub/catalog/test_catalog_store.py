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

    kept = {triple.predicate.value for triple in store.graph_triples(GRAPH)}
    assert kept == {  # the new record, and the links to its history
        "http://purl.org/dc/terms/title",
        "http://www.w3.org/ns/prov#wasRevisionOf",
        "http://purl.org/dc/terms/modified",
    }


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


def test_republication_keeps_earlier_versions_queryable() -> None:
    store = CatalogStore()
    title = "<http://purl.org/dc/terms/title>"
    for name in ("First", "Second", "Third"):
        store.replace_collection(
            GRAPH,
            f'<{URN}> a <http://www.w3.org/ns/dcat#Dataset> ; {title} "{name}" .',
            station="site-a",
            collection="chest-ct",
        )

    current = {(t.predicate.value, str(t.object)) for t in store.graph_triples(GRAPH)}
    first, second = (store.graph_triples(f"{GRAPH}/version/{n}") for n in (1, 2))
    titles = store.store.query(
        f"SELECT ?v ?t WHERE {{ ?v <http://purl.org/dc/terms/isVersionOf> <{GRAPH}> ; {title} ?t }} ORDER BY ?v",
        use_default_graph_as_union=True,
    )

    assert ("http://purl.org/dc/terms/title", '"Third"') in current
    assert ("http://www.w3.org/ns/prov#wasRevisionOf", f"<{GRAPH}/version/2>") in current
    assert any(t.predicate.value == "http://purl.org/dc/terms/modified" for t in store.graph_triples(GRAPH))
    assert [row["t"].value for row in titles] == ["First", "Second"]
    assert all(t.object != ox.NamedNode("http://www.w3.org/ns/dcat#Dataset") for t in first + second)


def test_earlier_versions_keep_no_counts() -> None:
    store = CatalogStore()
    count = "<http://healthdataportal.eu/ns/health#numberOfUniqueIndividuals>"
    for subjects in (12, 14):  # the difference, 2, is below k
        store.replace_collection(
            GRAPH,
            f'<{URN}> <http://purl.org/dc/terms/title> "Chest CT" ; {count} {subjects} .',
            station="site-a",
            collection="chest-ct",
        )

    archived = store.graph_triples(f"{GRAPH}/version/1")

    assert any(t.predicate.value == "http://purl.org/dc/terms/title" for t in archived)
    assert not [t for t in archived if "numberOfUniqueIndividuals" in t.predicate.value]
    assert any("numberOfUniqueIndividuals" in t.predicate.value for t in store.graph_triples(GRAPH))


def test_versions_stay_out_of_the_search_index() -> None:
    from datetime import UTC, datetime

    from hub.catalog.index import records_from_store
    from protocol import CollectionSummary
    from station.catalog import collection_to_turtle

    store = CatalogStore()
    summary = CollectionSummary(
        k=5, subjects=12, studies=12, series=12, instances=12, modalities={}, body_parts={}, manufacturers={}
    )
    for name in ("A", "B"):
        turtle = collection_to_turtle(
            station="site-a",
            collection="chest-ct",
            title=name,
            description="d",
            summary=summary,
            issued=datetime(2026, 1, 1, tzinfo=UTC),
        )
        store.replace_collection(GRAPH, turtle, station="site-a", collection="chest-ct")

    assert [record.title for record in records_from_store(store.store)] == ["B"]
