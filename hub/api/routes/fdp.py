"""The FAIR Data Point: the hub, its catalog, datasets and distributions as resolvable RDF.

``/`` describes the FAIR Data Point, ``/catalog/trainyard`` the catalog (with an LDP container
of its datasets), ``/dataset/{station}/{collection}`` one collection (its named graph), and
``/distribution/{station}/{collection}`` how it is used: remote processing by trains; every IRI
the records name resolves too (``/catalogs``, ``/catalog/trainyard/datasets``, ``/station/{id}``,
``/dataset/{station}/{collection}/version/{n}``). Turtle
by default; JSON-LD, RDF/XML or N-Triples through ``Accept`` or ``?format=jsonld|rdf|nt``.
Anyone may read: the catalog holds only disclosure-controlled aggregates. Guests (no token, or a
station's) get every count rounded down to a multiple of 10, as GraphQL and ``/sparql`` give them
(:mod:`hub.catalog.guest`); members (a user's token) the published counts.
"""

from __future__ import annotations

from typing import Annotated, Any

import pyoxigraph as ox
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import DCTERMS, FOAF

from hub import crud
from hub.api.deps import CatalogDep, SessionDep, SettingsDep
from hub.api.routes.graphql import CatalogMember
from hub.catalog.guest import guest_triples
from hub.catalog.negotiation import RDF_MEDIA_TYPES, NotAcceptable, choose_rdf_format
from hub.catalog.records import (
    CATALOG_ID,
    catalog_graph,
    catalog_iri,
    dataset_iri,
    distribution_iri,
    fdp_graph,
    retype_counts,
    station_iri,
)

router = APIRouter(tags=["fdp"])

FormatQuery = Annotated[str | None, Query(description="ttl, jsonld, rdf or nt (overrides Accept)")]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {media: {} for media in RDF_MEDIA_TYPES}, "description": "the record as RDF"},
    406: {"description": "no RDF format the caller accepts"},
}


def _render(request: Request, graph: Graph, iri: str, fmt: str | None, *, container: str | None = None) -> Response:
    try:
        choice = choose_rdf_format(request.headers.get("accept"), fmt)
    except NotAcceptable as exc:
        raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, detail=str(exc)) from exc
    body = graph.serialize(format=choice.serializer)
    links = [f'<{iri}>; rel="canonical"']
    if container:
        links.append(f'<{container}>; rel="http://www.w3.org/ns/ldp#contains"')
    headers = {"Link": ", ".join(links), "Vary": "Accept, Authorization"}
    return Response(body, media_type=choice.media_type, headers=headers)


def _to_rdflib(triples: list[ox.Triple]) -> Graph:
    graph = Graph()
    for prefix, namespace in (
        ("dcat", "http://www.w3.org/ns/dcat#"),
        ("dct", "http://purl.org/dc/terms/"),
        ("foaf", "http://xmlns.com/foaf/0.1/"),
        ("ty", "https://w3id.org/trainyard/ontology#"),
    ):
        graph.bind(prefix, namespace)
    data = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""
    return retype_counts(graph.parse(data=data.decode("utf-8"), format="nt"))


def _fdp(request: Request, settings: SettingsDep) -> Graph:
    return fdp_graph(
        settings.base_iri,
        title=settings.fdp_title,
        description=settings.fdp_description,
        publisher=settings.fdp_publisher,
        version=request.app.version,
    )


def _catalog(catalog_id: str, session: SessionDep, settings: SettingsDep) -> Graph:
    """The catalog's record with its datasets (404 for another catalog)."""
    if catalog_id != CATALOG_ID:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no catalog {catalog_id!r}: this hub has {CATALOG_ID!r}")
    datasets = [
        dataset_iri(settings.base_iri, row.station_id, row.collection) for row in crud.list_collections(session=session)
    ]
    return catalog_graph(
        settings.base_iri,
        title=settings.fdp_title,
        description=settings.fdp_description,
        publisher=settings.fdp_publisher,
        datasets=datasets,
    )


@router.get("/", responses=_RESPONSES, response_model=None)
def read_fair_data_point(request: Request, settings: SettingsDep, format: FormatQuery = None) -> Response:
    """The FAIR Data Point's metadata (a browser asking for HTML is sent to the API docs)."""
    try:
        choice = choose_rdf_format(request.headers.get("accept"), format)
    except NotAcceptable as exc:
        raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, detail=str(exc)) from exc
    if choice.html:
        return RedirectResponse("/docs", status_code=status.HTTP_303_SEE_OTHER)
    graph = _fdp(request, settings)
    return _render(request, graph, f"{settings.base_iri}/", format, container=catalog_iri(settings.base_iri))


@router.get("/catalog/{catalog_id}", responses=_RESPONSES, response_model=None)
def read_catalog(
    catalog_id: str, request: Request, session: SessionDep, settings: SettingsDep, format: FormatQuery = None
) -> Response:
    """The catalog record and the LDP container of its datasets."""
    graph = _catalog(catalog_id, session, settings)
    return _render(request, graph, catalog_iri(settings.base_iri), format)


def _shown(triples: list[ox.Triple], member: str | None) -> list[ox.Triple]:
    """The triples as this reader may see them: guests get rounded counts."""
    return triples if member is not None else guest_triples(triples)


def _collection_triples(
    catalog: CatalogDep, settings: SettingsDep, station: str, collection: str, member: str | None
) -> list[ox.Triple]:
    triples = catalog.graph_triples(dataset_iri(settings.base_iri, station, collection))
    if not triples:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no collection {station}/{collection} in the catalog")
    return _shown(triples, member)


@router.get("/dataset/{station}/{collection}", responses=_RESPONSES, response_model=None)
def read_dataset(
    station: str,
    collection: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    member: CatalogMember,
    format: FormatQuery = None,
) -> Response:
    """One collection's record: the station's description and what the hub adds (guests: rounded counts)."""
    triples = _collection_triples(catalog, settings, station, collection, member)
    iri = dataset_iri(settings.base_iri, station, collection)
    return _render(request, _to_rdflib(triples), iri, format)


@router.get("/distribution/{station}/{collection}", responses=_RESPONSES, response_model=None)
def read_distribution(
    station: str,
    collection: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    member: CatalogMember,
    format: FormatQuery = None,
) -> Response:
    """How a collection is used: remote processing by trains (no download)."""
    iri = distribution_iri(settings.base_iri, station, collection)
    subject = ox.NamedNode(iri)
    triples = [t for t in _collection_triples(catalog, settings, station, collection, member) if t.subject == subject]
    return _render(request, _to_rdflib(triples), iri, format)


def _subset(graph: Graph, subject: str) -> Graph:
    """The triples of ``graph`` about ``subject`` (with the graph's prefixes)."""
    part = Graph(namespace_manager=graph.namespace_manager)
    for triple in graph.triples((URIRef(subject), None, None)):
        part.add(triple)
    return part


@router.get("/catalogs", responses=_RESPONSES, response_model=None)
def read_catalogs(request: Request, settings: SettingsDep, format: FormatQuery = None) -> Response:
    """The LDP container of the FAIR Data Point's catalogs."""
    iri = f"{settings.base_iri.rstrip('/')}/catalogs"
    graph = _fdp(request, settings)
    return _render(request, _subset(graph, iri), iri, format)


@router.get("/catalog/{catalog_id}/datasets", responses=_RESPONSES, response_model=None)
def read_catalog_datasets(
    catalog_id: str, request: Request, session: SessionDep, settings: SettingsDep, format: FormatQuery = None
) -> Response:
    """The LDP container of the catalog's datasets."""
    graph = _catalog(catalog_id, session, settings)
    iri = f"{catalog_iri(settings.base_iri)}/datasets"
    return _render(request, _subset(graph, iri), iri, format)


@router.get("/station/{station}", responses=_RESPONSES, response_model=None)
def read_station_agent(
    station: str, request: Request, session: SessionDep, settings: SettingsDep, format: FormatQuery = None
) -> Response:
    """A station as the publishing agent of its collections."""
    if crud.get_station(session=session, station_id=station) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no station {station!r}")
    iri = station_iri(settings.base_iri, station)
    graph = Graph()
    graph.bind("foaf", FOAF)
    graph.bind("dct", DCTERMS)
    agent = URIRef(iri)
    graph.add((agent, RDF.type, FOAF.Agent))
    graph.add((agent, FOAF.name, Literal(station)))
    for row in crud.list_collections(session=session):
        if row.station_id == station:
            graph.add((URIRef(dataset_iri(settings.base_iri, station, row.collection)), DCTERMS.publisher, agent))
    return _render(request, graph, iri, format)


@router.get("/dataset/{station}/{collection}/version/{version}", responses=_RESPONSES, response_model=None)
def read_dataset_version(
    station: str,
    collection: str,
    version: Annotated[int, Path(ge=1)],
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    member: CatalogMember,
    format: FormatQuery = None,
) -> Response:
    """An earlier record of a collection (kept when the station republished it, without its counts)."""
    iri = f"{dataset_iri(settings.base_iri, station, collection)}/version/{version}"
    triples = catalog.graph_triples(iri)
    if not triples:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"collection {station}/{collection} has no version {version}"
        )
    return _render(request, _to_rdflib(_shown(triples, member)), iri, format)
