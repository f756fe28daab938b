"""The README's steward and researcher walk-throughs with the ``trainyard`` CLI against a real hub."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client import TrainyardClient
from client._federation import LocalFederation
from client.cli import app

pytestmark = pytest.mark.slow

PASSWORD = "walk-through-password"


def trainyard(home: Path, *args: str) -> str:
    result = CliRunner().invoke(
        app,
        list(args),
        env={
            "TRAINYARD_CONFIG_DIR": str(home),
            "TRAINYARD_PASSWORD": PASSWORD,
            "TRAINYARD_KEY_PASSPHRASE": f"keys of {home.name}",
            "COLUMNS": "250",
        },
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_steward_and_researcher_walk_through(tmp_path: Path) -> None:
    with LocalFederation(tmp_path / "state") as federation:
        federation.start_hub(admin_password=PASSWORD)
        hub = federation.hub_url
        with TrainyardClient(hub) as admin:
            admin.login("admin", PASSWORD)
            admin.create_user(username="rosa", password=PASSWORD, role="researcher")
            admin.create_user(username="steward-a", password=PASSWORD, role="steward", station="site-a")
            token = admin.create_enrolment_token("site-a")
        federation.prepare_station("site-a", token=token, collection="thorax", title="T", seed=3, patients=6)
        rosa, steward = tmp_path / "rosa", tmp_path / "steward"

        trainyard(rosa, "login", "--hub", hub, "--user", "rosa")
        trainyard(rosa, "keys", "init")
        created = trainyard(rosa, "projects", "create", "--title", "E", "--purpose", "P", "--use", "DUO:0000006")
        project = re.search(r"project (\w+)", created)
        assert project is not None
        checked = trainyard(rosa, "requests", "check", "--project", project.group(1), "--collection", "site-a/thorax")
        requested = trainyard(
            rosa, "requests", "create", "--project", project.group(1), "--collection", "site-a/thorax"
        )
        request_id = re.search(r"request (\w+)", requested).group(1)  # type: ignore[union-attr]
        trainyard(steward, "login", "--hub", hub, "--user", "steward-a")
        trainyard(steward, "keys", "init")
        listing = trainyard(steward, "requests", "list")
        with TrainyardClient(hub) as client:
            client.login("steward-a", PASSWORD)
            decision = client.read_access_requests()[0]["decisions"][0]["id"]
        digest = trainyard(steward, "requests", "digest")
        approved = trainyard(steward, "requests", "approve", request_id, decision, "--days", "30")
        shown = trainyard(rosa, "requests", "show", request_id)
        grants = trainyard(rosa, "grants", "list", "--state", "active")

        with TrainyardClient(hub) as client:
            client.login("rosa", PASSWORD)
            stored = client.read_access_requests()[0]["decisions"][0]

    assert "Screening passed" in checked
    assert f"request {request_id}: forwarded" in requested
    assert "site-a/thorax" in listing and "pending" in listing
    assert "pending 1" in digest and decision in digest
    assert "closed" in shown and "approve" in shown and "steward-a (steward)" in shown
    assert "site-a/thorax" in grants and "DUO:0000006" in grants
    assert "grant signed with your key" in approved.replace("\n", " ")
    assert stored["status"] == "approved"
    assert stored["signed_grant"]["grant"]["steward"] == "steward-a"
    assert stored["signed_grant"]["grant"]["project_id"] == project.group(1)
