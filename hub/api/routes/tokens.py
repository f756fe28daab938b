"""API tokens: named, scoped, expiring and revocable bearer tokens for scripts and CI."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from hub import audit, crud
from hub.api.deps import CurrentUser, EngineDep, SessionDep
from hub.core.scopes import ROLE_SCOPES
from hub.models import ApiTokenCreate, ApiTokenCreated, ApiTokenPublic, ApiTokensPublic, Token

router = APIRouter(prefix="/tokens", tags=["tokens"])

_DAY_S = 86_400


def _public(token: Token) -> ApiTokenPublic:
    return ApiTokenPublic.model_validate(token, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_token(body: ApiTokenCreate, session: SessionDep, user: CurrentUser, engine: EngineDep) -> ApiTokenCreated:
    """Create an API token with the given scopes; its secret is shown only in this answer."""
    allowed = ROLE_SCOPES.get(user.role, frozenset())
    refused = sorted(scope.value for scope in body.scopes if scope not in allowed)
    if refused:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"the {user.role.value} role cannot hold the scope(s) {', '.join(refused)}",
        )
    secret, row = crud.create_api_token(
        session=session,
        user=user,
        name=body.name,
        scopes=[scope.value for scope in body.scopes],
        ttl_s=body.ttl_days * _DAY_S,
    )
    audit.record_event(engine, actor=user.username, role=user.role.value, action="token.create", subject=row.id)
    return ApiTokenCreated(token=secret, **_public(row).model_dump())


@router.get("")
def read_tokens(session: SessionDep, user: CurrentUser) -> ApiTokensPublic:
    """List the caller's API tokens (never their secrets)."""
    tokens = [_public(token) for token in crud.list_api_tokens(session=session, user=user)]
    return ApiTokensPublic(data=tokens, count=len(tokens))


@router.delete("/{token_id}")
def delete_token(token_id: str, session: SessionDep, user: CurrentUser, engine: EngineDep) -> ApiTokenPublic:
    """Revoke one of the caller's API tokens."""
    token = crud.get_api_token(session=session, token_id=token_id)
    if token is None or token.user_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"you have no API token {token_id!r}")
    revoked = crud.revoke_api_token(session=session, token=token)
    audit.record_event(engine, actor=user.username, role=user.role.value, action="token.revoke", subject=token_id)
    return _public(revoked)
