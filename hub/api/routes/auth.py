"""Logging in: username and password for a bearer token."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from hub import audit, crud
from hub.api.deps import EngineDep, SessionDep, SettingsDep
from hub.models import LoginRequest, LoginResponse, UserPublic

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login")
def login(body: LoginRequest, session: SessionDep, settings: SettingsDep, engine: EngineDep) -> LoginResponse:
    """Exchange a username and password for a bearer token."""
    user = crud.authenticate_user(session=session, username=body.username, password=body.password)
    if user is None:
        audit.record_event(engine, actor=body.username, role="anonymous", action="auth.login_failed")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong username or password")
    token = crud.create_user_token(session=session, user=user, ttl_s=settings.token_ttl_s)
    audit.record_event(engine, actor=user.username, role=user.role.value, action="auth.login")
    return LoginResponse(access_token=token, user=UserPublic.model_validate(user, from_attributes=True))
