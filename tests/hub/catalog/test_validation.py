"""SHACL validation of collection records, with reports a person can act on."""

from datetime import UTC, datetime

import pyoxigraph as ox
import pytest

from hub.catalog.records import distribution_triples
from hub.catalog.store import CatalogStore, graph_iri_for_collection
from hub.catalog.validation import RecordInvalid, validate_record
from protocol import CollectionSummary
from station.catalog import collection_to_turtle

GRAPH = graph_iri_for_collection("http://hub.test", "site-a", "chest-ct")
URN = "urn:trainyard:collection:site-a:chest-ct"


def record(turtle: str) -> list[ox.Triple]:
    store = CatalogStore()
    extra = distribution_triples("http://hub.test", "site-a", "chest-ct", station_name="site-a")
    store.replace_collection(GRAPH, turtle, station="site-a", collection="chest-ct", extra=extra)
    return store.graph_triples(GRAPH)


def station_turtle(**summary: object) -> str:
    fields: dict[str, object] = {
        "k": 5,
        "subjects": 12,
        "studies": 20,
        "series": 30,
        "instances": 300,
        "modalities": {"CT": 12, "MR": None},
        "body_parts": {"CHEST": 12},
        "manufacturers": {"SIEMENS": 12},
    }
    return collection_to_turtle(
        station="site-a",
        collection="chest-ct",
        title="Chest CT",
        description="Thorax CT",
        summary=CollectionSummary.model_validate({**fields, **summary}),
        issued=datetime(2026, 1, 1, tzinfo=UTC),
    )


def problems(triples: list[ox.Triple]) -> list[str]:
    with pytest.raises(RecordInvalid) as caught:
        validate_record(triples)
    return [f"{problem.path}: {problem.message}" for problem in caught.value.problems]


def test_a_stations_record_conforms() -> None:
    validate_record(record(station_turtle()))


def test_missing_title_is_named() -> None:
    triples = [t for t in record(station_turtle()) if t.predicate != ox.NamedNode("http://purl.org/dc/terms/title")]

    assert any(p.startswith("dct:title:") for p in problems(triples))


def test_a_small_count_is_refused() -> None:
    small = f"<{URN}> <https://w3id.org/trainyard/ontology#numberOfSeries> 3 ."
    turtle = station_turtle(series=None) + "\n" + small

    assert any("between 1 and k-1" in p for p in problems(record(turtle)))


def test_an_unknown_modality_is_refused() -> None:
    bogus = (
        f"<{URN}> <https://w3id.org/trainyard/ontology#modality> <http://dicom.nema.org/resources/ontology/DCM/XYZ> ."
    )

    assert any(p.startswith("ty:modality:") for p in problems(record(station_turtle() + "\n" + bogus)))


def test_concurrent_validations_do_not_trip_over_each_other() -> None:
    from concurrent.futures import ThreadPoolExecutor

    triples = record(station_turtle())
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _n: validate_record(triples), range(12)))
