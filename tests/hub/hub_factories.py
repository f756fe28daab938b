"""Factories for hub tests: users, stations, publications, grants and signed manifests via the real API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from fastapi.testclient import TestClient
from sqlmodel import Session

from bench._serve import serve_on_loopback as serve_on_loopback
from hub import crud
from hub.models import UserCreate
from protocol import (
    CollectionMetadata,
    CollectionPublication,
    CollectionSummary,
    KeyPair,
    Role,
    SignedManifest,
    TrainManifest,
    content_address,
    generate_key_pair,
    sign_manifest,
    sign_publication,
    sign_request,
)

PASSWORD = "correct horse battery"
STATION = "site-a"
OTHER_STATION = "site-b"
COLLECTION = "chest-ct"

Headers = dict[str, str]
UNSIGNED = "X-Test-Unsigned"
"""A header that tells :func:`sign_station_requests` to leave a request unsigned."""

_STATION_KEYS: dict[str, KeyPair] = {}


def sign_station_requests(request: httpx.Request) -> None:
    """An httpx request hook: sign requests that carry an enrolled test station's token, as a station does."""
    if request.headers.pop(UNSIGNED, None) is not None or "signature" in request.headers:
        return
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    keys = _STATION_KEYS.get(token)
    if keys is None:
        return
    request.headers.update(
        sign_request(
            method=request.method,
            path=request.url.path,
            query=request.url.query.decode("ascii"),
            body=request.read(),
            key=keys.signing,
            key_id=keys.key_id,
        )
    )


@dataclass(frozen=True)
class EnrolledStation:
    """A station enrolled at the test hub, with its real keys and API-token headers."""

    name: str
    keys: KeyPair
    headers: Headers


@dataclass(frozen=True)
class Researcher:
    """A researcher with registered keys."""

    username: str
    keys: KeyPair
    headers: Headers


def make_summary(
    *,
    subjects: int | None = 12,
    modalities: dict[str, int | None] | None = None,
    body_parts: dict[str, int | None] | None = None,
) -> CollectionSummary:
    """Return a collection summary (``None`` counts are suppressed)."""
    return CollectionSummary(
        k=5,
        subjects=subjects,
        studies=subjects,
        series=None if subjects is None else subjects * 3,
        instances=None if subjects is None else subjects * 90,
        modalities={"CT": subjects} if modalities is None else modalities,
        body_parts={"CHEST": subjects} if body_parts is None else body_parts,
        manufacturers={"ACME": subjects},
    )


def make_turtle(
    station: str,
    collection: str,
    title: str = "Chest CT",
    summary: CollectionSummary | None = None,
    metadata: CollectionMetadata | None = None,
) -> str:
    """Return the Turtle a station sends for one collection (made by the station's own code)."""
    from station.catalog import collection_to_turtle

    return collection_to_turtle(
        station=station,
        collection=collection,
        title=title,
        description=f"{title} at {station}",
        summary=summary or make_summary(),
        issued=datetime(2026, 1, 1, tzinfo=UTC),
        metadata=metadata,
    )


def make_publication(
    station: EnrolledStation,
    collection: str = COLLECTION,
    *,
    summary: CollectionSummary | None = None,
    turtle: str | None = None,
    title: str = "Chest CT",
    metadata: CollectionMetadata | None = None,
) -> CollectionPublication:
    """Return a publication signed with the station's key."""
    publication = CollectionPublication(
        station=station.name,
        collection=collection,
        title=title,
        description="Low-dose chest CT",
        turtle=turtle if turtle is not None else make_turtle(station.name, collection, title, summary, metadata),
        summary=summary or make_summary(),
        metadata=metadata or CollectionMetadata(),
        published_at=datetime.now(UTC),
    )
    return sign_publication(publication, station.keys.signing)


def make_manifest(
    researcher: Researcher,
    *,
    project_id: str,
    collections: tuple[str, ...],
    bundle_hash: str,
    keys: KeyPair | None = None,
    researcher_name: str | None = None,
) -> SignedManifest:
    """Return a train manifest signed with ``keys`` (the researcher's own by default)."""
    signer = keys or researcher.keys
    manifest = TrainManifest(
        name="cohort-stats",
        entrypoint="main.py",
        bundle_hash=bundle_hash,
        outputs=({"name": "stats.json", "type": "json"},),  # type: ignore[arg-type]
        project_id=project_id,
        collections=collections,
        researcher=researcher_name or researcher.username,
        signing_public_key=signer.signing_public,
        encryption_public_key=signer.encryption_public,
        created_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    return sign_manifest(manifest, signer.signing)


class HubFactory:
    """Creates users, stations, collections, grants and trains through the real API."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def create_user(self, username: str, role: Role, station: str | None = None) -> Headers:
        """Create a user directly in the database and return their auth headers."""
        with Session(self.client.app.state.engine) as session:  # type: ignore[attr-defined]
            user_create = UserCreate(username=username, password=PASSWORD, role=role, station=station)
            crud.create_user(session=session, user_create=user_create)
        return self.login(username)

    def login(self, username: str, password: str = PASSWORD) -> Headers:
        """Log in and return the auth headers."""
        answer = self.client.post("/auth/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def create_researcher(self, username: str = "rosa") -> Researcher:
        """Create a researcher with registered keys."""
        headers = self.create_user(username, Role.RESEARCHER)
        keys = generate_key_pair()
        body = {"signing_public_key": keys.signing_public, "encryption_public_key": keys.encryption_public}
        assert self.client.put("/users/me/keys", json=body, headers=headers).status_code == 200
        return Researcher(username=username, keys=keys, headers=headers)

    def create_enrolment_token(self, admin: Headers, station: str) -> str:
        """Issue an enrolment token for ``station``."""
        answer = self.client.post("/stations/enrolment-tokens", json={"station": station}, headers=admin)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])

    def enrol_station(self, admin: Headers, name: str) -> EnrolledStation:
        """Enrol a station with fresh keys."""
        keys = generate_key_pair()
        body = {
            "name": name,
            "enrolment_token": self.create_enrolment_token(admin, name),
            "signing_public_key": keys.signing_public,
            "encryption_public_key": keys.encryption_public,
        }
        answer = self.client.post("/stations/enrol", json=body)
        assert answer.status_code == 201, answer.text
        token = answer.json()["api_token"]
        _STATION_KEYS[token] = keys
        return EnrolledStation(name=name, keys=keys, headers={"Authorization": f"Bearer {token}"})

    def publish(self, station: EnrolledStation, collection: str = COLLECTION, **kwargs: object) -> str:
        """Publish a collection; return its id."""
        publication = make_publication(station, collection, **kwargs)  # type: ignore[arg-type]
        answer = self.client.put(
            f"/stations/me/collections/{collection}", json=publication.model_dump(mode="json"), headers=station.headers
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    def create_project(self, researcher: Researcher) -> str:
        """Create a project; return its id."""
        body = {
            "title": "Emphysema",
            "purpose": "Cohort statistics of emphysema",
            "data_use": ["DUO:0000006", "DUO:0000031"],  # health/medical research, methods development
        }
        answer = self.client.post("/projects", json=body, headers=researcher.headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def request_access(self, researcher: Researcher, project_id: str, collections: list[str]) -> dict[str, object]:
        """Ask for access; return the access request."""
        body = {"project_id": project_id, "collections": collections}
        answer = self.client.post("/access-requests", json=body, headers=researcher.headers)
        assert answer.status_code == 201, answer.text
        result: dict[str, object] = answer.json()
        return result

    def grant(self, researcher: Researcher, project_id: str, collection_id: str, steward: Headers) -> None:
        """Request and approve access to one collection."""
        request = self.request_access(researcher, project_id, [collection_id])
        decision = request["decisions"][0]  # type: ignore[index]
        path = f"/access-requests/{request['id']}/decisions/{decision['id']}/approve"
        answer = self.client.post(path, json={"comment": "ok"}, headers=steward)
        assert answer.status_code == 200, answer.text

    def upload_bundle(self, researcher: Researcher, data: bytes = b"bundle bytes") -> str:
        """Upload a train bundle; return its address."""
        address = content_address(data)
        answer = self.client.put(f"/artifacts/{address}", content=data, headers=researcher.headers)
        assert answer.status_code in (200, 201), answer.text
        return address

    def submit(self, signed: SignedManifest, researcher: Researcher) -> dict[str, object]:
        """Submit a train; return the train."""
        answer = self.client.post("/trains", json=signed.model_dump(mode="json"), headers=researcher.headers)
        assert answer.status_code == 201, answer.text
        result: dict[str, object] = answer.json()
        return result
