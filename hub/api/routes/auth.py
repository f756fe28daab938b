"""Logging in: username and password for a bearer token, with failed attempts rate-limited."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from hub import audit, crud
from hub.api.deps import EngineDep, SessionDep, SettingsDep
from hub.core.ratelimit import LoginLimiter
from hub.models import LoginRequest, LoginResponse, UserPublic

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", responses={429: {"description": "too many failed log-ins; see Retry-After"}})
def login(
    body: LoginRequest, request: Request, session: SessionDep, settings: SettingsDep, engine: EngineDep
) -> LoginResponse:
    """Exchange a username and password for a bearer token."""
    limiter: LoginLimiter = request.app.state.login_limiter
    keys = (f"user:{body.username}", f"addr:{request.client.host if request.client else 'unknown'}")
    wait = limiter.retry_after(*keys)
    if wait:
        audit.record_event(engine, actor=body.username, role="anonymous", action="auth.login_throttled")
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed log-ins: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = crud.authenticate_user(session=session, username=body.username, password=body.password)
    if user is None:
        limiter.failed(*keys)
        audit.record_event(engine, actor=body.username, role="anonymous", action="auth.login_failed")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong username or password")
    limiter.succeeded(keys[0])
    token = crud.create_user_token(session=session, user=user, ttl_s=settings.token_ttl_s)
    audit.record_event(engine, actor=user.username, role=user.role.value, action="auth.login")
    return LoginResponse(access_token=token, user=UserPublic.model_validate(user, from_attributes=True))
