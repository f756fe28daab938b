"""Password hashes (scrypt) and bearer tokens (random, stored as sha256 hashes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = [
    "generate_token",
    "hash_password",
    "hash_token",
    "verify_password",
]

_SCHEME = "scrypt"
_N = 2**14
_R = 8
_P = 1
_DKLEN = 32
_SALT_BYTES = 16
_TOKEN_BYTES = 32
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_MAXMEM)


def hash_password(password: str) -> str:
    """Hash a password with scrypt; the salt and parameters travel inside the returned text."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _N, _R, _P, _DKLEN)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, password_hash: str | None) -> bool:
    """Tell whether ``password`` matches ``password_hash`` (constant time; ``None`` never matches)."""
    if password_hash is None:
        _scrypt(password, b"\0" * _SALT_BYTES, _N, _R, _P, _DKLEN)  # same work for unknown users
        return False
    try:
        scheme, n, r, p, salt, digest = password_hash.split("$")
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return scheme == _SCHEME and hmac.compare_digest(actual, expected)


def generate_token() -> str:
    """Return a fresh random bearer token (shown once, never stored in clear)."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """Return the sha256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
