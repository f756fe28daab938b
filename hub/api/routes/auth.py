"""Logging in: username and password (rate-limited), or OpenID Connect when configured."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse

from hub import audit, crud
from hub.api.deps import EngineDep, SessionDep, SettingsDep
from hub.core.oidc import OidcClient, OidcError, OidcProviderError, role_for_claims
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


# -- OpenID Connect (optional; local accounts stay the default) ------------------------------

_oidc_lock = threading.Lock()


def _get_oidc(request: Request, settings: SettingsDep) -> OidcClient:
    """The hub's OpenID Connect client (404 when the hub has none configured)."""
    if not settings.oidc_enabled:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="OpenID Connect login is not configured on this hub: log in with a username and password",
        )
    with _oidc_lock:
        client: OidcClient | None = getattr(request.app.state, "oidc", None)
        if client is None:
            client = OidcClient(settings)
            request.app.state.oidc = client
    return client


OidcDep = Annotated[OidcClient, Depends(_get_oidc)]


def _refusal(exc: OidcError) -> HTTPException:
    if isinstance(exc, OidcProviderError):
        return HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"OpenID Connect login failed: {exc}")
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=f"OpenID Connect login refused: {exc}")


@router.get(
    "/oidc/login",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={302: {"description": "to the identity provider"}, 404: {"description": "OIDC not configured"}},
)
def start_oidc_login(oidc: OidcDep) -> RedirectResponse:
    """Start an OpenID Connect log-in: redirect to the identity provider (code flow with PKCE)."""
    try:
        login = oidc.begin_login()
    except OidcError as exc:
        raise _refusal(exc) from exc
    return RedirectResponse(login.authorization_url, status_code=status.HTTP_302_FOUND)


@router.get("/oidc/callback")
def finish_oidc_login(
    oidc: OidcDep,
    session: SessionDep,
    settings: SettingsDep,
    engine: EngineDep,
    state: Annotated[str, Query(min_length=1, max_length=200)],
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
) -> LoginResponse:
    """Finish an OpenID Connect log-in: verify the provider's id_token and issue a hub session token."""
    if error is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"the identity provider refused the log-in: {error}"
            + (f" ({error_description})" if error_description else ""),
        )
    if not code:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="the callback carries no code: start again at /auth/oidc/login"
        )
    try:
        claims = oidc.finish_login(code=code, state=state)
    except OidcError as exc:
        audit.record_event(
            engine, actor="oidc", role="anonymous", action="auth.login_failed", details={"reason": str(exc)[:200]}
        )
        raise _refusal(exc) from exc
    role, station = role_for_claims(claims, settings)
    hint = claims.get("preferred_username") or claims.get("email")
    user = crud.provision_oidc_user(
        session=session,
        issuer=oidc.issuer,
        subject=str(claims["sub"]),
        username_hint=hint if isinstance(hint, str) else None,
        role=role,
        station=station,
        update_role=bool(settings.oidc_role_map),
    )
    token = crud.create_user_token(session=session, user=user, ttl_s=settings.token_ttl_s)
    audit.record_event(
        engine, actor=user.username, role=user.role.value, action="auth.login", details={"provider": "oidc"}
    )
    return LoginResponse(access_token=token, user=UserPublic.model_validate(user, from_attributes=True))
