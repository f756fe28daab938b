"""/auth/oidc/login and /auth/oidc/callback against a real OpenID provider on loopback.

The hub runs in-process; the provider is a real HTTP server, so discovery, JWKS, the code
redemption (client secret + PKCE) and the id_token checks all go over real HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from hub_factories import PASSWORD, HubFactory
from oidc_provider import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, TestProvider
from pydantic import SecretStr
from sqlmodel import Session, select

from hub import Settings
from hub.models import OidcIdentity, User
from protocol import Role


@pytest.fixture
def provider() -> Iterator[TestProvider]:
    """A running test OpenID provider."""
    with TestProvider().serve() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, provider: TestProvider) -> Settings:
    """A hub with OpenID Connect login at ``provider`` (overrides the plain hub settings)."""
    return Settings(
        state_dir=tmp_path / "hub",
        base_iri="http://hub.test",
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=SecretStr(CLIENT_SECRET),
        oidc_role_claim="groups",
        oidc_role_map={"imaging-stewards-a": "steward:site-a", "hub-admins": "admin"},
    )


def _log_in(client: TestClient) -> httpx.Response:
    """Play the browser: hub → provider (real HTTP) → hub callback."""
    start = client.get("/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT_URI
    return client.get(f"{back.path}?{back.query}")


def test_oidc_login_round_trip(client: TestClient, provider: TestProvider) -> None:
    answer = _log_in(client)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["user"]["username"] == "rosa"
    assert body["user"]["role"] == "researcher"
    me = client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "rosa"
    (sent,) = provider.token_requests
    assert sent["authorization"].startswith("Basic ") and len(sent["code_verifier"]) >= 43


def test_oidc_authorization_request_uses_pkce_state_and_nonce(client: TestClient, provider: TestProvider) -> None:
    start = client.get("/auth/oidc/login", follow_redirects=False)

    url = urlsplit(start.headers["location"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{provider.issuer}/authorize"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == REDIRECT_URI
    assert query["state"] and query["nonce"] and query["state"] != query["nonce"]
    assert "openid" in query["scope"].split()


def test_oidc_second_login_is_the_same_user(client: TestClient) -> None:
    first = _log_in(client).json()["user"]["id"]
    second = _log_in(client).json()["user"]["id"]

    assert first == second
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert len(session.exec(select(OidcIdentity)).all()) == 1


def test_oidc_role_claim_maps_to_steward(client: TestClient, provider: TestProvider) -> None:
    provider.account = {"sub": "idp-0002", "preferred_username": "sam", "groups": ["staff", "imaging-stewards-a"]}

    user = _log_in(client).json()["user"]

    assert (user["role"], user["station"]) == ("steward", "site-a")


def test_oidc_role_follows_the_provider_on_each_login(client: TestClient, provider: TestProvider) -> None:
    provider.account = {"sub": "idp-0003", "preferred_username": "ada", "groups": "hub-admins"}
    assert _log_in(client).json()["user"]["role"] == "admin"

    provider.account = {"sub": "idp-0003", "preferred_username": "ada", "groups": []}

    assert _log_in(client).json()["user"]["role"] == "researcher"


def test_oidc_does_not_take_over_a_local_account(client: TestClient, hub: HubFactory) -> None:
    hub.create_user("rosa", Role.ADMIN)

    user = _log_in(client).json()["user"]

    assert user["username"].startswith("rosa-") and user["role"] == "researcher"
    assert client.post("/auth/login", json={"username": "rosa", "password": PASSWORD}).json()["user"]["role"] == "admin"
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        oidc_user = session.exec(select(User).where(User.username == user["username"])).one()
    assert client.post("/auth/login", json={"username": oidc_user.username, "password": "!"}).status_code == 401


@pytest.mark.parametrize(
    ("knob", "expected"),
    [
        ({"tamper": True}, "signature does not verify"),
        ({"rogue_key": True}, "signature does not verify"),
        ({"claim_overrides": {"aud": "another-app"}}, "audience 'another-app'"),
        ({"claim_overrides": {"exp": int(time.time()) - 3600}}, "expired"),
        ({"claim_overrides": {"nonce": "someone-elses-nonce"}}, "nonce does not match"),
        ({"claim_overrides": {"iss": "https://evil.example"}}, "not the configured issuer"),
    ],
)
def test_oidc_bad_id_token_is_refused(
    client: TestClient, provider: TestProvider, knob: dict[str, object], expected: str
) -> None:
    for name, value in knob.items():
        setattr(provider, name, value)

    answer = _log_in(client)

    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("OpenID Connect login refused:")
    assert expected in answer.json()["detail"]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert session.exec(select(OidcIdentity)).all() == []


def test_oidc_callback_replayed_state_is_refused(client: TestClient) -> None:
    start = client.get("/auth/oidc/login", follow_redirects=False)
    back = urlsplit(httpx.get(start.headers["location"], follow_redirects=False).headers["location"])
    assert client.get(f"{back.path}?{back.query}").status_code == 200

    again = client.get(f"{back.path}?{back.query}")

    assert again.status_code == 401
    assert "unknown, already used or expired" in again.json()["detail"]


def test_oidc_callback_unknown_state(client: TestClient) -> None:
    answer = client.get("/auth/oidc/callback", params={"code": "x", "state": "made-up"})

    assert answer.status_code == 401
    assert "start again" in answer.json()["detail"]


def test_oidc_provider_denies(client: TestClient, provider: TestProvider) -> None:
    provider.deny = True

    answer = _log_in(client)

    assert answer.status_code == 401
    assert "access_denied" in answer.json()["detail"] and "the user said no" in answer.json()["detail"]


def test_oidc_wrong_client_secret(tmp_path: Path, provider: TestProvider) -> None:
    from hub import create_app

    settings = Settings(
        state_dir=tmp_path / "other",
        base_iri="http://hub.test",
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=SecretStr("not-the-secret"),
    )
    with TestClient(create_app(settings)) as client:
        answer = _log_in(client)

    assert answer.status_code == 401
    assert "refused the code (401)" in answer.json()["detail"]
    assert "not-the-secret" not in answer.text


def test_oidc_provider_unreachable(tmp_path: Path) -> None:
    from hub import create_app

    settings = Settings(
        state_dir=tmp_path / "h", base_iri="http://hub.test", oidc_issuer="http://127.0.0.1:9", oidc_client_id="x"
    )
    with TestClient(create_app(settings)) as client:
        answer = client.get("/auth/oidc/login", follow_redirects=False)

    assert answer.status_code == 502
    assert "cannot read" in answer.json()["detail"]
