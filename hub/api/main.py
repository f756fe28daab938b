"""The API router: one router per resource."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.routes import (
    access_requests,
    artifacts,
    audit,
    auth,
    catalog,
    fdp,
    grants,
    graphql,
    jobs,
    models,
    projects,
    secagg,
    sparql,
    stations,
    tokens,
    trains,
    uploads,
    users,
)

__all__ = ["api_router"]

api_router = APIRouter()
api_router.include_router(auth.router)
api_router.include_router(audit.router)
api_router.include_router(users.router)
api_router.include_router(tokens.router)
api_router.include_router(stations.router)
api_router.include_router(secagg.router)
api_router.include_router(uploads.router)
api_router.include_router(catalog.router)
api_router.include_router(projects.router)
api_router.include_router(access_requests.router)
api_router.include_router(grants.router)
api_router.include_router(artifacts.router)
api_router.include_router(trains.router)
api_router.include_router(jobs.router)
api_router.include_router(models.router)
api_router.include_router(graphql.router)
api_router.include_router(sparql.router)
api_router.include_router(fdp.router)
