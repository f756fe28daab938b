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
from datetime import datetime

from rdflib import RDF, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS

import protocol
from protocol import CollectionPublication, CollectionSummary, KeyPair

__all__ = ["TY", "build_publication", "collection_iri", "collection_to_turtle"]

TY = Namespace("https://w3id.org/trainyard/ontology#")
HEALTH = Namespace("http://healthdataportal.eu/ns/health#")  # = ontology.HEALTHDCATAP (unratified namespace)
DCM = "http://dicom.nema.org/resources/ontology/DCM/"
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
    return graph.serialize(format="turtle")


def build_publication(
    *,
    station: str,
    collection: str,
    title: str,
    description: str,
    summary: CollectionSummary,
    keys: KeyPair,
    published_at: datetime | None = None,
) -> CollectionPublication:
    """Build the station-signed publication of one collection.

    Returns
    -------
    CollectionPublication
        Turtle and summary, signed with the station's Ed25519 key.
    """
    when = published_at or protocol.utc_now()
    turtle = collection_to_turtle(
        station=station, collection=collection, title=title, description=description, summary=summary, issued=when
    )
    publication = CollectionPublication(
        station=station,
        collection=collection,
        title=title,
        description=description,
        turtle=turtle,
        summary=summary,
        published_at=when,
    )
    return protocol.sign_publication(publication, keys.signing)
