"""/users: who am I, my keys, admin creation and listing."""

from __future__ import annotations

from fastapi.testclient import TestClient
from hub_factories import Headers, HubFactory

from protocol import Role, generate_key_pair


def test_read_user_me(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    answer = client.get("/users/me", headers=headers)

    assert answer.status_code == 200
    assert answer.json() == {
        "id": answer.json()["id"],
        "username": "rosa",
        "role": "researcher",
        "station": None,
        "signing_public_key": None,
        "encryption_public_key": None,
    }


def test_update_user_me_keys(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    keys = generate_key_pair()
    body = {"signing_public_key": keys.signing_public, "encryption_public_key": keys.encryption_public}

    answer = client.put("/users/me/keys", json=body, headers=headers)

    assert answer.status_code == 200
    assert answer.json()["signing_public_key"] == keys.signing_public


def test_update_user_me_keys_malformed(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    answer = client.put(
        "/users/me/keys", json={"signing_public_key": "x", "encryption_public_key": "y"}, headers=headers
    )

    assert answer.status_code == 422


def test_create_user_as_admin(client: TestClient, hub: HubFactory, admin_headers: Headers) -> None:
    body = {"username": "steward-a", "password": "long enough pw", "role": "steward", "station": "site-a"}

    answer = client.post("/users", json=body, headers=admin_headers)

    assert answer.status_code == 201
    assert answer.json()["station"] == "site-a"
    assert hub.login("steward-a", "long enough pw")


def test_create_user_steward_without_station(client: TestClient, admin_headers: Headers) -> None:
    body = {"username": "steward-a", "password": "long enough pw", "role": "steward"}

    answer = client.post("/users", json=body, headers=admin_headers)

    assert answer.status_code == 400
    assert "station" in answer.json()["detail"]


def test_create_user_duplicate_username(client: TestClient, admin_headers: Headers) -> None:
    body = {"username": "admin", "password": "long enough pw", "role": "researcher"}

    answer = client.post("/users", json=body, headers=admin_headers)

    assert answer.status_code == 409


def test_create_user_short_password(client: TestClient, admin_headers: Headers) -> None:
    body = {"username": "rosa", "password": "short", "role": "researcher"}

    answer = client.post("/users", json=body, headers=admin_headers)

    assert answer.status_code == 422


def test_create_user_not_admin(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)
    body = {"username": "eve", "password": "long enough pw", "role": "admin"}

    answer = client.post("/users", json=body, headers=headers)

    assert answer.status_code == 403
    assert answer.json()["detail"] == "this needs the admin role"


def test_read_users_as_admin(client: TestClient, hub: HubFactory, admin_headers: Headers) -> None:
    hub.create_user("rosa", Role.RESEARCHER)

    answer = client.get("/users", headers=admin_headers)

    assert answer.status_code == 200
    assert answer.json()["count"] == 2
    assert sorted(user["username"] for user in answer.json()["data"]) == ["admin", "rosa"]


def test_read_users_not_admin(client: TestClient, hub: HubFactory) -> None:
    headers = hub.create_user("rosa", Role.RESEARCHER)

    assert client.get("/users", headers=headers).status_code == 403
