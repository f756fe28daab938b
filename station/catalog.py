"""A collection's catalog entry: DCAT Turtle and the signed publication sent to the hub.

The dataset's IRI is ``urn:trainyard:collection:<station>:<collection>``. Counts use the
Trainyard ontology (``ty:``, https://w3id.org/trainyard/ontology#); a suppressed count is
omitted, never published as a number, and so is a modality, body part or manufacturer whose
subject count is suppressed.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import threading
from datetime import datetime

from rdflib import RDF, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, SKOS

import protocol
from ontology import CODE_LISTS, CODING_SYSTEMS, HEALTHDCATAP, SHAPES
from protocol import CollectionMetadata, CollectionPublication, CollectionSummary, KeyPair

__all__ = ["TY", "build_publication", "check_record", "collection_iri", "collection_to_turtle"]

TY = Namespace("https://w3id.org/trainyard/ontology#")
HEALTH = Namespace(HEALTHDCATAP)  # the one constant of the unratified namespace
DCM = "http://dicom.nema.org/resources/ontology/DCM/"
ODRL = Namespace("http://www.w3.org/ns/odrl/2/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
OBO = "http://purl.obolibrary.org/obo/"
HEAL = URIRef("http://publications.europa.eu/resource/authority/data-theme/HEAL")
_SLUG = re.compile(r"[^A-Za-z0-9]+")
_CS_VALUE = re.compile(r"^[A-Z0-9_]{1,16}$")


@functools.cache
def body_part_concepts() -> dict[str, str]:
    """Body Part Examined defined term → SNOMED CT concept IRI, from the generated code list."""
    text = (importlib.resources.files("ontology") / "codes" / "body-part.ttl").read_text("utf-8")
    graph = Graph().parse(data=text, format="turtle")
    notation = URIRef("http://www.w3.org/2004/02/skos/core#notation")
    return {str(value): str(concept) for concept, value in graph.subject_objects(notation)}


def collection_iri(station: str, collection: str) -> URIRef:
    """Return the IRI of a collection.

    Examples
    --------
    >>> str(collection_iri("site-a", "chest-ct"))
    'urn:trainyard:collection:site-a:chest-ct'
    """
    return URIRef(f"urn:trainyard:collection:{station}:{collection}")


def collection_to_turtle(
    *,
    station: str,
    collection: str,
    title: str,
    description: str,
    summary: CollectionSummary,
    issued: datetime,
    metadata: CollectionMetadata | None = None,
) -> str:
    """Describe a collection as a ``dcat:Dataset`` in Turtle.

    Parameters
    ----------
    station, collection
        The slugs naming the collection.
    title, description
        Human-readable text of the collection.
    summary
        Its disclosure-controlled counts; suppressed values are left out.
    issued
        When the description was made (``dct:issued``).
    metadata
        What people say about it (keywords, disease codes, DUO data-use conditions, licence,
        contact, annotation types); see ``docs/catalog-model.md``.

    Returns
    -------
    str
        The Turtle document.
    """
    graph = Graph()
    graph.bind("dcat", DCAT)
    graph.bind("dct", DCTERMS)
    graph.bind("ty", TY)
    graph.bind("healthdcatap", HEALTH)
    subject = collection_iri(station, collection)
    graph.add((subject, RDF.type, DCAT.Dataset))
    graph.add((subject, DCTERMS.title, Literal(title)))
    graph.add((subject, DCTERMS.description, Literal(description)))
    graph.add((subject, DCTERMS.identifier, Literal(str(subject), datatype=XSD.anyURI)))
    graph.add((subject, DCTERMS.issued, Literal(issued.isoformat(), datatype=XSD.dateTime)))
    graph.add((subject, TY.station, Literal(station)))
    counts = (
        (TY.numberOfSubjects, summary.subjects),
        (TY.numberOfStudies, summary.studies),
        (TY.numberOfSeries, summary.series),
        (TY.numberOfInstances, summary.instances),
    )
    for predicate, count in counts:
        if count is not None:
            graph.add((subject, predicate, Literal(count, datatype=XSD.integer)))
    graph.add((subject, TY.disclosureThreshold, Literal(summary.k, datatype=XSD.integer)))
    if summary.subjects is not None:
        individuals = Literal(summary.subjects, datatype=XSD.nonNegativeInteger)
        graph.add((subject, HEALTH.numberOfUniqueIndividuals, individuals))
    if summary.instances is not None:
        graph.add((subject, HEALTH.numberOfRecords, Literal(summary.instances, datatype=XSD.nonNegativeInteger)))
    for value, count in sorted(summary.modalities.items()):
        if count is not None and _CS_VALUE.match(value):
            graph.add((subject, TY.modality, URIRef(f"{DCM}{value}")))
    body_parts = body_part_concepts()
    for value, count in sorted(summary.body_parts.items()):
        if count is None:
            continue
        concept = body_parts.get(value.upper())
        graph.add((subject, TY.bodyPart, URIRef(concept)) if concept else (subject, TY.bodyPartText, Literal(value)))
    for value, count in sorted(summary.manufacturers.items()):
        if count is not None:
            graph.add((subject, TY.manufacturer, Literal(value)))
    graph.add((subject, DCAT.theme, HEAL))
    _add_summary_details(graph, subject, summary)
    if metadata is not None:
        _add_metadata(graph, subject, metadata)
    return graph.serialize(format="turtle")


def _fragment(subject: URIRef, *parts: str) -> URIRef:
    return URIRef(f"{subject}#" + "-".join(_SLUG.sub("_", part).strip("_") or "x" for part in parts))


def _add_summary_details(graph: Graph, subject: URIRef, summary: CollectionSummary) -> None:
    """Ages, sex and age-band breakdowns, quality flags, coverage and acquisition ranges."""
    for predicate, age in (
        (HEALTH.minTypicalAge, summary.min_typical_age),
        (HEALTH.maxTypicalAge, summary.max_typical_age),
    ):
        if age is not None:
            graph.add((subject, predicate, Literal(age, datatype=XSD.nonNegativeInteger)))
    for dimension, counts in ((TY.sex, summary.sexes), (TY.ageBand, summary.age_bands)):
        for value, count in sorted(counts.items()):
            if count is None:
                continue  # a suppressed count is never a number: the node is left out
            node = _fragment(subject, str(dimension).rsplit("#", 1)[-1], value)
            graph.add((subject, TY.breakdown, node))
            graph.add((node, TY.dimension, dimension))
            graph.add((node, TY.value, Literal(value)))
            graph.add((node, TY.subjects, Literal(count, datatype=XSD.integer)))
    for flag, count in sorted(summary.quality.items()):
        if count is None:
            continue
        node = _fragment(subject, "quality", flag)
        graph.add((subject, TY.qualityFlag, node))
        graph.add((node, TY.flag, Literal(flag)))
        graph.add((node, TY.series, Literal(count, datatype=XSD.integer)))
    for name, percent in sorted(summary.coverage.items()):
        node = _fragment(subject, "coverage", name)
        graph.add((subject, TY.coverage, node))
        graph.add((node, TY.field, Literal(name)))
        graph.add((node, TY.percent, Literal(percent, datatype=XSD.decimal)))
    for name, numeric in sorted(summary.ranges.items()):
        if numeric.subjects < summary.k:
            continue  # percentiles over fewer than k subjects are not published
        node = _fragment(subject, "range", name)
        graph.add((subject, TY.acquisitionRange, node))
        graph.add((node, TY.parameter, Literal(name)))
        for predicate, number in ((TY.low, numeric.low), (TY.median, numeric.median), (TY.high, numeric.high)):
            graph.add((node, predicate, Literal(number, datatype=XSD.decimal)))
        if numeric.unit:
            graph.add((node, TY.unit, Literal(numeric.unit)))
        graph.add((node, TY.subjects, Literal(numeric.subjects, datatype=XSD.integer)))


def _add_metadata(graph: Graph, subject: URIRef, metadata: CollectionMetadata) -> None:
    """Keywords, disease codes, DUO policy, licence, contact, health categories, annotation types."""
    graph.bind("odrl", ODRL)
    graph.bind("vcard", VCARD)
    for keyword in metadata.keywords:
        graph.add((subject, DCAT.keyword, Literal(keyword)))
    for disease in metadata.disease_codes:
        code = URIRef(CODING_SYSTEMS[disease.system] + disease.code)
        graph.add((subject, HEALTH.hasCodingSystem, URIRef(CODING_SYSTEMS[disease.system])))
        node = _fragment(subject, "disease", disease.system, disease.code)
        graph.add((subject, HEALTH.hasCodeValues, node))
        graph.add((node, DCTERMS.identifier, Literal(str(code), datatype=XSD.anyURI)))
        graph.add((node, SKOS.inScheme, URIRef(CODING_SYSTEMS[disease.system])))
        graph.add((node, TY.diseaseCode, code))
        graph.add((node, TY.codingSystem, Literal(disease.system)))
        graph.add((node, TY.notation, Literal(disease.code)))
        if disease.label:
            graph.add((node, TY.label, Literal(disease.label)))
    for category in metadata.health_categories:
        graph.add((subject, HEALTH.healthCategory, Literal(category)))
    if metadata.data_use:
        policy = _fragment(subject, "policy")
        permission = _fragment(subject, "permission")
        graph.add((subject, ODRL.hasPolicy, policy))
        graph.add((policy, RDF.type, ODRL.Offer))
        graph.add((policy, RDF.type, ODRL.Policy))  # an Offer is a Policy; DCAT-AP's shapes infer nothing
        graph.add((policy, ODRL.permission, permission))
        graph.add((permission, ODRL.action, ODRL.use))
        for duo in metadata.data_use:
            constraint = _fragment(subject, "constraint", duo)
            graph.add((permission, ODRL.constraint, constraint))
            graph.add((constraint, ODRL.leftOperand, ODRL.purpose))
            graph.add((constraint, ODRL.operator, ODRL.eq))
            graph.add((constraint, ODRL.rightOperand, URIRef(OBO + duo.replace(":", "_"))))
    if metadata.license:
        value = metadata.license
        graph.add((subject, DCTERMS.license, URIRef(value) if re.match(r"^https?://\S+$", value) else Literal(value)))
    if metadata.contact_name or metadata.contact_email:
        contact = _fragment(subject, "contact")
        graph.add((subject, DCAT.contactPoint, contact))
        graph.add((contact, RDF.type, VCARD.Kind))
        if metadata.contact_name:
            graph.add((contact, VCARD.fn, Literal(metadata.contact_name)))
        if metadata.contact_email:
            graph.add((contact, VCARD.hasEmail, URIRef(f"mailto:{metadata.contact_email}")))
    for annotation in metadata.annotations:
        graph.add((subject, TY.annotationType, TY[_annotation_term(annotation)]))


def _annotation_term(annotation: str) -> str:
    """``bounding-box`` → ``BoundingBox`` (the ty: concept of an annotation type)."""
    return "".join(part.capitalize() for part in _SLUG.split(annotation) if part) or "Annotation"


_SHACL_LOCK = threading.Lock()


@functools.cache
def _shapes_and_codes() -> tuple[Graph, Graph]:
    shapes = Graph().parse(SHAPES, format="turtle")
    codes = Graph()
    for path in CODE_LISTS:
        codes.parse(path, format="turtle")
    return shapes, codes


def check_record(turtle: str, *, station: str, collection: str) -> list[str]:
    """The catalog shapes' violations of one record, checked here before it leaves (the hub checks again).

    The hub adds the distribution and the publisher; stand-ins for them are added for the check only.
    """
    from pyshacl import validate

    shapes, codes = _shapes_and_codes()
    data = Graph()
    data += codes
    data.parse(data=turtle, format="turtle")
    subject = collection_iri(station, collection)
    distribution, publisher = URIRef(f"{subject}#hub-distribution"), URIRef(f"{subject}#hub-publisher")
    data.add((subject, DCAT.distribution, distribution))
    data.add((distribution, RDF.type, DCAT.Distribution))
    data.add((distribution, DCAT.accessURL, URIRef("urn:trainyard:hub:trains")))
    data.add((distribution, TY.accessMode, TY.RemoteProcessing))
    data.add((subject, DCTERMS.publisher, publisher))
    data.add((publisher, RDF.type, FOAF.Agent))
    with _SHACL_LOCK:  # rdflib's SPARQL parser (the shapes' SPARQL constraints) is not thread-safe
        conforms, results, _text = validate(
            data, shacl_graph=shapes, inference="none", advanced=True, allow_warnings=True
        )
    if conforms:
        return []
    sh = Namespace("http://www.w3.org/ns/shacl#")
    problems = {
        f"{results.value(result, sh.resultPath) or results.value(result, sh.focusNode)}: "
        f"{results.value(result, sh.resultMessage) or 'does not conform'}"
        for result in results.subjects(sh.resultSeverity, sh.Violation)
    }
    return sorted(problems)


def build_publication(
    *,
    station: str,
    collection: str,
    title: str,
    description: str,
    summary: CollectionSummary,
    keys: KeyPair,
    published_at: datetime | None = None,
    metadata: CollectionMetadata | None = None,
) -> CollectionPublication:
    """Build the station-signed publication of one collection.

    Returns
    -------
    CollectionPublication
        Turtle and summary, signed with the station's Ed25519 key.
    """
    when = published_at or protocol.utc_now()
    turtle = collection_to_turtle(
        station=station,
        collection=collection,
        title=title,
        description=description,
        summary=summary,
        issued=when,
        metadata=metadata,
    )
    problems = check_record(turtle, station=station, collection=collection)
    if problems:
        raise protocol.ProtocolError(
            f"the record of {station}/{collection} does not conform to the catalog's shapes, so it is not sent: "
            + "; ".join(problems[:10])
        )
    publication = CollectionPublication(
        station=station,
        collection=collection,
        title=title,
        description=description,
        turtle=turtle,
        summary=summary,
        metadata=metadata or CollectionMetadata(),
        published_at=when,
    )
    return protocol.sign_publication(publication, keys.signing)
