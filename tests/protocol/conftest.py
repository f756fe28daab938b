from datetime import UTC, datetime

import pytest

import protocol
from protocol import KeyPair, OutputSpec, TrainManifest, generate_key_pair


@pytest.fixture()
def researcher() -> KeyPair:
    return generate_key_pair()


@pytest.fixture()
def manifest(researcher: KeyPair) -> TrainManifest:
    return TrainManifest(
        name="cohort-stats",
        entrypoint="main.py",
        bundle_hash=protocol.content_address(b"bundle"),
        outputs=(OutputSpec(name="cohort.json"),),
        parameters={"k": 5},
        project_id="p1",
        collections=("site-a/chest-ct",),
        researcher="rosa",
        signing_public_key=researcher.signing_public,
        encryption_public_key=researcher.encryption_public,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        nonce="n" * 16,
    )
