"""The code lists of ``ontology/codes/`` as lookups (read once)."""

from __future__ import annotations

import functools

from rdflib import Graph, URIRef

from ontology import CODE_LISTS

__all__ = ["body_part_notation"]

_NOTATION = URIRef("http://www.w3.org/2004/02/skos/core#notation")


@functools.cache
def _notations() -> dict[str, str]:
    graph = Graph()
    for path in CODE_LISTS:
        graph.parse(path, format="turtle")
    return {str(concept): str(value) for concept, value in graph.subject_objects(_NOTATION)}


def body_part_notation(iri: str) -> str:
    """The DICOM defined term of a body-part concept (the IRI itself when it is not in the list)."""
    return _notations().get(iri, iri)
