"""Content addresses: ``sha256:<64 hex>`` names for bytes, files and canonical JSON."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ._errors import ContentHashError, ProtocolError

__all__ = [
    "canonical_json",
    "content_address",
    "content_address_for_file",
    "is_content_address",
    "verify_content_address",
]

_PREFIX = "sha256:"
_ADDRESS = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as canonical JSON: sorted keys, no spaces, UTF-8.

    Both signer and verifier hash exactly these bytes, so key order or
    whitespace can never change a signature's meaning.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"value cannot be canonicalised as JSON: {exc}") from exc
    return text.encode("utf-8")


def content_address(data: bytes) -> str:
    """Return the content address ``sha256:<hex>`` of ``data``."""
    return _PREFIX + hashlib.sha256(data).hexdigest()


def content_address_for_file(path: Path) -> str:
    """Return the content address of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return _PREFIX + digest.hexdigest()


def is_content_address(value: str) -> bool:
    """Tell whether ``value`` is a well-formed ``sha256:<hex>`` address."""
    return bool(_ADDRESS.match(value))


def verify_content_address(data: bytes, address: str) -> None:
    """Raise :class:`ContentHashError` unless ``data`` hashes to ``address``."""
    if not is_content_address(address):
        raise ContentHashError(f"malformed content address {address!r}: expected 'sha256:' and 64 hex digits")
    actual = content_address(data)
    if actual != address:
        raise ContentHashError(f"content does not match its address: expected {address}, got {actual}")
