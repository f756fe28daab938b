from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel

from protocol import (
    CollectionPublication,
    CollectionSummary,
    DecryptionError,
    FederatedPlan,
    JobFailure,
    JobStatus,
    KeyPair,
    ModelUpdateRef,
    ProtocolError,
    ResultEnvelope,
    SignatureError,
    SignedManifest,
    TrainManifest,
    generate_key_pair,
    open_sealed,
    seal,
    sign_envelope,
    sign_manifest,
    sign_publication,
    verify_envelope,
    verify_manifest,
    verify_publication,
)

_FOR_NONE = {
    "failure": JobFailure(reason="injected"),
    "image_digest": "sha256:" + "0" * 64,
    "image_archive": "sha256:" + "1" * 64,
    "image_ref": "registry.test/train@sha256:" + "3" * 64,
    "provenance": {"injected": True},
    "federated": FederatedPlan(rounds=2),
    "update": ModelUpdateRef(address="sha256:" + "2" * 64, size=1, num_examples=1),
}


def _tampered(value: Any, field: str = "") -> Any:
    """Return a value of the same kind that differs from ``value``."""
    if value is None:
        return _FOR_NONE[field]
    if isinstance(value, bool):
        return not value
    if isinstance(value, Enum):
        return next(member for member in type(value) if member != value)
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        # The first character: a base64 text's last one may only carry padding bits.
        return ("A" if value[0] != "A" else "B") + value[1:] if value else "x"
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, tuple):
        return (*value, value[0]) if value else ("x",)
    if isinstance(value, dict):
        return {**value, "tampered": 1}
    if isinstance(value, BaseModel):
        name = next(iter(type(value).model_fields))
        return value.model_copy(update={name: _tampered(getattr(value, name))})
    raise AssertionError(f"no tampering rule for {type(value)}")


def _fields(model: type[BaseModel], *, skip: set[str]) -> list[str]:
    return [name for name in model.model_fields if name not in skip]


def _publication(station: KeyPair) -> CollectionPublication:
    summary = CollectionSummary(
        k=5,
        subjects=12,
        studies=20,
        series=40,
        instances=900,
        modalities={"CT": 12, "MR": None},
        body_parts={"CHEST": 12},
        manufacturers={"SIEMENS": 12},
    )
    publication = CollectionPublication(
        station="site-a",
        collection="chest-ct",
        title="Chest CT",
        turtle="<urn:a> <urn:b> <urn:c> .",
        summary=summary,
        published_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return sign_publication(publication, station.signing)


def _envelope(station: KeyPair, researcher: KeyPair) -> ResultEnvelope:
    envelope = ResultEnvelope(
        job_id="j1",
        train_id="t1",
        station="site-a",
        status=JobStatus.SUCCEEDED,
        sealed=seal(b"{}", researcher.encryption_public, associated_data="j1"),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return sign_envelope(envelope, station.signing)


class TestManifest:
    def test_sign_and_verify_round_trip(self, manifest: TrainManifest, researcher: KeyPair) -> None:
        signed = sign_manifest(manifest, researcher.signing)

        assert verify_manifest(signed, expected_public_key=researcher.signing_public) == manifest

    def test_verify_survives_json_round_trip(self, manifest: TrainManifest, researcher: KeyPair) -> None:
        signed = sign_manifest(manifest, researcher.signing)

        assert verify_manifest(SignedManifest.model_validate_json(signed.model_dump_json())) == manifest

    @pytest.mark.parametrize("field", _fields(TrainManifest, skip=set()))
    def test_verify_tampered_field(self, manifest: TrainManifest, researcher: KeyPair, field: str) -> None:
        signed = sign_manifest(manifest, researcher.signing)
        changed = manifest.model_copy(update={field: _tampered(getattr(manifest, field), field)})

        with pytest.raises(SignatureError):
            verify_manifest(SignedManifest(manifest=changed, signature=signed.signature))

    def test_verify_tampered_signature(self, manifest: TrainManifest, researcher: KeyPair) -> None:
        signed = sign_manifest(manifest, researcher.signing)

        with pytest.raises(SignatureError):
            verify_manifest(signed.model_copy(update={"signature": _tampered(signed.signature)}))

    def test_verify_signed_by_other_key(self, manifest: TrainManifest) -> None:
        forged = sign_manifest(manifest, generate_key_pair().signing)

        with pytest.raises(SignatureError, match="does not verify"):
            verify_manifest(forged)

    def test_verify_not_the_expected_key(self, manifest: TrainManifest, researcher: KeyPair) -> None:
        signed = sign_manifest(manifest, researcher.signing)

        with pytest.raises(SignatureError, match="registered key"):
            verify_manifest(signed, expected_public_key=generate_key_pair().signing_public)

    def test_manifest_refuses_escaping_entrypoint(self, manifest: TrainManifest) -> None:
        data = manifest.model_dump() | {"entrypoint": "../../bin/sh"}

        with pytest.raises(ValueError, match="inside the train folder"):
            TrainManifest.model_validate(data)

    def test_manifest_refuses_unknown_field(self, manifest: TrainManifest) -> None:
        with pytest.raises(ValueError, match="Extra inputs"):
            TrainManifest.model_validate(manifest.model_dump() | {"privileged": True})


class TestSignedMessages:
    @pytest.mark.parametrize("field", _fields(CollectionPublication, skip={"signature"}))
    def test_verify_publication_tampered_field(self, field: str) -> None:
        station = generate_key_pair()
        publication = _publication(station)
        changed = publication.model_copy(update={field: _tampered(getattr(publication, field), field)})

        verify_publication(publication, station.signing_public)
        with pytest.raises(SignatureError):
            verify_publication(changed, station.signing_public)

    @pytest.mark.parametrize("field", _fields(ResultEnvelope, skip={"signature"}))
    def test_verify_envelope_tampered_field(self, researcher: KeyPair, field: str) -> None:
        station = generate_key_pair()
        envelope = _envelope(station, researcher)
        changed = envelope.model_copy(update={field: _tampered(getattr(envelope, field), field)})

        verify_envelope(envelope, station.signing_public)
        with pytest.raises(SignatureError):
            verify_envelope(changed, station.signing_public)

    def test_verify_envelope_unsigned(self, researcher: KeyPair) -> None:
        station = generate_key_pair()
        unsigned = _envelope(station, researcher).model_copy(update={"signature": ""})

        with pytest.raises(SignatureError, match="no signature"):
            verify_envelope(unsigned, station.signing_public)

    def test_verify_envelope_other_station(self, researcher: KeyPair) -> None:
        envelope = _envelope(generate_key_pair(), researcher)

        with pytest.raises(SignatureError):
            verify_envelope(envelope, generate_key_pair().signing_public)

    def test_verify_with_malformed_key(self, researcher: KeyPair) -> None:
        envelope = _envelope(generate_key_pair(), researcher)

        with pytest.raises(SignatureError, match="cannot verify"):
            verify_envelope(envelope, "not-a-key")


class TestSealedBox:
    def test_seal_and_open_round_trip(self, researcher: KeyPair) -> None:
        plaintext = b'{"subjects": 12}' * 1000

        box = seal(plaintext, researcher.encryption_public, associated_data="job-1")

        assert open_sealed(box, researcher.encryption) == plaintext
        assert plaintext[:16] not in box.ciphertext.encode()

    def test_seal_is_randomised(self, researcher: KeyPair) -> None:
        first = seal(b"same", researcher.encryption_public)
        second = seal(b"same", researcher.encryption_public)

        assert first.ciphertext != second.ciphertext and first.ephemeral_public_key != second.ephemeral_public_key

    @pytest.mark.parametrize(
        "field", ["recipient_key_id", "ephemeral_public_key", "nonce", "ciphertext", "associated_data"]
    )
    def test_open_tampered_field(self, researcher: KeyPair, field: str) -> None:
        box = seal(b"secret counts", researcher.encryption_public, associated_data="job-1")
        changed = box.model_copy(update={field: _tampered(getattr(box, field))})

        with pytest.raises(DecryptionError):
            open_sealed(changed, researcher.encryption)

    def test_open_swapped_ephemeral_key(self, researcher: KeyPair) -> None:
        box = seal(b"secret", researcher.encryption_public)
        other = seal(b"secret", researcher.encryption_public)

        with pytest.raises(DecryptionError):
            open_sealed(
                box.model_copy(update={"ephemeral_public_key": other.ephemeral_public_key}), researcher.encryption
            )

    def test_open_with_wrong_key(self, researcher: KeyPair) -> None:
        box = seal(b"secret", researcher.encryption_public)

        with pytest.raises(DecryptionError, match="another key"):
            open_sealed(box, generate_key_pair().encryption)

    def test_seal_for_malformed_key(self) -> None:
        with pytest.raises(ProtocolError, match="cannot seal"):
            seal(b"x", "short")
