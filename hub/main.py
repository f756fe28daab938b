"""Build the hub's FastAPI application; nothing runs at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlmodel import Session

from hub import audit, crud
from hub.blobs import BlobStore
from hub.catalog.fdp_ping import ping_forever
from hub.catalog.index import SearchIndex
from hub.catalog.remote import RemoteSparqlStore
from hub.catalog.store import CatalogStore
from hub.core.config import Settings, get_settings
from hub.core.db import create_db_engine, create_tables
from hub.core.ratelimit import LoginLimiter
from hub.core.replay import NonceCache
from hub.core.wakeups import StationWakeups
from hub.fl import RoundCoordinator
from hub.governance import TransitionRefused

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


async def _transition_refused(_request: Request, exc: Exception) -> JSONResponse:
    """A move the governance table does not allow: 400, 403 or 409 with the rule in words."""
    assert isinstance(exc, TransitionRefused)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.message})


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


async def _sweep_leases(engine: Engine, settings: Settings) -> None:
    """Re-queue (or fail) jobs whose station stopped sending heartbeats, also when it never polls again."""
    interval = min(30.0, settings.job_lease_s / 2)
    while True:
        await asyncio.sleep(interval)

        def sweep() -> None:
            with Session(engine) as session:
                crud.expire_job_leases(session=session, max_attempts=settings.job_max_attempts)
                events, _cancelled = crud.sweep_access(
                    session=session, decision_ttl_s=settings.decision_ttl_days * 86400
                )
            audit.record_access_events(engine, events)

        try:
            await anyio.to_thread.run_sync(sweep)
        except Exception:  # a locked or briefly unavailable database: try at the next interval
            logger.exception("sweeping expired job leases failed")


async def _tick_rounds(rounds: RoundCoordinator, settings: Settings) -> None:
    """Close federated rounds whose deadline passed, and finish what a restart interrupted."""
    while True:
        try:
            await anyio.to_thread.run_sync(rounds.tick)
        except Exception:  # a locked database: try again at the next interval
            logger.exception("advancing federated rounds failed")
        await asyncio.sleep(settings.fl_tick_s)


def _open_catalog(settings: Settings) -> CatalogStore:
    """The embedded Oxigraph store, or the external SPARQL store the settings name."""
    if settings.catalog_sparql_query_url is None:
        return CatalogStore(settings.catalog_dir)
    password = settings.catalog_sparql_password
    remote = RemoteSparqlStore(
        settings.catalog_sparql_query_url,
        update_url=settings.catalog_sparql_update_url,
        username=settings.catalog_sparql_username,
        password=password.get_secret_value() if password is not None else None,
        auth=settings.catalog_sparql_auth,
        timeout_s=max(60.0, settings.sparql_timeout_s),
    )
    return CatalogStore(remote=remote)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Create the hub application for ``settings`` (default: from the environment).

    The database tables, the catalog store and the storage folders are opened when the
    application starts (its lifespan), not here.

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> app = create_app(Settings(state_dir=Path("/tmp/hub-state")))  # doctest: +SKIP
    >>> with TestClient(app) as client:  # doctest: +SKIP
    ...     client.post("/auth/login", json={"username": "admin", "password": "..."})
    """
    from hub.api.main import api_router  # imported here: building the routers is not import-time work

    resolved = settings if settings is not None else get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved.state_dir.mkdir(parents=True, exist_ok=True)
        engine = create_db_engine(resolved)
        create_tables(engine)
        catalog = _open_catalog(resolved)
        app.state.settings = resolved
        app.state.engine = engine
        app.state.catalog = catalog
        app.state.search_index = await anyio.to_thread.run_sync(SearchIndex.from_store, catalog.store)
        app.state.artifacts = BlobStore(resolved.artifacts_dir)
        app.state.vault = BlobStore(resolved.vault_dir)
        app.state.wakeups = StationWakeups(asyncio.get_running_loop())
        app.state.nonces = NonceCache(resolved.station_request_max_age_s)
        app.state.login_limiter = LoginLimiter(resolved.login_max_failures, resolved.login_window_s)
        app.state.rounds = RoundCoordinator(engine, app.state.artifacts, notify=app.state.wakeups.notify)
        sweeper = asyncio.create_task(_sweep_leases(engine, resolved))
        ticker = asyncio.create_task(_tick_rounds(app.state.rounds, resolved))
        ping = None
        if resolved.fdp_index_urls:
            ping = asyncio.create_task(
                ping_forever(resolved.fdp_index_urls, resolved.base_iri, resolved.fdp_ping_interval_s)
            )
        try:
            yield
        finally:
            sweeper.cancel()
            ticker.cancel()
            if ping is not None:
                ping.cancel()
            catalog.close()
            engine.dispose()
            del app.state.catalog

    app = FastAPI(
        title="Trainyard hub",
        summary="Federated imaging catalog and train-to-data hub",
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = resolved
    app.include_router(api_router)
    app.add_exception_handler(TransitionRefused, _transition_refused)
    return app
