"""``trainyard tokens create|list|revoke`` against a real hub served on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlmodel import Session
from typer.testing import CliRunner

from client._federation import free_port
from client.cli import app
from hub import Settings, create_app, crud
from hub.core import security
from hub.models import UserCreate
from protocol import Role

PASSWORD = "tokens-cli-password"


@pytest.fixture
def hub_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A hub on a free loopback port with the researcher ``rosa``."""
    monkeypatch.setattr(security, "_N", 2**8)
    port = free_port()
    hub = create_app(Settings(state_dir=tmp_path / "hub", base_iri=f"http://127.0.0.1:{port}"))
    server = uvicorn.Server(uvicorn.Config(hub, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    with Session(hub.state.engine) as session:
        crud.create_user(
            session=session, user_create=UserCreate(username="rosa", password=PASSWORD, role=Role.RESEARCHER)
        )
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _trainyard(home: Path, *args: str) -> tuple[int, str]:
    env = {"TRAINYARD_CONFIG_DIR": str(home), "TRAINYARD_PASSWORD": PASSWORD, "COLUMNS": "250"}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_tokens_create_list_revoke(hub_url: str, tmp_path: Path) -> None:
    home = tmp_path / "rosa"
    assert _trainyard(home, "login", "--hub", hub_url, "--user", "rosa")[0] == 0

    code, created = _trainyard(home, "tokens", "create", "--name", "ci", "--scope", "catalog:read", "--days", "7")
    assert code == 0, created
    secret = created.strip().splitlines()[-1]
    token_id = created.split()[1]
    search = httpx.post(f"{hub_url}/graphql", json={"query": "{ collections { id } }"}, headers=_bearer(secret))
    assert search.status_code == 200, search.text

    code, listing = _trainyard(home, "tokens", "list")
    assert code == 0, listing
    assert token_id in listing and "catalog:read" in listing and "live" in listing
    assert secret not in listing

    code, revoked = _trainyard(home, "tokens", "revoke", token_id)
    assert code == 0, revoked
    assert f"Revoked token {token_id}" in revoked
    assert httpx.get(f"{hub_url}/stations", headers=_bearer(secret)).status_code == 401
    assert "revoked" in _trainyard(home, "tokens", "list")[1]


def test_tokens_create_scope_beyond_role_fails_in_one_line(hub_url: str, tmp_path: Path) -> None:
    home = tmp_path / "rosa"
    _trainyard(home, "login", "--hub", hub_url, "--user", "rosa")

    code, output = _trainyard(home, "tokens", "create", "--name", "ci", "--scope", "requests:decide")

    assert code == 1
    assert "cannot hold the scope(s) requests:decide" in output


def test_tokens_revoke_unknown(hub_url: str, tmp_path: Path) -> None:
    home = tmp_path / "rosa"
    _trainyard(home, "login", "--hub", hub_url, "--user", "rosa")

    code, output = _trainyard(home, "tokens", "revoke", "nope")

    assert code == 1
    assert "no API token 'nope'" in output


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
