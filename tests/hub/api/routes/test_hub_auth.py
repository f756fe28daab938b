"""POST /auth/login and bearer-token checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from hub_factories import PASSWORD, HubFactory
from sqlalchemy import update
from sqlmodel import Session

from hub.models import Token
from protocol import Role


def test_login_returns_token_and_user(client: TestClient, hub: HubFactory) -> None:
    hub.create_user("rosa", Role.RESEARCHER)

    answer = client.post("/auth/login", json={"username": "rosa", "password": PASSWORD})

    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["username"] == "rosa"
    assert body["user"]["role"] == "researcher"
    assert "password_hash" not in body["user"]


def test_login_wrong_password(client: TestClient, hub: HubFactory) -> None:
    hub.create_user("rosa", Role.RESEARCHER)

    answer = client.post("/auth/login", json={"username": "rosa", "password": "not the password"})

    assert answer.status_code == 401
    assert answer.json()["detail"] == "wrong username or password"


def test_login_unknown_user(client: TestClient) -> None:
    answer = client.post("/auth/login", json={"username": "nobody", "password": PASSWORD})

    assert answer.status_code == 401


def test_read_user_me_without_token(client: TestClient) -> None:
    answer = client.get("/users/me")

    assert answer.status_code == 401
    assert "log in first" in answer.json()["detail"]


def test_read_user_me_unknown_token(client: TestClient) -> None:
    answer = client.get("/users/me", headers={"Authorization": "Bearer made-up"})

    assert answer.status_code == 401


def test_read_user_me_expired_token(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        session.exec(update(Token).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()

    answer = client.get("/users/me", headers=headers)

    assert answer.status_code == 401
    assert "expired" in answer.json()["detail"]


def test_tokens_are_stored_hashed(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    token = headers["Authorization"].removeprefix("Bearer ")

    database = (client.app.state.settings.state_dir / "hub.sqlite3").read_bytes()  # type: ignore[attr-defined]

    assert token.encode() not in database


def test_login_is_rate_limited_after_repeated_failures(client: TestClient, hub: HubFactory) -> None:
    hub.create_user("rosa", Role.RESEARCHER)
    wrong = {"username": "rosa", "password": "not the password"}

    answers = [client.post("/auth/login", json=wrong).status_code for _ in range(5)]
    blocked = client.post("/auth/login", json={"username": "rosa", "password": PASSWORD})

    assert answers == [401] * 5
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "too many failed log-ins" in blocked.json()["detail"]
