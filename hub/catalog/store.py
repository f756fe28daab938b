"""The catalog's RDF side: one named graph per collection, in embedded Oxigraph or an external SPARQL store.

The embedded store keeps a second Oxigraph store beside it, the guests' view (``{catalog}-guest``):
the same graphs with every count rounded as guests see it (:mod:`hub.catalog.guest`), which
``/sparql`` answers anonymous callers from. Every publication writes both, the guests' view
second; a marker file (``{catalog}-guest.stale``) lives while they may differ, and a view that
has one, is missing, or holds another number of quads is rebuilt from the store when it opens
(a checkpoint of the store with its count quads rewritten).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pyoxigraph as ox

from hub.catalog.guest import COUNT_PREDICATES, guest_quad, guest_triples
from hub.catalog.remote import RemoteSparqlStore
from protocol import ProtocolError, utc_now

__all__ = ["CatalogStore", "graph_iri_for_collection"]

PREFIXES = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "ty": "https://w3id.org/trainyard/ontology#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def graph_iri_for_collection(base_iri: str, station: str, collection: str) -> str:
    """Return the IRI of a collection's named graph: its resolvable dataset IRI (``{base}/dataset/...``)."""
    return f"{base_iri.rstrip('/')}/dataset/{station}/{collection}"


_URN_PREFIX = "urn:trainyard:collection:"
_RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
_DCAT_DATASET = ox.NamedNode("http://www.w3.org/ns/dcat#Dataset")
_PROV_ENTITY = ox.NamedNode("http://www.w3.org/ns/prov#Entity")
_PROV_REVISION = ox.NamedNode("http://www.w3.org/ns/prov#wasRevisionOf")
_DCT_MODIFIED = ox.NamedNode("http://purl.org/dc/terms/modified")
_DCT_IS_VERSION_OF = ox.NamedNode("http://purl.org/dc/terms/isVersionOf")
_XSD_DATETIME = ox.NamedNode("http://www.w3.org/2001/XMLSchema#dateTime")


def _rename(term: object, urn: str, target: str) -> object:
    if isinstance(term, ox.NamedNode) and (term.value == urn or term.value.startswith(urn + "#")):
        return ox.NamedNode(target + term.value[len(urn) :])
    return term


def _ntriples(triples: list[ox.Triple]) -> str:
    return (ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b"").decode("utf-8")


def _insert(graph: ox.NamedNode, body: str) -> str:
    """``INSERT { GRAPH g { ... } } WHERE {}``: ``INSERT DATA`` that allows blank nodes everywhere (Virtuoso)."""
    return f"INSERT {{ GRAPH {graph} {{\n{body}\n}} }} WHERE {{}}"


_XSD = "http://www.w3.org/2001/XMLSchema#"
_COUNT_TYPES = frozenset(
    ox.NamedNode(_XSD + name)
    for name in (
        "integer",
        "nonNegativeInteger",
        "positiveInteger",
        "int",
        "long",
        "short",
        "unsignedInt",
        "unsignedLong",
    )
)


class CatalogStore:
    """A persistent Oxigraph store (in memory when ``path`` is ``None``), or an external SPARQL store.

    Parameters
    ----------
    path
        The embedded store's folder.
    remote
        An external SPARQL 1.1 store to use instead (``path`` is then ignored).
    """

    def __init__(self, path: Path | None = None, *, remote: RemoteSparqlStore | None = None) -> None:
        self._remote = remote
        self._path = None if remote is not None else path
        if self._path is not None:
            self._path.mkdir(parents=True, exist_ok=True)
        if remote is not None:
            # the remote store answers the part of ox.Store's interface the catalog uses
            self._store: ox.Store | None = cast(ox.Store, remote)
        else:
            self._store = ox.Store(str(self._path)) if self._path is not None else ox.Store()
        self._lock = threading.Lock()
        self._guest: ox.Store | None = None
        if remote is None:
            self._guest = self._open_guest_view()

    def __repr__(self) -> str:
        if self._remote is not None:
            return f"CatalogStore(remote={self._remote.query_url!r})"
        return f"CatalogStore(path={str(self._path) if self._path else None!r})"

    @property
    def store(self) -> ox.Store:
        """The underlying store (Oxigraph, or the remote stand-in); raise when closed."""
        if self._store is None:
            raise RuntimeError("the catalog store is closed")
        return self._store

    @property
    def guest_store(self) -> ox.Store | None:
        """The guests' view: the same graphs with rounded counts (``None`` on an external store, which
        keeps no such view)."""
        if self._store is None:
            raise RuntimeError("the catalog store is closed")
        return self._guest

    def _guest_paths(self) -> tuple[Path, Path] | None:
        if self._path is None:
            return None
        return self._path.with_name(self._path.name + "-guest"), self._path.with_name(self._path.name + "-guest.stale")

    def _open_guest_view(self) -> ox.Store:
        paths = self._guest_paths()
        if paths is None:  # in memory: a new store, empty like the main one
            guest = ox.Store()
            guest.bulk_extend(guest_quad(quad) for quad in self.store)
            return guest
        folder, stale = paths
        if folder.exists() and not stale.exists():
            guest = ox.Store(str(folder))
            if len(guest) == len(self.store):
                return guest
            del guest  # written behind the hub's back: rebuilt
        return self.rebuild_guest_view()

    def rebuild_guest_view(self) -> ox.Store:
        """Make the guests' view again from the store: a checkpoint of it with every count quad rounded."""
        paths = self._guest_paths()
        if paths is None:
            raise RuntimeError("an in-memory catalog rebuilds its guests' view when it opens")
        folder, stale = paths
        self._guest = None
        stale.touch()
        if folder.exists():
            shutil.rmtree(folder)
        self.store.flush()
        self.store.backup(str(folder))  # a checkpoint: hard links to the store's files, fast
        guest = ox.Store(str(folder))
        for predicate in COUNT_PREDICATES:
            exact = list(guest.quads_for_pattern(None, predicate, None, None))
            for quad in exact:
                guest.remove(quad)
            guest.bulk_extend(guest_quad(quad) for quad in exact)
        guest.flush()
        stale.unlink()
        self._guest = guest
        return guest

    def _update(self, statements: list[str], guest_statements: list[str]) -> None:
        """Run one SPARQL update on the store, then its guests' version on the guests' view (hold the lock)."""
        paths = self._guest_paths()
        if paths is not None:
            paths[1].touch()
        try:
            self.store.update(" ;\n".join(statements))
        except BaseException:
            if paths is not None:
                paths[1].unlink(missing_ok=True)  # the update is one transaction: nothing changed
            raise
        if self._guest is not None:
            self._guest.update(" ;\n".join(guest_statements))  # on failure the marker stays: rebuilt on opening
        if paths is not None:
            paths[1].unlink(missing_ok=True)

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
        graph = ox.NamedNode(graph_iri)
        drop = f"DROP SILENT GRAPH {graph}"
        statements = [drop, _insert(graph, _ntriples(triples))]
        guest_statements = [drop, _insert(graph, _ntriples(guest_triples(triples)))]
        with self._lock:  # one SPARQL update is one transaction: readers never see half a graph
            self._update(statements, guest_statements)
        return len(triples)

    def replace_collection(
        self,
        graph_iri: str,
        turtle: str,
        *,
        station: str,
        collection: str,
        extra: list[ox.Triple] | Callable[[list[ox.Triple]], list[ox.Triple]] | None = None,
        check: Callable[[list[ox.Triple]], None] | None = None,
    ) -> int:
        """Replace a collection's graph with a station's Turtle, re-based on ``graph_iri``; return the triple count.

        The station names its collection ``urn:trainyard:collection:<station>:<collection>`` (and
        ``#fragments`` of it); those become ``graph_iri`` (and its fragments). A station may only
        describe its own collection: a subject that is neither it (nor a fragment of it) nor a
        blank node, or any other collection's URN, is refused.

        Raises
        ------
        ProtocolError
            When the Turtle does not parse or describes something else.
        """
        urn = f"{_URN_PREFIX}{station}:{collection}"
        try:
            parsed = [quad.triple for quad in ox.parse(turtle, ox.RdfFormat.TURTLE, base_iri=urn)]
        except SyntaxError as exc:
            raise ProtocolError(f"the collection's Turtle does not parse: {exc}") from exc
        triples: list[ox.Triple] = []
        for triple in parsed:
            subject = triple.subject
            if not isinstance(subject, ox.BlankNode) and not (
                isinstance(subject, ox.NamedNode) and (subject.value == urn or subject.value.startswith(urn + "#"))
            ):
                raise ProtocolError(
                    f"the publication describes {subject}, which is not collection {station}/{collection}: "
                    f"subjects must be <{urn}>, a #fragment of it, or blank nodes"
                )
            for term in (triple.predicate, triple.object):
                if (
                    isinstance(term, ox.NamedNode)
                    and term.value.startswith(_URN_PREFIX)
                    and not (term.value == urn or term.value.startswith(urn + "#"))
                ):
                    raise ProtocolError(f"the publication refers to another collection: {term.value}")
            triples.append(
                ox.Triple(
                    _rename(subject, urn, graph_iri),  # type: ignore[arg-type]
                    triple.predicate,
                    _rename(triple.object, urn, graph_iri),  # type: ignore[arg-type]
                )
            )
        triples.extend(extra(triples) if callable(extra) else (extra or []))
        if check is not None:
            check(triples)  # e.g. SHACL validation: raises before anything is stored
        graph = ox.NamedNode(graph_iri)
        with self._lock:  # one SPARQL update: readers see the old graph or the new one, never half
            previous = self.graph_triples(graph_iri)
            statements, guest_statements = [f"DROP SILENT GRAPH {graph}"], [f"DROP SILENT GRAPH {graph}"]
            if previous:
                version, archived = self._archive(graph_iri, previous)
                triples += [
                    ox.Triple(graph, _PROV_REVISION, version),
                    ox.Triple(graph, _DCT_MODIFIED, ox.Literal(utc_now().isoformat(), datatype=_XSD_DATETIME)),
                ]
                statements.append(_insert(version, _ntriples(archived)))
                guest_statements.append(_insert(version, _ntriples(guest_triples(archived))))
            statements.append(_insert(graph, _ntriples(triples)))
            guest_statements.append(_insert(graph, _ntriples(guest_triples(triples))))
            self._update(statements, guest_statements)
        return len(triples)

    def _archive(self, graph_iri: str, previous: list[ox.Triple]) -> tuple[ox.NamedNode, list[ox.Triple]]:
        """The next version's IRI and the previous record re-based on it (an entity, no longer a dataset),
        without its counts: subtracting one version's counts from the next could reveal fewer than k."""
        answer = self.store.query(
            f"SELECT (COUNT(DISTINCT ?v) AS ?n) WHERE {{ GRAPH ?g {{ ?v {_DCT_IS_VERSION_OF} <{graph_iri}> }} }}"
        )
        count = int(next(iter(answer))["n"].value)  # type: ignore[arg-type]
        version = ox.NamedNode(f"{graph_iri}/version/{count + 1}")
        archived = [
            ox.Triple(version, _RDF_TYPE, _PROV_ENTITY),
            ox.Triple(version, _DCT_IS_VERSION_OF, ox.NamedNode(graph_iri)),
        ]
        for triple in previous:
            subject = triple.subject
            if not (
                isinstance(subject, ox.NamedNode)
                and (subject.value == graph_iri or subject.value.startswith(graph_iri + "#"))
            ):
                continue  # what the hub adds about other resources is not part of the record's history
            if triple.predicate == _RDF_TYPE and triple.object == _DCAT_DATASET:
                continue
            if isinstance(triple.object, ox.Literal) and triple.object.datatype in _COUNT_TYPES:
                continue  # counts stay out of the history: two versions' difference could be below k
            archived.append(
                ox.Triple(
                    _rename(subject, graph_iri, version.value),  # type: ignore[arg-type]
                    triple.predicate,
                    _rename(triple.object, graph_iri, version.value),  # type: ignore[arg-type]
                )
            )
        return version, archived

    def graph_triples(self, graph_iri: str) -> list[ox.Triple]:
        """Every triple of a named graph."""
        return [quad.triple for quad in self.store.quads_for_pattern(None, None, None, ox.NamedNode(graph_iri))]

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
                if self._guest is not None:
                    self._guest.flush()
            self._guest = None
            if self._remote is not None:
                self._remote.close()
            self._store = None
