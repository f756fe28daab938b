"""Read-only SPARQL over the catalog store, with a time limit and a result limit.

Queries see the union of every collection's named graph as their default graph (``GRAPH``
still names one). Updates are refused. SELECT solutions are read row by row, so a query that
runs past its time limit or returns more rows than the limit stops there with a clear error.
Results are written in the SPARQL 1.1 result formats (JSON, XML, CSV, TSV); CONSTRUCT and
DESCRIBE results in Turtle, N-Triples, RDF/XML or JSON-LD.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pyoxigraph as ox

__all__ = [
    "GRAPH_FORMATS",
    "READ_ONLY",
    "RESULT_FORMATS",
    "SparqlError",
    "SparqlOutcome",
    "SparqlTimeout",
    "is_update",
    "run_query",
]

RESULT_FORMATS = {
    "application/sparql-results+json": "json",
    "application/json": "json",
    "application/sparql-results+xml": "xml",
    "application/xml": "xml",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
}
GRAPH_FORMATS = {
    "text/turtle": ox.RdfFormat.TURTLE,
    "application/n-triples": ox.RdfFormat.N_TRIPLES,
    "application/rdf+xml": ox.RdfFormat.RDF_XML,
    "application/ld+json": ox.RdfFormat.JSON_LD,
}
_UPDATE = re.compile(
    r"^\s*(?:(?:PREFIX\s+\S*\s*<[^>]*>|BASE\s*<[^>]*>)\s*)*"
    r"(INSERT|DELETE|LOAD|CLEAR|CREATE|DROP|COPY|MOVE|ADD|WITH)\b",
    re.IGNORECASE,
)


READ_ONLY = "this endpoint is read-only: SPARQL updates are refused"


class SparqlError(ValueError):
    """The query cannot run: bad syntax, an update, or too many results."""


class SparqlTimeout(SparqlError):
    """The query ran past its time limit."""


@dataclass(frozen=True)
class SparqlOutcome:
    """A query's answer serialised: the body and its media type."""

    body: bytes
    media_type: str


def is_update(text: str) -> bool:
    """Tell whether ``text`` is a SPARQL update (refused: the endpoint is read-only)."""
    return bool(_UPDATE.match(text))


def _term_json(term: Any) -> dict[str, str]:
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Literal):
        out = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        elif term.datatype.value != "http://www.w3.org/2001/XMLSchema#string":
            out["datatype"] = term.datatype.value
        return out
    return {"type": "literal", "value": str(term)}


def _term_text(term: Any) -> str:
    if term is None:
        return ""
    if isinstance(term, ox.NamedNode | ox.BlankNode | ox.Literal):
        return str(term.value) if not isinstance(term, ox.BlankNode) else f"_:{term.value}"
    return str(term)


def _term_xml(term: Any) -> str:
    if isinstance(term, ox.NamedNode):
        return f"<uri>{escape(term.value)}</uri>"
    if isinstance(term, ox.BlankNode):
        return f"<bnode>{escape(term.value)}</bnode>"
    if isinstance(term, ox.Literal):
        if term.language:
            return f"<literal xml:lang={quoteattr(term.language)}>{escape(term.value)}</literal>"
        return f"<literal datatype={quoteattr(term.datatype.value)}>{escape(term.value)}</literal>"
    return f"<literal>{escape(str(term))}</literal>"


def _solutions(names: list[str], rows: list[list[Any]], fmt: str) -> SparqlOutcome:
    if fmt == "json":
        bindings = [
            {name: _term_json(term) for name, term in zip(names, row, strict=True) if term is not None} for row in rows
        ]
        body = json.dumps({"head": {"vars": names}, "results": {"bindings": bindings}}).encode()
        return SparqlOutcome(body, "application/sparql-results+json")
    if fmt == "xml":
        head = "".join(f"<variable name={quoteattr(name)}/>" for name in names)
        results = "".join(
            "<result>"
            + "".join(
                f"<binding name={quoteattr(name)}>{_term_xml(term)}</binding>"
                for name, term in zip(names, row, strict=True)
                if term is not None
            )
            + "</result>"
            for row in rows
        )
        body = (
            '<?xml version="1.0"?><sparql xmlns="http://www.w3.org/2005/sparql-results#">'
            f"<head>{head}</head><results>{results}</results></sparql>"
        ).encode()
        return SparqlOutcome(body, "application/sparql-results+xml")
    buffer = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(names)
        writer.writerows([_term_text(term) for term in row] for row in rows)
        return SparqlOutcome(buffer.getvalue().encode(), "text/csv")
    lines = ["\t".join(f"?{name}" for name in names)]
    lines += ["\t".join(str(term) if term is not None else "" for term in row) for row in rows]
    return SparqlOutcome(("\n".join(lines) + "\n").encode(), "text/tab-separated-values")


def _boolean(value: bool, fmt: str) -> SparqlOutcome:
    if fmt == "xml":
        text = "true" if value else "false"
        body = (
            '<?xml version="1.0"?><sparql xmlns="http://www.w3.org/2005/sparql-results#">'
            f"<head></head><boolean>{text}</boolean></sparql>"
        )
        return SparqlOutcome(body.encode(), "application/sparql-results+xml")
    if fmt in {"csv", "tsv"}:
        return SparqlOutcome(
            b"true\n" if value else b"false\n", "text/csv" if fmt == "csv" else "text/tab-separated-values"
        )
    return SparqlOutcome(json.dumps({"head": {}, "boolean": value}).encode(), "application/sparql-results+json")


def run_query(
    store: ox.Store,
    query: str,
    *,
    result_format: str = "json",
    graph_media_type: str = "text/turtle",
    timeout_s: float = 10.0,
    limit: int = 10_000,
) -> SparqlOutcome:
    """Run a read-only query over the union of the catalog's graphs.

    Parameters
    ----------
    store
        The catalog's Oxigraph store.
    query
        SPARQL 1.1 query text (updates are refused).
    result_format
        ``json``, ``xml``, ``csv`` or ``tsv`` for SELECT and ASK.
    graph_media_type
        One of :data:`GRAPH_FORMATS` for CONSTRUCT and DESCRIBE.
    timeout_s, limit
        Stop with :class:`SparqlTimeout` past ``timeout_s``; refuse more than ``limit`` rows or triples.

    Raises
    ------
    SparqlError
        For an update, a syntax error (the parser's message), or too many results.
    SparqlTimeout
        When the query runs past its time limit.
    """
    if is_update(query):
        raise SparqlError(READ_ONLY)
    deadline = time.monotonic() + timeout_s
    try:
        answer = store.query(query, use_default_graph_as_union=True)
    except SyntaxError as exc:
        raise SparqlError(f"the query does not parse: {exc}") from exc
    except OSError as exc:
        raise SparqlError(f"the query failed: {exc}") from exc
    try:
        if isinstance(answer, ox.QueryBoolean):
            return _boolean(bool(answer), result_format)
        names = [variable.value for variable in answer.variables] if isinstance(answer, ox.QuerySolutions) else []
        rows: list[Any] = []
        try:
            for item in answer:
                # plain terms only: the result iterator must be dropped on this thread
                rows.append([item[name] for name in names] if names else item)
                if len(rows) > limit:
                    raise SparqlError(f"the query returns more than {limit} results: add a LIMIT or narrow it")
                if time.monotonic() > deadline:
                    raise SparqlTimeout(f"the query ran longer than {timeout_s:g} s and was stopped")
        except OSError as exc:
            raise SparqlError(f"the query failed: {exc}") from exc
        is_select = isinstance(answer, ox.QuerySolutions)
    finally:
        del answer
    if is_select:
        return _solutions(names, rows, result_format)
    rdf_format = GRAPH_FORMATS.get(graph_media_type, ox.RdfFormat.TURTLE)
    body = ox.serialize(rows, format=rdf_format) or b""
    return SparqlOutcome(body, rdf_format.media_type)
