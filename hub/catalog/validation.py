"""Validate a collection record against Trainyard's SHACL shapes (pySHACL), with a report a person can act on.

The shapes (``ontology/shapes/trainyard-shapes.ttl``) and the code lists (``ontology/codes/``)
are read once. A record that does not conform raises :class:`RecordInvalid` whose message lists
each problem as *what* (the focus node), *where* (the property) and *why* (the shape's message).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import pyoxigraph as ox
from pyshacl import validate
from rdflib import Graph, Namespace
from rdflib.term import Node

from ontology import CODE_LISTS, SHAPES
from protocol import ProtocolError

__all__ = ["Problem", "RecordInvalid", "validate_record"]

SH = Namespace("http://www.w3.org/ns/shacl#")
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Problem:
    """One SHACL result, in words."""

    focus: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"<{self.focus}>{where}: {self.message}"


class RecordInvalid(ProtocolError):
    """A record does not conform to the shapes; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        listed = "; ".join(str(problem) for problem in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"the collection record does not conform to the catalog's shapes: {listed}{more}")
        self.problems = problems


@functools.cache
def _shapes() -> Graph:
    return Graph().parse(SHAPES, format="turtle")


@functools.cache
def _code_lists() -> Graph:
    graph = Graph()
    for path in CODE_LISTS:
        graph.parse(path, format="turtle")
    return graph


def _short(node: Node | None) -> str:
    text = str(node) if node is not None else ""
    for prefix, namespace in (
        ("dct:", "http://purl.org/dc/terms/"),
        ("dcat:", "http://www.w3.org/ns/dcat#"),
        ("ty:", "https://w3id.org/trainyard/ontology#"),
        ("foaf:", "http://xmlns.com/foaf/0.1/"),
    ):
        if text.startswith(namespace):
            return prefix + text[len(namespace) :]
    return text


def validate_record(triples: list[ox.Triple]) -> None:
    """Raise :class:`RecordInvalid` unless ``triples`` conform to the shapes (code lists mixed in)."""
    data = Graph()
    data += _code_lists()  # so sh:class skos:Concept sees the code lists' concepts
    data.parse(data=(ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b"").decode(), format="nt")
    with _LOCK:  # rdflib's SPARQL parser (used for the shapes' SPARQL constraints) is not thread-safe
        conforms, results, _text = validate(
            data, shacl_graph=_shapes(), inference="none", advanced=True, allow_warnings=True
        )
    if conforms:
        return
    problems = []
    for result in results.subjects(SH.resultSeverity, SH.Violation):
        problems.append(
            Problem(
                focus=_short(results.value(result, SH.focusNode)),
                path=_short(results.value(result, SH.resultPath)),
                message=str(results.value(result, SH.resultMessage) or "does not conform"),
            )
        )
    if problems:
        raise RecordInvalid(sorted(set(problems), key=str))
