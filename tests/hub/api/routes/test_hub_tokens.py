"""/tokens: scoped, expiring, revocable API tokens, and the scope checks on every endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hub_factories import Headers, HubFactory
from sqlalchemy import update
from sqlmodel import Session, col, select

from hub.core.scopes import ROUTE_SCOPES
from hub.models import Token
from protocol import Role


def _create(client: TestClient, headers: Headers, scopes: list[str], **extra: object) -> dict[str, object]:
    answer = client.post("/tokens", json={"name": "ci", "scopes": scopes, **extra}, headers=headers)
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def _bearer(secret: object) -> Headers:
    return {"Authorization": f"Bearer {secret}"}


def test_create_token_returns_secret_once(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    created = _create(client, headers, ["catalog:read"])
    listed = client.get("/tokens", headers=headers).json()

    assert created["scopes"] == ["catalog:read"]
    assert isinstance(created["token"], str)
    assert listed["count"] == 1
    assert "token" not in listed["data"][0]
    assert "token_hash" not in listed["data"][0]


def test_create_token_stored_hashed(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    created = _create(client, headers, ["catalog:read"])

    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(Token, created["token"])
        hashes = [t.token_hash for t in session.exec(select(Token)).all()]
    assert row is None
    assert created["token"] not in hashes


def test_create_token_unknown_scope(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    answer = client.post("/tokens", json={"name": "ci", "scopes": ["everything"]}, headers=headers)

    assert answer.status_code == 422


def test_create_token_no_scope(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    answer = client.post("/tokens", json={"name": "ci", "scopes": []}, headers=headers)

    assert answer.status_code == 422


def test_create_token_scope_beyond_role(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    answer = client.post("/tokens", json={"name": "ci", "scopes": ["requests:decide"]}, headers=headers)

    assert answer.status_code == 403
    assert "requests:decide" in answer.json()["detail"]


def test_token_with_scope_is_let_through(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    created = _create(client, headers, ["catalog:read"])

    answer = client.get("/collections", headers=_bearer(created["token"]))

    assert answer.status_code == 200


def test_token_without_scope_names_it(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    created = _create(client, headers, ["catalog:read"])

    answer = client.get("/trains", headers=_bearer(created["token"]))

    assert answer.status_code == 403
    assert "trains:submit" in answer.json()["detail"]


def test_token_cannot_create_tokens(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    created = _create(client, headers, ["catalog:read", "trains:submit", "results:read"])

    answer = client.post("/tokens", json={"name": "x", "scopes": ["catalog:read"]}, headers=_bearer(created["token"]))

    assert answer.status_code == 403
    assert "log in" in answer.json()["detail"]


def test_token_reads_me(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    created = _create(client, headers, ["results:read"])

    answer = client.get("/users/me", headers=_bearer(created["token"]))

    assert answer.status_code == 200
    assert answer.json()["username"] == "rosa"


def test_delete_token_revokes(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    created = _create(client, headers, ["catalog:read"])

    answer = client.delete(f"/tokens/{created['id']}", headers=headers)
    after = client.get("/collections", headers=_bearer(created["token"]))

    assert answer.status_code == 200
    assert answer.json()["revoked_at"] is not None
    assert after.status_code == 401


def test_delete_token_of_another_user(client: TestClient, hub: HubFactory) -> None:
    rosa = hub.create_user("rosa", Role.RESEARCHER)
    mallory = hub.create_user("mallory", Role.RESEARCHER)
    created = _create(client, rosa, ["catalog:read"])

    answer = client.delete(f"/tokens/{created['id']}", headers=mallory)

    assert answer.status_code == 404
    assert client.get("/collections", headers=_bearer(created["token"])).status_code == 200


def test_token_expired(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    created = _create(client, headers, ["catalog:read"], ttl_days=1)
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.exec(update(Token).where(col(Token.id) == created["id"]).values(expires_at=past))
        session.commit()

    answer = client.get("/collections", headers=_bearer(created["token"]))

    assert answer.status_code == 401


def test_create_token_ttl_out_of_range(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    answer = client.post("/tokens", json={"name": "ci", "scopes": ["catalog:read"], "ttl_days": 0}, headers=headers)

    assert answer.status_code == 422


@pytest.mark.parametrize("route", sorted(ROUTE_SCOPES))
def test_route_scopes_name_real_routes(client: TestClient, route: tuple[str, str]) -> None:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]

    assert route[0].lower() in paths.get(route[1], {})
