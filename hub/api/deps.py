"""Typed dependencies: the session, who is calling, role checks and load-and-authorise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from hub import crud
from hub.blobs import BlobStore
from hub.catalog.store import CatalogStore
from hub.core.config import Settings
from hub.core.replay import NonceCache
from hub.core.scopes import UNSCOPED_ROUTES, scope_for_route
from hub.core.wakeups import StationWakeups
from hub.fl import RoundCoordinator
from hub.models import Job, Station, Token, Train, User
from protocol import Role, SignatureError, key_id_for_public_key, verify_request

__all__ = [
    "BINARY_BODY",
    "OCTET_STREAM",
    "AdminUser",
    "ArtifactsDep",
    "CatalogDep",
    "CurrentCaller",
    "CurrentStation",
    "CurrentUser",
    "EngineDep",
    "OwnedJob",
    "OwnedTrain",
    "ReadableTrain",
    "ResearcherUser",
    "RoundsDep",
    "SessionDep",
    "SettingsDep",
    "StewardUser",
    "TokenDep",
    "VaultDep",
    "WakeupsDep",
    "require_role",
]

OCTET_STREAM = "application/octet-stream"
BINARY_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}}}
}
"""``openapi_extra`` of a route whose body is raw bytes (read from the request stream, not a model)."""

_bearer = HTTPBearer(auto_error=False, description="A user's token from /auth/login, or a station's API token")


def _get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _get_catalog(request: Request) -> CatalogStore:
    catalog: CatalogStore = request.app.state.catalog
    return catalog


def _get_artifacts(request: Request) -> BlobStore:
    artifacts: BlobStore = request.app.state.artifacts
    return artifacts


def _get_vault(request: Request) -> BlobStore:
    vault: BlobStore = request.app.state.vault
    return vault


def _get_wakeups(request: Request) -> StationWakeups:
    wakeups: StationWakeups = request.app.state.wakeups
    return wakeups


def _get_rounds(request: Request) -> RoundCoordinator:
    rounds: RoundCoordinator = request.app.state.rounds
    return rounds


SettingsDep = Annotated[Settings, Depends(_get_settings)]
EngineDep = Annotated[Engine, Depends(_get_engine)]
CatalogDep = Annotated[CatalogStore, Depends(_get_catalog)]
ArtifactsDep = Annotated[BlobStore, Depends(_get_artifacts)]
VaultDep = Annotated[BlobStore, Depends(_get_vault)]
WakeupsDep = Annotated[StationWakeups, Depends(_get_wakeups)]
RoundsDep = Annotated[RoundCoordinator, Depends(_get_rounds)]


def _get_session(engine: EngineDep) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(_get_session)]
TokenDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _check_token_scope(request: Request, token: Token) -> None:
    """Refuse (403, naming the scope) a scoped API token on an endpoint its scopes do not cover."""
    if token.scopes is None:
        return
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    if (request.method, path) in UNSCOPED_ROUTES:
        return
    needed = scope_for_route(request.method, path)
    if needed is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"an API token cannot call {request.method} {path}: log in for a session token",
        )
    if needed.value not in token.scopes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"this API token lacks the scope {needed.value!r}")


def _get_current_user(request: Request, session: SessionDep, credentials: TokenDep) -> User:
    if credentials is None:
        raise _unauthorised("log in first: send 'Authorization: Bearer <token>' from POST /auth/login")
    found = crud.get_user_token(session=session, token=credentials.credentials)
    if found is None:
        raise _unauthorised("the token is unknown, expired or revoked: log in again")
    user, token = found
    _check_token_scope(request, token)
    return user


async def _verify_station_request(request: Request, station: Station) -> None:
    """Refuse a station request that is unsigned, stale, replayed or changed (401, saying why)."""
    settings: Settings = request.app.state.settings
    try:
        signed = verify_request(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            body=await request.body(),
            headers=request.headers,
            public_key=station.signing_public_key,
            expected_key_id=key_id_for_public_key(station.signing_public_key),
            max_age_s=settings.station_request_max_age_s,
        )
    except SignatureError as exc:
        raise _unauthorised(f"station request refused: {exc}") from exc
    nonces: NonceCache = request.app.state.nonces
    if not nonces.remember(station.id, signed.nonce):
        raise _unauthorised("station request refused: this signed request was already received (a replay)")


async def _get_current_station(request: Request, session: SessionDep, credentials: TokenDep) -> Station:
    if credentials is None:
        raise _unauthorised("send the station's API token as 'Authorization: Bearer <token>'")
    station = crud.get_station_for_token(session=session, token=credentials.credentials)
    if station is None:
        raise _unauthorised("the station token is unknown or revoked: enrol the station again")
    await _verify_station_request(request, station)
    return station


async def _get_current_caller(request: Request, session: SessionDep, credentials: TokenDep) -> User | Station:
    if credentials is None:
        raise _unauthorised("send a user's or a station's token as 'Authorization: Bearer <token>'")
    found = crud.get_user_token(session=session, token=credentials.credentials)
    if found is not None:
        _check_token_scope(request, found[1])
        return found[0]
    station = crud.get_station_for_token(session=session, token=credentials.credentials)
    if station is None:
        raise _unauthorised("the token is unknown or expired")
    await _verify_station_request(request, station)
    return station


CurrentUser = Annotated[User, Depends(_get_current_user)]
CurrentStation = Annotated[Station, Depends(_get_current_station)]
CurrentCaller = Annotated[User | Station, Depends(_get_current_caller)]


def require_role(role: Role) -> Callable[[User], User]:
    """Return a dependency that lets only users of ``role`` through (403 for the others)."""

    def _check(user: CurrentUser) -> User:
        if user.role != role:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"this needs the {role.value} role")
        return user

    return _check


AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
ResearcherUser = Annotated[User, Depends(require_role(Role.RESEARCHER))]
StewardUser = Annotated[User, Depends(require_role(Role.STEWARD))]


def _get_owned_train(train_id: str, session: SessionDep, user: CurrentUser) -> Train:
    train = crud.get_train(session=session, train_id=train_id)
    if train is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no train {train_id!r}")
    if train.owner != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this train belongs to another researcher")
    return train


def _reads_results(train: Train, user: User) -> bool:
    """The train's researcher, or a co-recipient the researcher's signed manifest names."""
    if train.owner == user.username:
        return True
    manifest = train.signed_manifest.get("manifest", {})
    return any(recipient.get("name") == user.username for recipient in manifest.get("co_recipients", []))


def _get_readable_train(train_id: str, session: SessionDep, user: CurrentUser) -> Train:
    train = crud.get_train(session=session, train_id=train_id)
    if train is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no train {train_id!r}")
    if not _reads_results(train, user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this train belongs to another researcher")
    return train


def _get_owned_job(job_id: str, session: SessionDep, user: CurrentUser) -> Job:
    job = crud.get_job(session=session, job_id=job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
    train = crud.get_train(session=session, train_id=job.train_id)
    if train is None or not _reads_results(train, user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this job belongs to another researcher's train")
    return job


OwnedTrain = Annotated[Train, Depends(_get_owned_train)]
ReadableTrain = Annotated[Train, Depends(_get_readable_train)]
OwnedJob = Annotated[Job, Depends(_get_owned_job)]
