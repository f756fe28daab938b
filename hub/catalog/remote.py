"""An external SPARQL 1.1 store (Virtuoso, GraphDB, Fuseki, ...) behind the embedded store's interface.

The hub's catalog code talks to ``pyoxigraph.Store``; :class:`RemoteSparqlStore` answers the
part of that interface the hub uses — ``query``, ``update``, ``quads_for_pattern`` (by graph),
``contains_named_graph``, ``dump`` (one graph), ``flush`` — with the SPARQL 1.1 Protocol over
HTTP, so scale-out is a setting (``catalog_sparql_query_url``), not a second code path:

* queries go out as ``POST application/x-www-form-urlencoded`` with ``named-graph-uri`` for a
  restricted dataset, asking for SPARQL XML results (every store speaks them) or N-Triples, and
  come back as pyoxigraph's own ``QuerySolutions`` / ``QueryBoolean`` / a list of triples;
* updates go to the update endpoint in one request (one transaction in the stores we know);
  HTTP digest or basic credentials come from the settings and never reach a log.

Store quirks are handled here: Virtuoso labels blank nodes ``nodeID://b123`` (not a valid
SPARQL results label), which are renamed on the way in. A store's own system graphs (Virtuoso's
``virtrdf#``) are part of its default union graph; the hub's queries name the graphs they read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal
from urllib.parse import urlencode

import httpx
import pyoxigraph as ox

__all__ = ["RemoteSparqlStore", "RemoteStoreError"]

_BNODE = re.compile(rb"<bnode>nodeID://([A-Za-z0-9_]+)</bnode>")
_RESULTS_XML = "application/sparql-results+xml"
_N_TRIPLES = "application/n-triples"


class RemoteStoreError(OSError):
    """The external store refused a request or could not be reached (the message says which and why)."""


class RemoteSparqlStore:
    """A SPARQL 1.1 Protocol client that stands in for ``pyoxigraph.Store`` in the catalog.

    Parameters
    ----------
    query_url
        The store's query endpoint, e.g. ``http://virtuoso:8890/sparql``.
    update_url
        Its update endpoint (Virtuoso: ``/sparql-auth`` with digest credentials, or ``/sparql``
        when the ``SPARQL`` user holds ``SPARQL_UPDATE``); the query endpoint when ``None``.
    username, password
        Credentials for the update endpoint (and queries, when the store wants them).
    auth
        ``digest`` (Virtuoso's ``/sparql-auth``) or ``basic``.
    timeout_s
        Per request.
    """

    def __init__(
        self,
        query_url: str,
        *,
        update_url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        auth: Literal["digest", "basic"] = "digest",
        timeout_s: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.query_url = query_url
        self.update_url = update_url or query_url
        credentials: httpx.Auth | None = None
        if username is not None:
            secret = password or ""
            credentials = httpx.DigestAuth(username, secret) if auth == "digest" else httpx.BasicAuth(username, secret)
        self._client = client or httpx.Client(timeout=timeout_s, auth=credentials)

    def __repr__(self) -> str:
        return f"RemoteSparqlStore(query_url={self.query_url!r}, update_url={self.update_url!r})"

    # -- the protocol ---------------------------------------------------------------------

    def _post(self, url: str, form: list[tuple[str, str]], accept: str) -> httpx.Response:
        try:
            answer = self._client.post(
                url,
                content=urlencode(form).encode("ascii"),
                headers={"Accept": accept, "Content-Type": "application/x-www-form-urlencoded"},
            )
        except httpx.HTTPError as exc:
            raise RemoteStoreError(f"the SPARQL store at {url} cannot be reached: {exc}") from exc
        if answer.status_code == 400:
            raise SyntaxError(_reason(answer))
        if answer.status_code in (401, 403):
            raise RemoteStoreError(
                f"the SPARQL store at {url} refused the request ({answer.status_code}): check the "
                "catalog_sparql_username/password settings and the user's update rights"
            )
        if answer.status_code >= 300:
            raise RemoteStoreError(f"the SPARQL store at {url} answered {answer.status_code}: {_reason(answer)}")
        return answer

    def query(
        self,
        query: str,
        *,
        use_default_graph_as_union: bool = False,
        named_graphs: Sequence[ox.NamedNode | ox.BlankNode] | None = None,
        **_ignored: object,
    ) -> ox.QuerySolutions | ox.QueryBoolean | list[ox.Triple]:
        """Run a query; SELECT/ASK come back as pyoxigraph results, CONSTRUCT/DESCRIBE as triples.

        The store's default graph is the union of its graphs (as ``use_default_graph_as_union``
        asks); ``named_graphs`` restricts ``GRAPH ?g`` patterns to those graphs.
        """
        del use_default_graph_as_union  # external stores query the union of their graphs by default
        form = [("query", query)]
        form += [("named-graph-uri", graph.value) for graph in named_graphs or () if isinstance(graph, ox.NamedNode)]
        # stores answer with the first type they know of for the query form (Virtuoso: 406 otherwise)
        accept = _N_TRIPLES if _query_form(query) in ("CONSTRUCT", "DESCRIBE") else _RESULTS_XML
        answer = self._post(self.query_url, form, accept)
        kind = answer.headers.get("content-type", "").split(";", 1)[0].strip()
        if kind in (_N_TRIPLES, "text/plain", "text/turtle"):
            rdf = ox.RdfFormat.N_TRIPLES if kind != "text/turtle" else ox.RdfFormat.TURTLE
            return [quad.triple for quad in ox.parse(answer.content, rdf)]
        if kind != _RESULTS_XML:
            raise RemoteStoreError(f"the SPARQL store answered {kind or 'no content type'}, not SPARQL results")
        return ox.parse_query_results(_BNODE.sub(rb"<bnode>v\1</bnode>", answer.content), ox.QueryResultsFormat.XML)

    def update(self, update: str, **_ignored: object) -> None:
        """Run a SPARQL 1.1 update in one request."""
        self._post(self.update_url, [("update", update)], "*/*")

    # -- what the catalog reads -----------------------------------------------------------

    def quads_for_pattern(
        self,
        subject: object,
        predicate: object,
        object: object,
        graph_name: ox.NamedNode | None = None,
    ) -> Iterable[ox.Quad]:
        """Every quad of one named graph (the only pattern the catalog asks for)."""
        if subject is not None or predicate is not None or object is not None or graph_name is None:
            raise NotImplementedError("the remote store reads whole named graphs only")
        triples = self.query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH {graph_name} {{ ?s ?p ?o }} }}")
        assert isinstance(triples, list)
        return [ox.Quad(triple.subject, triple.predicate, triple.object, graph_name) for triple in triples]

    def contains_named_graph(self, graph_name: ox.NamedNode) -> bool:
        """Whether the graph holds any triple."""
        return bool(self.query(f"ASK {{ GRAPH {graph_name} {{ ?s ?p ?o }} }}"))

    def dump(
        self,
        output: object = None,
        format: ox.RdfFormat | None = None,
        *,
        from_graph: ox.NamedNode | None = None,
        prefixes: dict[str, str] | None = None,
        **_ignored: object,
    ) -> bytes | None:
        """Serialise one named graph (``from_graph``) in ``format``."""
        if from_graph is None or output is not None:
            raise NotImplementedError("the remote store dumps one named graph to bytes")
        triples = [quad.triple for quad in self.quads_for_pattern(None, None, None, from_graph)]
        return ox.serialize(triples, format=format or ox.RdfFormat.TURTLE, prefixes=prefixes)

    def flush(self) -> None:
        """Nothing to flush: the store persists what each update commits."""

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()


_PROLOGUE = re.compile(r"^\s*(?:PREFIX\s+[^\s:]*:\s*<[^>]*>|BASE\s*<[^>]*>)", re.IGNORECASE)
_COMMENT = re.compile(r"(?m)(^|\s)#[^\n]*")
_FORM = re.compile(r"^\s*(SELECT|ASK|CONSTRUCT|DESCRIBE)\b", re.IGNORECASE)


def _query_form(query: str) -> str:
    """``SELECT``, ``ASK``, ``CONSTRUCT`` or ``DESCRIBE``: the keyword after the prologue."""
    text = _COMMENT.sub(r"\1", query)
    while match := _PROLOGUE.match(text):
        text = text[match.end() :]
    found = _FORM.match(text)
    return found.group(1).upper() if found else "SELECT"


def _reason(answer: httpx.Response) -> str:
    """The store's own words, short (Virtuoso repeats the whole query after its message)."""
    text = answer.text.strip()
    return text.split("\n\nSPARQL query:", 1)[0][:500] or answer.reason_phrase
