"""GraphQL over the catalog at ``/graphql`` (GraphiQL opens in a browser without a token)."""

from __future__ import annotations

from functools import partial

import anyio
from fastapi import HTTPException, Request, status
from sqlalchemy import Engine
from sqlmodel import Session
from strawberry.fastapi import GraphQLRouter

from hub import crud
from hub.api.deps import TokenDep
from hub.catalog.graphql import CatalogContext, schema
from hub.models import TokenScope


def _caller_for_token(engine: Engine, token: str) -> tuple[str, list[str] | None] | None:
    """The username and the scopes (``None`` for a log-in session) of a live user token."""
    with Session(engine) as session:
        found = crud.get_user_token(session=session, token=token)
        return (found[0].username, found[1].scopes) if found is not None else None


async def _get_context(request: Request, credentials: TokenDep) -> CatalogContext:
    """Anyone may search (guests see rounded counts); a token that is sent must be valid.

    Async and without a database session for guests: a search is a hot path.
    """
    engine: Engine = request.app.state.engine
    username = None
    if credentials is not None:
        caller = await anyio.to_thread.run_sync(_caller_for_token, engine, credentials.credentials)
        if caller is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="the token is unknown or expired: log in again (or send no token to search as a guest)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        username, scopes = caller
        if scopes is not None and TokenScope.CATALOG_READ.value not in scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"this API token lacks the scope {TokenScope.CATALOG_READ.value!r} that /graphql needs",
            )
    return CatalogContext(
        open_session=partial(Session, engine), username=username, index=request.app.state.search_index
    )


router: GraphQLRouter[CatalogContext, None] = GraphQLRouter(
    schema, path="/graphql", context_getter=_get_context, tags=["graphql"]
)
