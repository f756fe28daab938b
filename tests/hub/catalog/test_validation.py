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


def test_a_small_breakdown_count_is_refused() -> None:
    node = f"<{URN}#sex-X>"
    small = (
        f"<{URN}> <https://w3id.org/trainyard/ontology#breakdown> {node} .\n"
        f"{node} <https://w3id.org/trainyard/ontology#subjects> 2 ."
    )

    assert any("breakdown, quality flag or range" in p for p in problems(record(station_turtle() + "\n" + small)))


def test_a_data_use_condition_that_is_not_duo_is_refused() -> None:
    bogus = (
        f"<{URN}> <http://www.w3.org/ns/odrl/2/hasPolicy> <{URN}#policy> .\n"
        f"<{URN}#policy> <http://www.w3.org/ns/odrl/2/permission> <{URN}#perm> .\n"
        f"<{URN}#perm> <http://www.w3.org/ns/odrl/2/constraint> <{URN}#c> .\n"
        f"<{URN}#c> <http://www.w3.org/ns/odrl/2/rightOperand> <http://example.org/anything> ."
    )

    assert any("DUO term" in p for p in problems(record(station_turtle() + "\n" + bogus)))


def test_a_record_with_every_metadata_field_conforms() -> None:
    from protocol import CollectionMetadata, DiseaseCode, NumericRange

    summary = CollectionSummary(
        k=5,
        subjects=12,
        studies=20,
        series=30,
        instances=300,
        modalities={"CT": 12},
        body_parts={"CHEST": 12},
        manufacturers={"SIEMENS": 12},
        sexes={"F": 7, "M": 5},
        age_bands={"40-59": 6, "60-79": 6},
        min_typical_age=41,
        max_typical_age=77,
        quality={"missing_spacing": 5},
        coverage={"SliceThickness": 100.0},
        ranges={"kvp": NumericRange(low=100, median=120, high=140, unit="kV", subjects=12)},
    )
    metadata = CollectionMetadata(
        keywords=("lung",),
        disease_codes=(DiseaseCode(system="SNOMED-CT", code="363358000", label="Lung cancer"),),
        data_use=("DUO:0000006",),
        license="CC-BY-4.0",
        contact_name="Steward",
        annotations=("segmentation",),
    )
    turtle = collection_to_turtle(
        station="site-a",
        collection="chest-ct",
        title="Chest CT",
        description="Thorax CT",
        summary=summary,
        issued=datetime(2026, 1, 1, tzinfo=UTC),
        metadata=metadata,
    )

    validate_record(record(turtle))


def test_the_json_ld_context_is_packaged() -> None:
    import importlib.resources
    import json

    context = json.loads((importlib.resources.files("ontology") / "context.jsonld").read_text("utf-8"))

    assert context["@context"]["ty"] == "https://w3id.org/trainyard/ontology#"
