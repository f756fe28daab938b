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


def _username_for_token(engine: Engine, token: str) -> str | None:
    with Session(engine) as session:
        user = crud.get_user_for_token(session=session, token=token)
        return user.username if user is not None else None


async def _get_context(request: Request, credentials: TokenDep) -> CatalogContext:
    """Anyone may search (guests see rounded counts); a token that is sent must be valid.

    Async and without a database session for guests: a search is a hot path.
    """
    engine: Engine = request.app.state.engine
    username = None
    if credentials is not None:
        username = await anyio.to_thread.run_sync(_username_for_token, engine, credentials.credentials)
        if username is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="the token is unknown or expired: log in again (or send no token to search as a guest)",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return CatalogContext(
        open_session=partial(Session, engine), username=username, index=request.app.state.search_index
    )


router: GraphQLRouter[CatalogContext, None] = GraphQLRouter(
    schema, path="/graphql", context_getter=_get_context, tags=["graphql"]
)
