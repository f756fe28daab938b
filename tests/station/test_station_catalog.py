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


def _full_graph() -> Graph:
    from protocol import CollectionMetadata, DiseaseCode, NumericRange

    summary = _summary(
        sexes={"F": 9, "M": 7, "O": None},
        min_typical_age=40,
        max_typical_age=77,
        quality={"missing_spacing": 6, "rare": None},
        coverage={"SliceThickness": 97.5},
        ranges={
            "slice_thickness": NumericRange(low=0.6, median=1.0, high=2.5, unit="mm", subjects=16),
            "kvp": NumericRange(low=100, median=120, high=140, unit="kV", subjects=3),
        },
    )
    metadata = CollectionMetadata(
        keywords=("lung", "screening"),
        disease_codes=(DiseaseCode(system="ICD-10", code="C34", label="Lung cancer"),),
        data_use=("DUO:0000007", "DUO:0000015"),
        license="https://creativecommons.org/licenses/by/4.0/",
        contact_name="Data steward",
        contact_email="steward@site.test",
        health_categories=("cancer",),
        annotations=("segmentation", "bounding-box"),
    )
    turtle = collection_to_turtle(
        station="site-a",
        collection="chest-ct",
        title="Chest CT",
        description="Synthetic chest CT",
        summary=summary,
        issued=ISSUED,
        metadata=metadata,
    )
    return Graph().parse(data=turtle, format="turtle")


def test_collection_to_turtle_metadata_keywords_license_contact_theme() -> None:
    graph = _full_graph()

    assert set(graph.objects(SUBJECT, ns.DCAT.keyword)) == {Literal("lung"), Literal("screening")}
    assert graph.value(SUBJECT, ns.DCTERMS.license) == URIRef("https://creativecommons.org/licenses/by/4.0/")
    assert (SUBJECT, ns.DCAT.theme, URIRef("http://publications.europa.eu/resource/authority/data-theme/HEAL")) in graph
    contact = graph.value(SUBJECT, ns.DCAT.contactPoint)
    assert graph.value(contact, URIRef("http://www.w3.org/2006/vcard/ns#hasEmail")) == URIRef(
        "mailto:steward@site.test"
    )
    assert set(graph.objects(SUBJECT, TY.annotationType)) == {TY.Segmentation, TY.BoundingBox}


def test_collection_to_turtle_duo_policy_and_disease_codes() -> None:
    graph = _full_graph()
    odrl = ns.Namespace("http://www.w3.org/ns/odrl/2/")
    health = ns.Namespace("http://healthdataportal.eu/ns/health#")

    duo = {
        str(operand)
        for policy in graph.objects(SUBJECT, odrl.hasPolicy)
        for permission in graph.objects(policy, odrl.permission)
        for constraint in graph.objects(permission, odrl.constraint)
        for operand in graph.objects(constraint, odrl.rightOperand)
    }
    assert duo == {"http://purl.obolibrary.org/obo/DUO_0000007", "http://purl.obolibrary.org/obo/DUO_0000015"}
    code = graph.value(SUBJECT, health.hasCodeValues)
    assert graph.value(code, TY.diseaseCode) == URIRef("http://id.who.int/icd/release/10/C34")
    assert graph.value(SUBJECT, health.hasCodingSystem) == URIRef("http://id.who.int/icd/release/10/")
    assert graph.value(SUBJECT, health.minTypicalAge).toPython() == 40  # type: ignore[union-attr]


def test_collection_to_turtle_suppressed_details_are_left_out() -> None:
    graph = _full_graph()

    sexes = {str(graph.value(node, TY.value)) for node in graph.objects(SUBJECT, TY.breakdown)}
    flags = {str(graph.value(node, TY.flag)) for node in graph.objects(SUBJECT, TY.qualityFlag)}
    ranges = {str(graph.value(node, TY.parameter)) for node in graph.objects(SUBJECT, TY.acquisitionRange)}
    assert sexes == {"F", "M"}
    assert flags == {"missing_spacing"}
    assert ranges == {"slice_thickness"}  # kvp covers fewer than k subjects


def test_check_record_passes_what_the_station_makes_and_names_what_breaks_the_shapes() -> None:
    from station.catalog import check_record

    good = collection_to_turtle(
        station="site-a",
        collection="chest-ct",
        title="Chest CT",
        description="d",
        summary=CollectionSummary(
            k=5,
            subjects=12,
            studies=12,
            series=30,
            instances=900,
            modalities={"CT": 12},
            body_parts={"CHEST": 12},
            manufacturers={"ACME": 12},
        ),
        issued=datetime(2026, 1, 1, tzinfo=UTC),
    )
    broken = good.replace("dct:title", "dct:alternative")

    assert check_record(good, station="site-a", collection="chest-ct") == []
    problems = check_record(broken, station="site-a", collection="chest-ct")
    assert problems and any("title" in problem for problem in problems)
