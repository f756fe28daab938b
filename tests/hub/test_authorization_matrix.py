"""Every endpoint of the hub's route table, called as every kind of caller.

The table below says who may call what. The test fails when the app has an endpoint the
table does not name, so a new endpoint cannot escape it. A caller the table does not allow
must get 401 or 403; an allowed one must get past authorisation (any other status: the
bodies sent here are deliberately empty, so 4xx validation answers are expected).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hub_factories import (
    STATION,
    EnrolledStation,
    Headers,
    HubFactory,
    Researcher,
    make_manifest,
    sign_station_requests,
)

from hub import Settings, create_app
from hub.core import security
from protocol import Role

ANONYMOUS, RESEARCHER, OTHER_RESEARCHER, STEWARD, OTHER_STEWARD, ADMIN, STATION_ROLE = (
    "anonymous",
    "researcher",
    "other-researcher",
    "steward",
    "other-steward",
    "admin",
    "station",
)
ROLES = (ANONYMOUS, RESEARCHER, OTHER_RESEARCHER, STEWARD, OTHER_STEWARD, ADMIN, STATION_ROLE)
USERS = (RESEARCHER, OTHER_RESEARCHER, STEWARD, OTHER_STEWARD, ADMIN)
EVERYONE = frozenset(ROLES)
ANY_USER = frozenset(USERS)
RESEARCHERS = frozenset({RESEARCHER, OTHER_RESEARCHER})
STEWARDS = frozenset({STEWARD, OTHER_STEWARD})

# (method, path template) → who may call it. "researcher" owns the train, job and request;
# "steward" is the steward of the station the request's decision is for.
POLICY: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/auth/login"): EVERYONE,
    ("GET", "/auth/oidc/login"): EVERYONE,  # starts a single sign-on (404 while OIDC is off)
    ("GET", "/auth/oidc/callback"): EVERYONE,  # the identity provider's answer is the credential
    ("GET", "/audit"): frozenset({ADMIN}),
    ("GET", "/audit/verify"): frozenset({ADMIN}),
    ("GET", "/users/me"): ANY_USER,
    ("PUT", "/users/me/keys"): ANY_USER,
    ("GET", "/users"): frozenset({ADMIN}),
    ("POST", "/users"): frozenset({ADMIN}),
    ("POST", "/tokens"): ANY_USER,
    ("GET", "/tokens"): ANY_USER,
    ("DELETE", "/tokens/{token_id}"): ANY_USER,  # each revokes only their own (404 otherwise)
    ("POST", "/stations/enrolment-tokens"): frozenset({ADMIN}),
    ("POST", "/stations/enrol"): EVERYONE,  # the one-time token in the body is the credential
    ("GET", "/stations"): ANY_USER,
    ("PUT", "/stations/me/collections/{collection}"): frozenset({STATION_ROLE}),
    ("GET", "/stations/me/jobs/next"): frozenset({STATION_ROLE}),
    ("POST", "/stations/me/jobs/{job_id}/result"): frozenset({STATION_ROLE}),
    ("POST", "/stations/me/jobs/{job_id}/heartbeat"): frozenset({STATION_ROLE}),
    ("PUT", "/stations/me/jobs/{job_id}/update/{address}"): frozenset({STATION_ROLE}),
    ("PUT", "/stations/me/jobs/{job_id}/secagg/{step}"): frozenset({STATION_ROLE}),
    ("GET", "/stations/me/jobs/{job_id}/secagg/{publication}"): frozenset({STATION_ROLE}),
    ("POST", "/stations/me/jobs/{job_id}/uploads"): frozenset({STATION_ROLE}),
    ("GET", "/stations/me/jobs/{job_id}/uploads/{upload_id}"): frozenset({STATION_ROLE}),
    ("PUT", "/stations/me/jobs/{job_id}/uploads/{upload_id}/{offset}"): frozenset({STATION_ROLE}),
    ("GET", "/collections"): ANY_USER,
    ("GET", "/collections/{station}/{collection}"): ANY_USER,
    ("GET", "/projects"): RESEARCHERS,
    ("POST", "/projects"): RESEARCHERS,
    ("GET", "/projects/{project_id}"): RESEARCHERS,  # a non-member gets 404: the project stays unnamed
    ("PATCH", "/projects/{project_id}"): RESEARCHERS,
    ("GET", "/access-requests"): ANY_USER,  # each sees only their own (tested in the route tests)
    ("POST", "/access-requests"): RESEARCHERS,
    ("POST", "/access-requests/check"): RESEARCHERS,
    ("GET", "/access-requests/digest"): STEWARDS,
    ("GET", "/access-requests/{access_request_id}"): frozenset({RESEARCHER, STEWARD, ADMIN}),
    ("GET", "/access-requests/{access_request_id}/events"): frozenset({RESEARCHER, STEWARD, ADMIN}),
    ("PATCH", "/access-requests/{access_request_id}"): frozenset({RESEARCHER}),
    ("POST", "/access-requests/{access_request_id}/submit"): frozenset({RESEARCHER}),
    ("POST", "/access-requests/{access_request_id}/withdraw"): frozenset({RESEARCHER}),
    ("POST", "/access-requests/{access_request_id}/reject"): frozenset({ADMIN}),
    ("POST", "/access-requests/{access_request_id}/forward"): frozenset({ADMIN}),
    ("POST", "/access-requests/{access_request_id}/return"): frozenset({ADMIN}),
    **{
        ("POST", f"/access-requests/{{access_request_id}}/decisions/{{decision_id}}/{verb}"): frozenset({STEWARD})
        for verb in ("approve", "offer-conditions", "decline", "request-information")
    },
    **{
        ("POST", f"/access-requests/{{access_request_id}}/decisions/{{decision_id}}/{verb}"): frozenset({RESEARCHER})
        for verb in ("answer", "accept", "decline-offer")
    },
    ("GET", "/grants"): ANY_USER,  # each sees their projects' or station's (tested in the route tests)
    ("GET", "/grants/{grant_id}"): ANY_USER,  # 404 for a grant that is not yours to see
    ("POST", "/grants/{grant_id}/suspend"): frozenset({STEWARD}),
    ("POST", "/grants/{grant_id}/resume"): frozenset({STEWARD}),
    ("POST", "/grants/{grant_id}/revoke"): frozenset({STEWARD}),
    ("GET", "/artifacts/{address}"): ANY_USER | {STATION_ROLE},
    ("PUT", "/artifacts/{address}"): RESEARCHERS,
    ("GET", "/trains"): RESEARCHERS,
    ("POST", "/trains"): RESEARCHERS,
    ("GET", "/trains/{train_id}"): frozenset({RESEARCHER}),
    ("POST", "/trains/{train_id}/cancel"): frozenset({RESEARCHER}),
    ("GET", "/trains/{train_id}/rounds"): frozenset({RESEARCHER}),
    ("GET", "/models"): RESEARCHERS,
    ("GET", "/models/{model_id}"): RESEARCHERS,
    ("GET", "/models/{model_id}/weights"): RESEARCHERS,
    ("GET", "/jobs/{job_id}/result"): frozenset({RESEARCHER}),
    ("GET", "/graphql"): ANY_USER | {ANONYMOUS},  # guests may search (rounded counts); members see more
    ("POST", "/graphql"): ANY_USER | {ANONYMOUS},
    ("GET", "/sparql"): EVERYONE,  # the public catalog: disclosure-controlled aggregates only
    ("POST", "/sparql"): EVERYONE,
    ("GET", "/"): EVERYONE,  # the FAIR Data Point: public catalog records
    ("GET", "/catalog/{catalog_id}"): EVERYONE,
    ("GET", "/dataset/{station}/{collection}"): EVERYONE,
    ("GET", "/distribution/{station}/{collection}"): EVERYONE,
    ("GET", "/catalogs"): EVERYONE,
    ("GET", "/catalog/{catalog_id}/datasets"): EVERYONE,
    ("GET", "/station/{station}"): EVERYONE,  # a publishing agent: its name and datasets
    ("GET", "/dataset/{station}/{collection}/version/{version}"): EVERYONE,
}


@dataclass
class World:
    client: TestClient
    headers: dict[str, Headers]
    params: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    original = security._N
    security._N = 2**8
    settings = Settings(state_dir=tmp_path_factory.mktemp("matrix") / "hub", base_iri="http://hub.test")
    with TestClient(create_app(settings)) as client:
        client.event_hooks["request"].append(sign_station_requests)
        hub = HubFactory(client)
        admin = hub.create_user("admin", Role.ADMIN)
        station: EnrolledStation = hub.enrol_station(admin, STATION)
        collection_id = hub.publish(station)
        researcher: Researcher = hub.create_researcher("rosa")
        other: Researcher = hub.create_researcher("mallory")
        steward = hub.create_user("steward-a", Role.STEWARD, station=STATION)
        other_steward = hub.create_user("steward-b", Role.STEWARD, station="site-b")
        project_id = hub.create_project(researcher)
        hub.grant(researcher, project_id, collection_id, steward)
        bundle = hub.upload_bundle(researcher)
        manifest = make_manifest(researcher, project_id=project_id, collections=(collection_id,), bundle_hash=bundle)
        train = hub.submit(manifest, researcher)
        pending = hub.request_access(researcher, project_id, [collection_id])
        (grant,) = client.get("/grants", headers=researcher.headers).json()["data"]
        yield World(
            client=client,
            headers={
                ANONYMOUS: {},
                RESEARCHER: researcher.headers,
                OTHER_RESEARCHER: other.headers,
                STEWARD: steward,
                OTHER_STEWARD: other_steward,
                ADMIN: admin,
                STATION_ROLE: station.headers,
            },
            params={
                "collection": "chest-ct",
                "catalog_id": "trainyard",
                "station": STATION,
                "job_id": train["jobs"][0]["id"],  # type: ignore[index]
                "train_id": str(train["id"]),
                "access_request_id": str(pending["id"]),
                "decision_id": pending["decisions"][0]["id"],  # type: ignore[index]
                "address": bundle,
                "token_id": "no-such-token",
                "model_id": "no-such-model",
                "project_id": project_id,
                "version": "1",
                "grant_id": grant["id"],
                "upload_id": "no-such-upload",
                "step": "keys",
                "publication": "roster",
                "offset": "0",
            },
        )
    security._N = original


def route_table() -> list[tuple[str, str]]:
    app = create_app(Settings(state_dir=Path("/nonexistent-never-started")))
    return sorted(
        (method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations
    )


def test_every_endpoint_is_in_the_policy() -> None:
    missing = [route for route in route_table() if route not in POLICY]
    stale = [route for route in POLICY if route not in route_table()]

    assert missing == [], f"endpoints without an authorisation rule: {missing}"
    assert stale == [], f"rules for endpoints that no longer exist: {stale}"


@pytest.mark.parametrize(("method", "path"), sorted(POLICY))
def test_endpoint_allows_exactly_its_callers(world: World, method: str, path: str) -> None:
    url = path.format(**world.params)
    wrong: list[str] = []
    for role in ROLES:
        kwargs: dict[str, object] = {"headers": world.headers[role]}
        if method in {"POST", "PUT", "PATCH"}:
            kwargs["json"] = {}
        if path == "/stations/me/jobs/next":
            kwargs["params"] = {"wait": 0}
        status = world.client.request(method, url, **kwargs).status_code  # type: ignore[arg-type]
        allowed = role in POLICY[(method, path)]
        if allowed and status in (401, 403):
            wrong.append(f"{role} is refused ({status}) but should be allowed")
        if not allowed and status not in (401, 403):
            wrong.append(f"{role} gets {status} but should be refused")

    assert wrong == []
