"""``trainyard tokens create|list|revoke`` against a real hub served on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
from client_hub import PASSWORD
from typer.testing import CliRunner

from client.cli import app


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
