"""Key pairs: Ed25519 for signatures, X25519 for sealed envelopes.

Public keys travel as unpadded base64url of their 32 raw bytes. Private keys never
travel; on disk they are PKCS#8 PEM, encrypted when a passphrase is given.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ._errors import ProtocolError

__all__ = [
    "KeyPair",
    "b64decode",
    "b64encode",
    "generate_key_pair",
    "key_id_for_public_key",
    "load_key_pair",
    "public_key_from_text",
    "save_key_pair",
]

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw


def b64encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url text; raise ProtocolError when malformed."""
    if not isinstance(text, str):
        raise ProtocolError("expected base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"malformed base64url text: {exc}") from exc


def public_key_from_text(
    text: str, kind: type[Ed25519PublicKey] | type[X25519PublicKey]
) -> Ed25519PublicKey | X25519PublicKey:
    """Parse a base64url public key of the given kind; raise ProtocolError when malformed."""
    raw = b64decode(text)
    if len(raw) != 32:
        raise ProtocolError(f"public key must be 32 bytes, got {len(raw)}")
    return kind.from_public_bytes(raw)


def key_id_for_public_key(text: str) -> str:
    """Return a short, stable id for a base64url public key (first 16 hex of its sha256)."""
    return hashlib.sha256(b64decode(text)).hexdigest()[:16]


@dataclass(frozen=True)
class KeyPair:
    """A person's or station's keys: one for signing, one for receiving sealed data."""

    signing: Ed25519PrivateKey
    encryption: X25519PrivateKey

    @property
    def signing_public(self) -> str:
        """The Ed25519 public key as base64url."""
        return b64encode(self.signing.public_key().public_bytes(_RAW, _RAW_PUB))

    @property
    def encryption_public(self) -> str:
        """The X25519 public key as base64url."""
        return b64encode(self.encryption.public_key().public_bytes(_RAW, _RAW_PUB))

    @property
    def key_id(self) -> str:
        """The id of the signing key."""
        return key_id_for_public_key(self.signing_public)

    def __repr__(self) -> str:
        return f"KeyPair(key_id={self.key_id!r})"


def generate_key_pair() -> KeyPair:
    """Create a fresh Ed25519 + X25519 key pair."""
    return KeyPair(signing=Ed25519PrivateKey.generate(), encryption=X25519PrivateKey.generate())


def _pem(key: Ed25519PrivateKey | X25519PrivateKey, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def save_key_pair(keys: KeyPair, directory: Path, *, passphrase: bytes | None = None) -> None:
    """Write ``signing.pem`` and ``encryption.pem`` (mode 0600) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, key in (("signing.pem", keys.signing), ("encryption.pem", keys.encryption)):
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(_pem(key, passphrase))


def load_key_pair(directory: Path, *, passphrase: bytes | None = None) -> KeyPair:
    """Read a key pair written by :func:`save_key_pair`; raise ProtocolError when unusable."""
    try:
        signing = serialization.load_pem_private_key((directory / "signing.pem").read_bytes(), passphrase)
        encryption = serialization.load_pem_private_key((directory / "encryption.pem").read_bytes(), passphrase)
    except FileNotFoundError as exc:
        raise ProtocolError(f"no key pair in {directory}: {exc.filename} is missing") from exc
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"cannot load the key pair in {directory}: {exc}") from exc
    if not isinstance(signing, Ed25519PrivateKey) or not isinstance(encryption, X25519PrivateKey):
        raise ProtocolError(f"the key pair in {directory} is not Ed25519 + X25519")
    return KeyPair(signing=signing, encryption=encryption)
