from datetime import UTC, datetime

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib import namespace as ns

import protocol
from protocol import CollectionSummary
from station.catalog import TY, build_publication, collection_to_turtle

ISSUED = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
SUBJECT = URIRef("urn:trainyard:collection:site-a:chest-ct")


def _summary(**changes: object) -> CollectionSummary:
    values: dict[str, object] = {
        "k": 5,
        "subjects": 16,
        "studies": 26,
        "series": 26,
        "instances": 156,
        "modalities": {"CT": 13, "MR": None},
        "body_parts": {"CHEST": 8, "HEAD": None},
        "manufacturers": {"SIEMENS": 16},
    }
    values.update(changes)
    return CollectionSummary.model_validate(values)


def _graph(summary: CollectionSummary) -> Graph:
    turtle = collection_to_turtle(
        station="site-a",
        collection="chest-ct",
        title="Chest CT",
        description="Synthetic chest CT",
        summary=summary,
        issued=ISSUED,
    )
    return Graph().parse(data=turtle, format="turtle")


def test_collection_to_turtle_parses_as_dcat_dataset() -> None:
    graph = _graph(_summary())

    assert (SUBJECT, ns.RDF.type, ns.DCAT.Dataset) in graph
    assert graph.value(SUBJECT, ns.DCTERMS.title) == Literal("Chest CT")
    assert graph.value(SUBJECT, ns.DCTERMS.description) == Literal("Synthetic chest CT")
    assert graph.value(SUBJECT, ns.DCTERMS.identifier) == Literal(str(SUBJECT), datatype=ns.XSD.anyURI)
    assert graph.value(SUBJECT, ns.DCTERMS.issued) == Literal(ISSUED.isoformat(), datatype=ns.XSD.dateTime)
    assert graph.value(SUBJECT, TY.station) == Literal("site-a")


def test_collection_to_turtle_counts_are_integers() -> None:
    graph = _graph(_summary())

    actual = graph.value(SUBJECT, TY.numberOfSubjects)

    assert isinstance(actual, Literal)
    assert actual.datatype == ns.XSD.integer
    assert actual.toPython() == 16
    assert graph.value(SUBJECT, TY.numberOfInstances).toPython() == 156  # type: ignore[union-attr]


def test_collection_to_turtle_omits_suppressed_counts() -> None:
    graph = _graph(_summary(subjects=None, studies=None))

    assert graph.value(SUBJECT, TY.numberOfSubjects) is None
    assert graph.value(SUBJECT, TY.numberOfStudies) is None
    assert graph.value(SUBJECT, TY.numberOfSeries) is not None


def test_collection_to_turtle_lists_only_unsuppressed_values() -> None:
    graph = _graph(_summary())

    assert set(graph.objects(SUBJECT, TY.modality)) == {URIRef("http://dicom.nema.org/resources/ontology/DCM/CT")}
    assert set(graph.objects(SUBJECT, TY.bodyPart)) == {URIRef("http://snomed.info/id/816094009")}  # Chest, CID 4031
    assert set(graph.objects(SUBJECT, TY.manufacturer)) == {Literal("SIEMENS")}


def test_unmapped_body_part_stays_text_and_k_is_published() -> None:
    graph = _graph(_summary(body_parts={"LEFTTOE": 9}))

    assert set(graph.objects(SUBJECT, TY.bodyPartText)) == {Literal("LEFTTOE")}
    assert graph.value(SUBJECT, TY.disclosureThreshold).toPython() == 5  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ['Title with "quotes"', "Ünïcödé\nnew line", "<script>"])
def test_collection_to_turtle_escapes_text(text: str) -> None:
    turtle = collection_to_turtle(
        station="s", collection="c", title=text, description=text, summary=_summary(), issued=ISSUED
    )

    graph = Graph().parse(data=turtle, format="turtle")

    assert graph.value(URIRef("urn:trainyard:collection:s:c"), ns.DCTERMS.title) == Literal(text)


def test_build_publication_is_signed_by_the_station() -> None:
    keys = protocol.generate_key_pair()

    publication = build_publication(
        station="site-a", collection="chest-ct", title="Chest CT", description="", summary=_summary(), keys=keys
    )

    protocol.verify_publication(publication, keys.signing_public)
    assert "dcat:Dataset" in publication.turtle
    with pytest.raises(protocol.SignatureError):
        protocol.verify_publication(publication.model_copy(update={"title": "Other"}), keys.signing_public)
