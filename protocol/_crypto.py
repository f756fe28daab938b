"""Signatures (Ed25519) and sealed envelopes (X25519 + HKDF-SHA256 + AES-256-GCM).

A signed message signs the canonical JSON (:func:`protocol.canonical_json`) of every
field but ``signature``. A sealed box derives a one-time key from an ephemeral X25519
agreement with the recipient's key; the recipient's key id, the ephemeral key and the
caller's associated data are all bound into the AES-GCM tag, so changing any field of
the box makes it fail to open.
"""

from __future__ import annotations

import os
from typing import TypeVar

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel

from ._errors import DecryptionError, ProtocolError, SignatureError
from ._grants import Grant, SignedGrant
from ._hashing import canonical_json
from ._keys import b64decode, b64encode, key_id_for_public_key, public_key_from_text
from ._schemas import CollectionPublication, ResultEnvelope, SealedBox, SignedManifest, TrainManifest

__all__ = [
    "open_sealed",
    "seal",
    "sign_bytes",
    "sign_envelope",
    "sign_grant",
    "sign_manifest",
    "sign_publication",
    "verify_bytes",
    "verify_envelope",
    "verify_grant",
    "verify_manifest",
    "verify_publication",
]

_INFO = b"trainyard/sealed-box/v1"
_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
SignedT = TypeVar("SignedT", CollectionPublication, ResultEnvelope)


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    """Sign ``data``; return the signature as base64url."""
    return b64encode(key.sign(data))


def verify_bytes(public_key: str, data: bytes, signature: str) -> None:
    """Raise :class:`SignatureError` unless ``signature`` signs ``data`` under ``public_key``."""
    try:
        key = public_key_from_text(public_key, Ed25519PublicKey)
        raw = b64decode(signature)
    except ProtocolError as exc:
        raise SignatureError(f"cannot verify: {exc}") from exc
    assert isinstance(key, Ed25519PublicKey)
    try:
        key.verify(raw, data)
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify: the message was changed or signed by another key") from exc


def _unsigned_bytes(message: BaseModel) -> bytes:
    return canonical_json(message.model_dump(mode="json", exclude={"signature"}))


def sign_manifest(manifest: TrainManifest, key: Ed25519PrivateKey) -> SignedManifest:
    """Sign a train manifest with the researcher's key."""
    return SignedManifest(
        manifest=manifest, signature=sign_bytes(key, canonical_json(manifest.model_dump(mode="json")))
    )


def verify_manifest(signed: SignedManifest, *, expected_public_key: str | None = None) -> TrainManifest:
    """Verify a signed manifest against the key it names (and, if given, the key expected).

    Raises
    ------
    SignatureError
        When the signature does not verify, or the manifest names another key than expected.
    """
    manifest = signed.manifest
    if expected_public_key is not None and manifest.signing_public_key != expected_public_key:
        raise SignatureError("the manifest is signed by a key that is not the researcher's registered key")
    verify_bytes(manifest.signing_public_key, canonical_json(manifest.model_dump(mode="json")), signed.signature)
    return manifest


def _sign_message(message: SignedT, key: Ed25519PrivateKey) -> SignedT:
    return message.model_copy(update={"signature": sign_bytes(key, _unsigned_bytes(message))})


def _verify_message(message: BaseModel, public_key: str) -> None:
    signature = getattr(message, "signature", "")
    if not signature:
        raise SignatureError(f"{type(message).__name__} carries no signature")
    verify_bytes(public_key, _unsigned_bytes(message), signature)


def sign_publication(publication: CollectionPublication, key: Ed25519PrivateKey) -> CollectionPublication:
    """Sign a collection publication with the station's key."""
    return _sign_message(publication, key)


def verify_publication(publication: CollectionPublication, public_key: str) -> None:
    """Raise :class:`SignatureError` unless the station's key signed this publication."""
    _verify_message(publication, public_key)


def sign_envelope(envelope: ResultEnvelope, key: Ed25519PrivateKey) -> ResultEnvelope:
    """Sign a result envelope with the station's key."""
    return _sign_message(envelope, key)


def verify_envelope(envelope: ResultEnvelope, public_key: str) -> None:
    """Raise :class:`SignatureError` unless the station's key signed this envelope."""
    _verify_message(envelope, public_key)


def _derive_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public, info=_INFO)
    return hkdf.derive(shared)


def _aad(recipient_key_id: str, ephemeral_public_key: str, associated_data: str) -> bytes:
    return canonical_json({"recipient": recipient_key_id, "ephemeral": ephemeral_public_key, "aad": associated_data})


def seal(plaintext: bytes, recipient_public_key: str, *, associated_data: str = "") -> SealedBox:
    """Seal ``plaintext`` so that only the holder of the X25519 private key can open it.

    Examples
    --------
    >>> from protocol import generate_key_pair
    >>> keys = generate_key_pair()
    >>> box = seal(b"counts", keys.encryption_public, associated_data="job-1")
    >>> open_sealed(box, keys.encryption)
    b'counts'
    """
    try:
        recipient = public_key_from_text(recipient_public_key, X25519PublicKey)
    except ProtocolError as exc:
        raise ProtocolError(f"cannot seal for this recipient: {exc}") from exc
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(_RAW, _RAW_PUB)
    assert isinstance(recipient, X25519PublicKey)
    key = _derive_key(ephemeral.exchange(recipient), ephemeral_raw, b64decode(recipient_public_key))
    nonce = os.urandom(12)
    recipient_key_id = key_id_for_public_key(recipient_public_key)
    ephemeral_text = b64encode(ephemeral_raw)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(recipient_key_id, ephemeral_text, associated_data))
    return SealedBox(
        recipient_key_id=recipient_key_id,
        ephemeral_public_key=ephemeral_text,
        nonce=b64encode(nonce),
        ciphertext=b64encode(ciphertext),
        associated_data=associated_data,
    )


def open_sealed(box: SealedBox, recipient_key: X25519PrivateKey) -> bytes:
    """Open a sealed box with the recipient's private key.

    Raises
    ------
    DecryptionError
        When the key is not the recipient's, or any field of the box was changed.
    """
    recipient_public = recipient_key.public_key().public_bytes(_RAW, _RAW_PUB)
    if key_id_for_public_key(b64encode(recipient_public)) != box.recipient_key_id:
        raise DecryptionError("this result was sealed for another key")
    try:
        ephemeral_raw = b64decode(box.ephemeral_public_key)
        ephemeral = X25519PublicKey.from_public_bytes(ephemeral_raw)
        nonce = b64decode(box.nonce)
        ciphertext = b64decode(box.ciphertext)
        key = _derive_key(recipient_key.exchange(ephemeral), ephemeral_raw, recipient_public)
        aad = _aad(box.recipient_key_id, box.ephemeral_public_key, box.associated_data)
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError, ProtocolError) as exc:
        raise DecryptionError("the sealed box cannot be opened: it was tampered with or is corrupt") from exc


def sign_grant(grant: Grant, key: Ed25519PrivateKey) -> SignedGrant:
    """Sign a grant with the steward's key (on the steward's machine)."""
    return SignedGrant(grant=grant, signature=sign_bytes(key, canonical_json(grant.model_dump(mode="json"))))


def verify_grant(signed: SignedGrant, public_key: str) -> Grant:
    """Return the grant when ``public_key`` signed it; raise :class:`SignatureError` otherwise."""
    if key_id_for_public_key(public_key) != signed.grant.steward_key_id:
        raise SignatureError(f"the grant names steward key {signed.grant.steward_key_id}, not this key")
    verify_bytes(public_key, canonical_json(signed.grant.model_dump(mode="json")), signed.signature)
    return signed.grant
