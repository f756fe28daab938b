"""The catalog's RDF side: one named graph per collection in an embedded Oxigraph store."""

from __future__ import annotations

import threading
from pathlib import Path

import pyoxigraph as ox

from protocol import ProtocolError

__all__ = ["CatalogStore", "graph_iri_for_collection"]

PREFIXES = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "ty": "https://w3id.org/trainyard/ontology#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def graph_iri_for_collection(base_iri: str, station: str, collection: str) -> str:
    """Return the IRI of a collection's named graph (also the collection's resolvable IRI)."""
    return f"{base_iri.rstrip('/')}/collections/{station}/{collection}"


class CatalogStore:
    """A persistent Oxigraph store (in memory when ``path`` is ``None``)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._store: ox.Store | None = ox.Store(str(path)) if path is not None else ox.Store()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CatalogStore(path={str(self._path) if self._path else None!r})"

    @property
    def store(self) -> ox.Store:
        """The underlying Oxigraph store; raise when closed."""
        if self._store is None:
            raise RuntimeError("the catalog store is closed")
        return self._store

    def replace_graph(self, graph_iri: str, turtle: str) -> int:
        """Replace the named graph ``graph_iri`` with the triples of ``turtle``; return their count.

        Raises
        ------
        ProtocolError
            When the Turtle does not parse; the message is the parser's.
        """
        try:
            triples = [quad.triple for quad in ox.parse(turtle, ox.RdfFormat.TURTLE, base_iri=graph_iri)]
        except SyntaxError as exc:
            raise ProtocolError(f"the collection's Turtle does not parse: {exc}") from exc
        body = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""
        graph = ox.NamedNode(graph_iri)
        update = f"DROP SILENT GRAPH {graph} ;\nINSERT DATA {{ GRAPH {graph} {{\n{body.decode('utf-8')}\n}} }}"
        with self._lock:  # one SPARQL update is one transaction: readers never see half a graph
            self.store.update(update)
        return len(triples)

    def has_graph(self, graph_iri: str) -> bool:
        """Tell whether the named graph holds anything."""
        return self.store.contains_named_graph(ox.NamedNode(graph_iri))

    def export_turtle(self, graph_iri: str) -> str:
        """Serialise a named graph as Turtle (empty text for an unknown graph)."""
        data = self.store.dump(format=ox.RdfFormat.TURTLE, from_graph=ox.NamedNode(graph_iri), prefixes=PREFIXES)
        return (data or b"").decode("utf-8")

    def close(self) -> None:
        """Flush and release the store (its lock on the folder goes with it)."""
        if self._store is not None:
            if self._path is not None:
                self._store.flush()
            self._store = None
