"""GraphQL over the catalog at ``/graphql`` (GraphiQL opens in a browser without a token)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Engine
from sqlmodel import Session
from strawberry.fastapi import GraphQLRouter

from hub import crud
from hub.api.deps import TokenDep
from hub.catalog.graphql import CatalogContext, schema
from hub.models import TokenScope

_STATION = "station"


def _caller_for_token(engine: Engine, token: str) -> tuple[str, list[str] | None] | str | None:
    """The username and the scopes (``None`` for a log-in session) of a live user token; ``"station"``
    for a station's token; ``None`` for anything else."""
    with Session(engine) as session:
        found = crud.get_user_token(session=session, token=token)
        if found is not None:
            return found[0].username, found[1].scopes
        return _STATION if crud.get_station_for_token(session=session, token=token) is not None else None


async def catalog_member(request: Request, credentials: TokenDep) -> str | None:
    """Who reads ``/sparql`` or the FAIR Data Point (see :func:`_reader`; stations read as guests)."""
    return await _reader(request, credentials, stations_read_as_guests=True)


async def _reader(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, stations_read_as_guests: bool
) -> str | None:
    """Who reads the catalog: a member's username, or ``None`` for a guest (rounded counts).

    No token is a guest; a live user token (a scoped one needs ``catalog:read``) a member; a
    station's token a guest where ``stations_read_as_guests``; any other token is refused (401),
    so an expired log-in is not mistaken for a guest. Async and without a database session for
    guests: a search is a hot path.
    """
    if credentials is None:
        return None
    engine: Engine = request.app.state.engine
    caller = await anyio.to_thread.run_sync(_caller_for_token, engine, credentials.credentials)
    if caller == _STATION and stations_read_as_guests:
        return None
    if not isinstance(caller, tuple):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the token is unknown or expired: log in again (or send no token to read as a guest)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    username, scopes = caller
    if scopes is not None and TokenScope.CATALOG_READ.value not in scopes:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this API token lacks the scope {TokenScope.CATALOG_READ.value!r} that {request.url.path} needs",
        )
    return username


CatalogMember = Annotated[str | None, Depends(catalog_member)]
"""The reader of ``/sparql`` and the FAIR Data Point: a member's username, or ``None`` for a guest."""


async def _get_context(request: Request, credentials: TokenDep) -> CatalogContext:
    """Anyone may search (guests see rounded counts); a token that is sent must be a user's and valid."""
    username = await _reader(request, credentials, stations_read_as_guests=False)
    engine: Engine = request.app.state.engine
    return CatalogContext(
        open_session=partial(Session, engine), username=username, index=request.app.state.search_index
    )


router: GraphQLRouter[CatalogContext, None] = GraphQLRouter(
    schema, path="/graphql", context_getter=_get_context, tags=["graphql"]
)
