"""/graphql honours API-token scopes: catalog:read is needed; a log-in session and guests still search."""

from __future__ import annotations

from fastapi.testclient import TestClient
from hub_factories import Headers, HubFactory

from protocol import Role

QUERY = {"query": "{ collections { id } }"}


def _token(client: TestClient, headers: Headers, scopes: list[str]) -> Headers:
    answer = client.post("/tokens", json={"name": "ci", "scopes": scopes}, headers=headers)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_graphql_token_without_catalog_scope(client: TestClient, hub: HubFactory) -> None:
    headers = _token(client, hub.create_user("rosa", Role.RESEARCHER), ["trains:submit"])

    answer = client.post("/graphql", json=QUERY, headers=headers)

    assert answer.status_code == 403
    assert "catalog:read" in answer.json()["detail"]


def test_graphql_token_with_catalog_scope(client: TestClient, hub: HubFactory) -> None:
    headers = _token(client, hub.create_user("rosa", Role.RESEARCHER), ["catalog:read"])

    answer = client.post("/graphql", json=QUERY, headers=headers)

    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {"collections": []}


def test_graphql_session_and_guest_still_search(client: TestClient, hub: HubFactory) -> None:
    session = hub.create_user("rosa", Role.RESEARCHER)

    assert client.post("/graphql", json=QUERY, headers=session).status_code == 200
    assert client.post("/graphql", json=QUERY).status_code == 200
