"""Which scope an API token needs for each endpoint, and which scopes each role may hold.

A log-in session token (no scopes) may call everything its user's role allows. A scoped API
token may call only the endpoints listed here under one of its scopes, plus ``GET /users/me``;
every other endpoint (creating tokens, users, projects, ...) needs a log-in session.
"""

from __future__ import annotations

from hub.models import TokenScope
from protocol import Role

__all__ = ["ROLE_SCOPES", "ROUTE_SCOPES", "UNSCOPED_ROUTES", "scope_for_route"]

ROUTE_SCOPES: dict[tuple[str, str], TokenScope] = {
    ("GET", "/collections"): TokenScope.CATALOG_READ,
    ("GET", "/collections/{station}/{collection}"): TokenScope.CATALOG_READ,
    ("GET", "/graphql"): TokenScope.CATALOG_READ,
    ("POST", "/graphql"): TokenScope.CATALOG_READ,
    ("GET", "/sparql"): TokenScope.CATALOG_READ,
    ("POST", "/sparql"): TokenScope.CATALOG_READ,
    ("GET", "/stations"): TokenScope.CATALOG_READ,
    ("PUT", "/artifacts/{address}"): TokenScope.TRAINS_SUBMIT,
    ("POST", "/trains"): TokenScope.TRAINS_SUBMIT,
    ("GET", "/trains"): TokenScope.TRAINS_SUBMIT,
    ("GET", "/trains/{train_id}"): TokenScope.RESULTS_READ,
    ("GET", "/jobs/{job_id}/result"): TokenScope.RESULTS_READ,
    ("GET", "/artifacts/{address}"): TokenScope.RESULTS_READ,
    ("GET", "/access-requests"): TokenScope.REQUESTS_DECIDE,
    ("GET", "/access-requests/digest"): TokenScope.REQUESTS_DECIDE,
    ("GET", "/access-requests/{access_request_id}"): TokenScope.REQUESTS_DECIDE,
    ("GET", "/access-requests/{access_request_id}/events"): TokenScope.REQUESTS_DECIDE,
    **{
        ("POST", f"/access-requests/{{access_request_id}}/decisions/{{decision_id}}/{verb}"): TokenScope.REQUESTS_DECIDE
        for verb in ("approve", "offer-conditions", "decline", "request-information")
    },
    ("GET", "/grants"): TokenScope.REQUESTS_DECIDE,
    ("GET", "/grants/{grant_id}"): TokenScope.REQUESTS_DECIDE,
    **{
        ("POST", f"/grants/{{grant_id}}/{verb}"): TokenScope.REQUESTS_DECIDE for verb in ("suspend", "resume", "revoke")
    },
}

UNSCOPED_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/users/me")})

ROLE_SCOPES: dict[Role, frozenset[TokenScope]] = {
    Role.RESEARCHER: frozenset({TokenScope.CATALOG_READ, TokenScope.TRAINS_SUBMIT, TokenScope.RESULTS_READ}),
    Role.STEWARD: frozenset({TokenScope.CATALOG_READ, TokenScope.REQUESTS_DECIDE}),
    Role.ADMIN: frozenset({TokenScope.CATALOG_READ}),
}


def scope_for_route(method: str, path: str) -> TokenScope | None:
    """The scope an API token needs for ``method path`` (a route template); ``None`` when none grants it."""
    return ROUTE_SCOPES.get((method.upper(), path))
