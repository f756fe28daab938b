"""The guests' view beside the embedded store: rounded counts, written with every publication, rebuilt when in doubt."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyoxigraph as ox

from hub.catalog.guest import guest_count, guest_triples
from hub.catalog.records import distribution_triples
from hub.catalog.store import CatalogStore
from protocol import CollectionSummary
from station.catalog import collection_to_turtle

TY = "https://w3id.org/trainyard/ontology#"
BASE = "http://hub.test"
SUBJECTS = f"SELECT ?n WHERE {{ ?d <{TY}numberOfSubjects> ?n }}"


def _publish(catalog: CatalogStore, name: str, subjects: int) -> None:
    summary = CollectionSummary(
        k=5,
        subjects=subjects,
        studies=subjects,
        series=subjects * 3,
        instances=subjects * 90,
        modalities={"CT": subjects},
        body_parts={"CHEST": subjects},
        manufacturers={"ACME": subjects},
    )
    turtle = collection_to_turtle(
        station="site-a",
        collection=name,
        title=name,
        description="",
        summary=summary,
        issued=datetime(2026, 1, 1, tzinfo=UTC),
    )
    catalog.replace_collection(
        f"{BASE}/dataset/site-a/{name}",
        turtle,
        station="site-a",
        collection=name,
        extra=distribution_triples(BASE, "site-a", name, station_name="site-a"),
    )


def _subjects(store: ox.Store | None) -> list[int]:
    assert store is not None
    return sorted(int(row["n"].value) for row in store.query(SUBJECTS, use_default_graph_as_union=True))  # type: ignore[union-attr]


def test_counts_round_down_and_nothing_else_changes() -> None:
    subject = ox.NamedNode("urn:x")
    triples = [
        ox.Triple(
            subject,
            ox.NamedNode(TY + "numberOfSeries"),
            ox.Literal("113", datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer")),
        ),
        ox.Triple(
            subject,
            ox.NamedNode(TY + "disclosureThreshold"),
            ox.Literal("5", datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer")),
        ),
    ]

    shown = guest_triples(triples)

    assert [triple.object.value for triple in shown] == ["110", "5"]  # type: ignore[union-attr]
    assert shown[0].object.datatype == triples[0].object.datatype  # type: ignore[union-attr]
    assert [guest_count(n) for n in (0, 5, 9, 10, 19)] == [0, 0, 0, 10, 10]


def test_publications_write_both_and_a_reopened_store_keeps_its_view(tmp_path: Path) -> None:
    catalog = CatalogStore(tmp_path / "catalog")
    _publish(catalog, "a", 37)
    _publish(catalog, "b", 12)
    _publish(catalog, "a", 45)

    assert _subjects(catalog.store) == [12, 45]
    assert _subjects(catalog.guest_store) == [10, 40]
    catalog.close()
    reopened = CatalogStore(tmp_path / "catalog")
    assert _subjects(reopened.guest_store) == [10, 40]
    assert len(reopened.guest_store or ()) == len(reopened.store)


def test_a_stale_missing_or_outdated_view_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    folder, marker = tmp_path / "catalog", tmp_path / "catalog-guest.stale"
    catalog = CatalogStore(folder)
    _publish(catalog, "a", 37)
    catalog.close()

    marker.touch()  # a crash between the two writes
    catalog = CatalogStore(folder)
    assert _subjects(catalog.guest_store) == [30] and not marker.exists()
    catalog.close()

    store = ox.Store(str(folder))  # written behind the hub's back (a bulk load): the sizes differ
    graph = ox.NamedNode(f"{BASE}/dataset/site-a/z")
    store.add(
        ox.Quad(
            graph,
            ox.NamedNode(TY + "numberOfSubjects"),
            ox.Literal("23", datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer")),
            graph,
        )
    )
    store.flush()
    del store
    catalog = CatalogStore(folder)
    assert _subjects(catalog.guest_store) == [20, 30]
    catalog.close()


def test_an_in_memory_catalog_has_a_guest_view() -> None:
    catalog = CatalogStore()
    _publish(catalog, "a", 37)

    assert _subjects(catalog.guest_store) == [30]
