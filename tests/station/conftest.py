"""Fixtures of the station tests: synthetic DICOM, an enrolled station, signed jobs, a fake hub."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import protocol
from protocol import Grant, Job, KeyPair, OutputSpec, ResultEnvelope, SignedGrant, SignedManifest, TrainManifest
from station.config import StationSettings
from station.executors import RunResult, RunSpec
from station.indexer import DicomIndex, index_collection
from station.state import CollectionRecord, StationIdentity, StationState
from station.stewards import add_steward
from station.synthetic import write_synthetic_collection

STATION = "site-a"
COLLECTION = "chest-ct"
HUB_URL = "http://hub.test"
API_TOKEN = "station-api-token-0123456789-secret"
STEWARD_NAME = "steward-a"
STEWARD = protocol.generate_key_pair()
"""The steward whose key the test station trusts (see the ``state`` fixture)."""


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "site0"
    write_synthetic_collection(root, site_index=0, seed=11)
    return root


@pytest.fixture()
def researcher() -> KeyPair:
    return protocol.generate_key_pair()


@pytest.fixture()
def settings(tmp_path: Path) -> StationSettings:
    return StationSettings(state_dir=tmp_path / "state", poll_wait_s=0, executor="sandbox")


@pytest.fixture()
def state(settings: StationSettings, synthetic_root: Path) -> StationState:
    """An enrolled station holding one harvested collection."""
    station_state = StationState(settings.state_dir)
    station_state.ensure()
    station_state.load_or_create_keys()
    station_state.write_identity(StationIdentity(name=STATION, hub_url=HUB_URL, station_id="st-1", api_token=API_TOKEN))
    add_steward(station_state.root, STEWARD_NAME, STEWARD.signing_public)
    secret = station_state.load_or_create_pseudonym_key()
    with DicomIndex(station_state.index_file) as index:
        index_collection(synthetic_root, index, collection=COLLECTION, secret=secret)
    station_state.write_collection(
        CollectionRecord(
            slug=COLLECTION,
            title="Chest CT",
            description="Synthetic",
            root=str(synthetic_root),
            indexed_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    return station_state


def make_bundle(files: dict[str, str | bytes]) -> bytes:
    """Pack ``files`` (name → content) as a gzipped tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


TRAIN_MAIN = """
import json, os
job = json.load(open(os.environ["TRAINYARD_JOB"]))
n = sum(len(files) for _, _, files in os.walk(os.environ["TRAINYARD_DATA"]))
out = os.path.join(os.environ["TRAINYARD_OUT"], "result.json")
json.dump({"files": n, "job_id": job["job_id"], "k": job["parameters"]["k"]}, open(out, "w"))
"""


def make_grant(
    researcher: KeyPair,
    *,
    steward: KeyPair = STEWARD,
    steward_name: str = STEWARD_NAME,
    station: str = STATION,
    collection: str = COLLECTION,
    project_id: str = "p1",
    researcher_name: str = "rosa",
    not_after: datetime | None = None,
) -> SignedGrant:
    """A grant signed by ``steward`` (by default the one the test station trusts)."""
    now = datetime.now(UTC)
    grant = Grant(
        grant_id=f"g-{project_id}-{collection}",
        project_id=project_id,
        station=station,
        collection=collection,
        researcher=researcher_name,
        researcher_key_id=researcher.key_id,
        steward=steward_name,
        steward_key_id=steward.key_id,
        not_before=now - timedelta(days=1),
        not_after=not_after or now + timedelta(days=30),
        issued_at=now,
    )
    return protocol.sign_grant(grant, steward.signing)


def make_job(
    researcher: KeyPair,
    bundle: bytes,
    *,
    job_id: str = "job-1",
    station: str = STATION,
    collection: str = COLLECTION,
    outputs: tuple[str, ...] = ("result.json",),
    entrypoint: str = "main.py",
    collections: tuple[str, ...] | None = None,
    grants: tuple[SignedGrant, ...] | None = None,
    resources: dict[str, float] | None = None,
    nonce: str | None = None,
    created_at: datetime | None = None,
) -> Job:
    manifest = TrainManifest(
        name="count-files",
        entrypoint=entrypoint,
        bundle_hash=protocol.content_address(bundle),
        outputs=tuple(OutputSpec(name=name) for name in outputs),
        parameters={"k": 5},
        project_id="p1",
        collections=collections or (f"{station}/{collection}",),
        researcher="rosa",
        signing_public_key=researcher.signing_public,
        encryption_public_key=researcher.encryption_public,
        created_at=created_at or datetime.now(UTC),
        nonce=nonce or secrets.token_hex(16),
        resources=resources or {},
    )
    return Job(
        job_id=job_id,
        train_id="train-1",
        station=station,
        collection=collection,
        signed_manifest=protocol.sign_manifest(manifest, researcher.signing),
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        grants=(make_grant(researcher, station=station, collection=collection),) if grants is None else grants,
    )


def tamper(job: Job) -> Job:
    """Return ``job`` with its manifest changed after signing."""
    manifest = job.signed_manifest.manifest.model_copy(update={"parameters": {"k": 1}})
    signed = SignedManifest(manifest=manifest, signature=job.signed_manifest.signature)
    return job.model_copy(update={"signed_manifest": signed})


@dataclass
class FakeHub:
    """The hub's station-facing routes, in memory, behind an httpx.MockTransport."""

    artifacts: dict[str, bytes] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    results: dict[str, ResultEnvelope] = field(default_factory=dict)
    publications: dict[str, dict[str, object]] = field(default_factory=dict)
    upload_failures: int = 0
    heartbeats: list[str] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    poll_down: bool = False
    requests: list[httpx.Request] = field(default_factory=list)

    def add_bundle(self, bundle: bytes) -> None:
        self.artifacts[protocol.content_address(bundle)] = bundle

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.headers.get("authorization") != f"Bearer {API_TOKEN}" and path != "/stations/enrol":
            return httpx.Response(401, json={"detail": "no or bad token"})
        if path == "/stations/enrol":
            body = json.loads(request.content)
            self.publications["enrolment"] = body
            return httpx.Response(201, json={"station_id": "st-1", "api_token": API_TOKEN})
        if path == "/stations/me/jobs/next":
            if self.poll_down:
                raise httpx.ConnectError("hub down", request=request)
            if not self.jobs:
                return httpx.Response(204)
            return httpx.Response(200, content=self.jobs.pop(0).model_dump_json())
        if path.startswith("/artifacts/"):
            address = path.removeprefix("/artifacts/")
            if address not in self.artifacts:
                return httpx.Response(404, json={"detail": "unknown artifact"})
            return httpx.Response(200, content=self.artifacts[address])
        if path.startswith("/stations/me/collections/"):
            self.publications[path.rsplit("/", 1)[-1]] = json.loads(request.content)
            return httpx.Response(200, json={"id": f"{STATION}/x"})
        if path.startswith("/stations/me/jobs/") and path.endswith("/heartbeat"):
            job_id = path.split("/")[-2]
            self.heartbeats.append(job_id)
            if job_id in self.cancelled:
                return httpx.Response(409, json={"detail": f"job {job_id!r} is cancelled, not running"})
            return httpx.Response(200, json={"status": "running"})
        if path.startswith("/stations/me/jobs/") and path.endswith("/result"):
            if self.upload_failures > 0:
                self.upload_failures -= 1
                return httpx.Response(503, json={"detail": "try later"})
            envelope = ResultEnvelope.model_validate_json(request.content)
            self.results[envelope.job_id] = envelope
            return httpx.Response(202, json={"id": envelope.job_id})
        return httpx.Response(404, json={"detail": f"no route {path}"})

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=HUB_URL,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            transport=httpx.MockTransport(self.handle),
        )


@pytest.fixture()
def hub() -> FakeHub:
    return FakeHub()


class FakeExecutor:
    """Runs no process: calls ``behaviour(spec)`` to write outputs and returns its result."""

    name = "fake"

    def __init__(self, behaviour: Callable[[RunSpec], RunResult | None] | None = None) -> None:
        self.behaviour = behaviour
        self.specs: list[RunSpec] = []

    def run_train(self, spec: RunSpec) -> RunResult:
        self.specs.append(spec)
        if self.behaviour is not None:
            result = self.behaviour(spec)
            if result is not None:
                return result
        else:
            (spec.out_dir / "result.json").write_text('{"ok": true}', encoding="utf-8")
        return RunResult(exit_code=0, timed_out=False, log_tail="", duration_s=0.01, executor=self.name)


@pytest.fixture()
def bundle_of() -> Callable[[dict[str, str | bytes]], bytes]:
    return make_bundle


@pytest.fixture()
def train_bundle() -> bytes:
    return make_bundle({"main.py": TRAIN_MAIN})


@pytest.fixture()
def job_for() -> Callable[..., Job]:
    return make_job


@pytest.fixture()
def tamper_job() -> Callable[[Job], Job]:
    return tamper


@pytest.fixture()
def fake_executor() -> type[FakeExecutor]:
    return FakeExecutor


@pytest.fixture()
def grant_for() -> Callable[..., SignedGrant]:
    return make_grant
