"""GraphQL over the catalog at ``/graphql`` (GraphiQL opens in a browser without a token)."""

from __future__ import annotations

from functools import partial

from fastapi import HTTPException, Request, status
from sqlmodel import Session
from strawberry.fastapi import GraphQLRouter

from hub import crud
from hub.api.deps import EngineDep, SessionDep, TokenDep
from hub.catalog.graphql import CatalogContext, schema


def _is_graphiql_page(request: Request) -> bool:
    return request.method == "GET" and "query" not in request.query_params


def _get_context(request: Request, engine: EngineDep, session: SessionDep, credentials: TokenDep) -> CatalogContext:
    user = crud.get_user_for_token(session=session, token=credentials.credentials) if credentials else None
    if user is None and not _is_graphiql_page(request):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="log in first: send 'Authorization: Bearer <token>' from POST /auth/login",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return CatalogContext(open_session=partial(Session, engine), username=user.username if user else None)


router: GraphQLRouter[CatalogContext, None] = GraphQLRouter(
    schema, path="/graphql", context_getter=_get_context, tags=["graphql"]
)
