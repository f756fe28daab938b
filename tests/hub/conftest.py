"""Fixtures for hub tests: a real app on real SQLite and Oxigraph in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
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
from protocol import Role, SignedManifest


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use a small scrypt cost in tests (the parameters travel with each hash)."""
    monkeypatch.setattr(security, "_N", 2**8)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a hub whose state lives in tmp_path."""
    return Settings(
        state_dir=tmp_path / "hub",
        base_iri="http://hub.test",
        long_poll_max_s=10,
        long_poll_recheck_s=1.0,
        max_upload_bytes=1024 * 1024,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A test client of a running hub app."""
    with TestClient(create_app(settings)) as test_client:
        test_client.event_hooks["request"].append(sign_station_requests)
        yield test_client


@pytest.fixture
def hub(client: TestClient) -> HubFactory:
    """The factory for hub objects."""
    return HubFactory(client)


@pytest.fixture
def admin_headers(hub: HubFactory) -> Headers:
    """Auth headers of an admin."""
    return hub.create_user("admin", Role.ADMIN)


@pytest.fixture
def researcher(hub: HubFactory) -> Researcher:
    """A researcher with registered keys."""
    return hub.create_researcher("rosa")


@pytest.fixture
def steward_headers(hub: HubFactory) -> Headers:
    """Auth headers of the steward of ``site-a``."""
    return hub.create_user("steward-a", Role.STEWARD, station=STATION)


@pytest.fixture
def station(hub: HubFactory, admin_headers: Headers) -> EnrolledStation:
    """Station ``site-a``, enrolled with real keys."""
    return hub.enrol_station(admin_headers, STATION)


@pytest.fixture
def collection_id(hub: HubFactory, station: EnrolledStation) -> str:
    """The id of a published collection of ``site-a``."""
    return hub.publish(station)


@pytest.fixture
def project_id(hub: HubFactory, researcher: Researcher) -> str:
    """A project of the researcher."""
    return hub.create_project(researcher)


@pytest.fixture
def granted_project(
    hub: HubFactory, researcher: Researcher, project_id: str, collection_id: str, steward_headers: Headers
) -> str:
    """A project with an approved decision on ``site-a/chest-ct``."""
    hub.grant(researcher, project_id, collection_id, steward_headers)
    return project_id


@pytest.fixture
def signed_manifest(
    hub: HubFactory, researcher: Researcher, granted_project: str, collection_id: str
) -> SignedManifest:
    """A manifest signed by the researcher for the granted project, with its bundle uploaded."""
    bundle = hub.upload_bundle(researcher)
    return make_manifest(researcher, project_id=granted_project, collections=(collection_id,), bundle_hash=bundle)
