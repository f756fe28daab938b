"""GraphQL over the catalog at ``/graphql`` (GraphiQL opens in a browser without a token)."""

from __future__ import annotations

from functools import partial

from fastapi import HTTPException, Request, status
from sqlmodel import Session
from strawberry.fastapi import GraphQLRouter

from hub import crud
from hub.api.deps import EngineDep, SessionDep, TokenDep
from hub.catalog.graphql import CatalogContext, schema


def _get_context(request: Request, engine: EngineDep, session: SessionDep, credentials: TokenDep) -> CatalogContext:
    """Anyone may search (guests see rounded counts); a token that is sent must be valid."""
    user = crud.get_user_for_token(session=session, token=credentials.credentials) if credentials else None
    if credentials is not None and user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the token is unknown or expired: log in again (or send no token to search as a guest)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return CatalogContext(
        open_session=partial(Session, engine),
        username=user.username if user else None,
        index=request.app.state.search_index,
    )


router: GraphQLRouter[CatalogContext, None] = GraphQLRouter(
    schema, path="/graphql", context_getter=_get_context, tags=["graphql"]
)
