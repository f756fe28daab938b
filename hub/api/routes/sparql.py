"""The SPARQL 1.1 Protocol endpoint: read-only queries over the catalog, GET or POST.

Anyone may query: the catalog holds only what stations published, which is disclosure-
controlled. Guests (no token, or a station's) query the guests' view, where every count is
rounded down to a multiple of 10 as GraphQL shows them (:mod:`hub.catalog.guest`), so no query
can filter on or compute with an exact count; members (a user's token) query the published
counts. The result format follows ``Accept`` (or ``?format=json|xml|csv|tsv`` for SELECT and
ASK, ``ttl|nt|rdf|jsonld`` for CONSTRUCT and DESCRIBE).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import parse_qs

import anyio
from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from hub.api.deps import CatalogDep, SettingsDep
from hub.api.routes.graphql import CatalogMember
from hub.catalog.sparql import GRAPH_FORMATS, READ_ONLY, RESULT_FORMATS, SparqlError, SparqlTimeout, run_query

router = APIRouter(prefix="/sparql", tags=["sparql"])

_SHORT = {
    "json": ("json", "text/turtle"),
    "xml": ("xml", "application/rdf+xml"),
    "csv": ("csv", "text/turtle"),
    "tsv": ("tsv", "text/turtle"),
    "ttl": ("json", "text/turtle"),
    "nt": ("json", "application/n-triples"),
    "rdf": ("xml", "application/rdf+xml"),
    "jsonld": ("json", "application/ld+json"),
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {media: {} for media in (*RESULT_FORMATS, *GRAPH_FORMATS)},
        "description": "SELECT/ASK results or a CONSTRUCT/DESCRIBE graph",
    },
    400: {"description": "no query, a syntax error, an update, or too many results"},
    503: {"description": "the query ran past the time limit"},
}


def _refuse_update() -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=READ_ONLY)


def _negotiate(accept: str, fmt: str | None) -> tuple[str, str]:
    if fmt is not None:
        if fmt not in _SHORT:
            raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, detail=f"format must be one of {', '.join(_SHORT)}")
        return _SHORT[fmt]
    result_format, graph_format = "json", "text/turtle"
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    for media in wanted:
        if media in RESULT_FORMATS:
            result_format = RESULT_FORMATS[media]
            break
    for media in wanted:
        if media in GRAPH_FORMATS:
            graph_format = media
            break
    return result_format, graph_format


async def _answer(
    request: Request,
    query: str | None,
    fmt: str | None,
    catalog: CatalogDep,
    settings: SettingsDep,
    member: str | None,
) -> Response:
    if not query or not query.strip():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="send a SPARQL query: GET /sparql?query=... or POST it")
    result_format, graph_format = _negotiate(request.headers.get("accept", ""), fmt)
    store = catalog.store if member is not None else catalog.guest_store
    if store is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="log in to query: this hub's catalog is in an external SPARQL store, which keeps no guests' view "
            "(guests may search with /graphql and read records from the FAIR Data Point)",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def work() -> Response:
        outcome = run_query(
            store,
            query,
            result_format=result_format,
            graph_media_type=graph_format,
            timeout_s=settings.sparql_timeout_s,
            limit=settings.sparql_result_limit,
        )
        return Response(outcome.body, media_type=outcome.media_type, headers={"Vary": "Accept, Authorization"})

    try:
        return await asyncio.wait_for(anyio.to_thread.run_sync(work), timeout=settings.sparql_timeout_s + 1)
    except (SparqlTimeout, TimeoutError) as exc:
        detail = str(exc) or f"the query ran longer than {settings.sparql_timeout_s:g} s"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail) from exc
    except SparqlError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc


@router.get("", responses=_RESPONSES)
async def sparql_get(
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    member: CatalogMember,
    query: Annotated[str | None, Query(description="the SPARQL query")] = None,
    format: Annotated[str | None, Query(description="json, xml, csv, tsv, ttl, nt, rdf or jsonld")] = None,
) -> Response:
    """Run a read-only SPARQL query given in the URL (guests: counts rounded down to a multiple of 10)."""
    if "update" in request.query_params:
        raise _refuse_update()
    return await _answer(request, query, format, catalog, settings, member)


@router.post("", responses=_RESPONSES)
async def sparql_post(
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    member: CatalogMember,
    format: Annotated[str | None, Query(description="json, xml, csv, tsv, ttl, nt, rdf or jsonld")] = None,
) -> Response:
    """Run a read-only SPARQL query sent as ``application/sparql-query`` or as a ``query=`` form (guests: counts
    rounded down to a multiple of 10)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = (await request.body()).decode("utf-8", errors="replace")
    if content_type == "application/sparql-query":
        query = body
    elif content_type == "application/x-www-form-urlencoded":
        form = parse_qs(body, keep_blank_values=True)
        if "update" in form:
            raise _refuse_update()
        query = (form.get("query") or [""])[0]
    elif content_type == "application/sparql-update":
        raise _refuse_update()
    else:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="POST the query as application/sparql-query or as a query= form (application/x-www-form-urlencoded)",
        )
    return await _answer(request, query, format, catalog, settings, member)
