"""HTTP message signatures for station→hub requests, after RFC 9421 (with RFC 9530 digests).

The station signs ``@method``, ``@path``, ``@query`` and ``content-digest`` with its Ed25519
key; the signature parameters carry ``created``, a random ``nonce``, ``keyid`` and
``alg="ed25519"``. The hub recomputes the signature base from what it received, checks the
digest against the body, the age against a replay window, and the nonce against the ones it
has seen. Headers::

    Content-Digest: sha-256=:<base64 sha256 of the body>:
    Signature-Input: trainyard=("@method" "@path" "@query" "content-digest");created=…;nonce="…";keyid="…";alg="ed25519"
    Signature: trainyard=:<base64 signature>:
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol._crypto import verify_bytes
from protocol._errors import SignatureError
from protocol._keys import b64encode

__all__ = ["SIGNATURE_LABEL", "SignedRequest", "content_digest", "sign_request", "verify_request"]

SIGNATURE_LABEL = "trainyard"
_COMPONENTS = ("@method", "@path", "@query", "content-digest")
_INPUT = re.compile(
    r"^(?P<label>[a-z0-9_-]+)=\((?P<components>[^)]*)\)"
    r'(?P<params>(;[a-z]+=("[^"]*"|[0-9]+))*)$'
)
_PARAM = re.compile(r';(?P<name>[a-z]+)=(?:"(?P<text>[^"]*)"|(?P<number>[0-9]+))')


@dataclass(frozen=True)
class SignedRequest:
    """What a verified signature says: which key, when, and its nonce."""

    key_id: str
    created: int
    nonce: str


def content_digest(body: bytes) -> str:
    """Return the ``Content-Digest`` field value (RFC 9530, sha-256) of ``body``."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode('ascii')}:"


def _query_component(query: str) -> str:
    return f"?{query.removeprefix('?')}"


def _params_text(created: int, nonce: str, key_id: str) -> str:
    components = " ".join(f'"{name}"' for name in _COMPONENTS)
    return f'({components});created={created};nonce="{nonce}";keyid="{key_id}";alg="ed25519"'


def _signature_base(method: str, path: str, query: str, digest: str, params: str) -> bytes:
    lines = [
        f'"@method": {method.upper()}',
        f'"@path": {path}',
        f'"@query": {_query_component(query)}',
        f'"content-digest": {digest}',
        f'"@signature-params": {params}',
    ]
    return "\n".join(lines).encode("utf-8")


def sign_request(
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    key: Ed25519PrivateKey,
    key_id: str,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Return the headers that sign one request.

    Parameters
    ----------
    method, path, query
        The request line as sent (``query`` without or with its leading ``?``; may be empty).
    body
        The exact bytes of the body (empty for none).
    key, key_id
        The station's Ed25519 signing key and its key id.
    created, nonce
        Fixed values for tests; by default now and 16 random bytes.

    Examples
    --------
    >>> from protocol import generate_key_pair
    >>> keys = generate_key_pair()
    >>> headers = sign_request(method="GET", path="/stations/me/jobs/next", query="wait=30", body=b"",
    ...                        key=keys.signing, key_id=keys.key_id)
    >>> sorted(headers)
    ['Content-Digest', 'Signature', 'Signature-Input']
    """
    stamp = int(time.time()) if created is None else created
    once = nonce if nonce is not None else secrets.token_urlsafe(16)
    digest = content_digest(body)
    params = _params_text(stamp, once, key_id)
    signature = key.sign(_signature_base(method, path, query, digest, params))
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{SIGNATURE_LABEL}={params}",
        "Signature": f"{SIGNATURE_LABEL}=:{base64.b64encode(signature).decode('ascii')}:",
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise SignatureError(f"the request is not signed: the {name} header is missing")


def verify_request(
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    headers: Mapping[str, str],
    public_key: str,
    expected_key_id: str | None = None,
    max_age_s: float = 300.0,
    now: float | None = None,
) -> SignedRequest:
    """Verify a request's signature; return its key id, creation time and nonce.

    Raises
    ------
    SignatureError
        Naming what is wrong: a missing header, a malformed field, other covered components,
        another key, a body that does not match its digest, a signature from outside the
        replay window, or a signature that does not verify.
    """
    signature_input = _header(headers, "Signature-Input")
    signature_field = _header(headers, "Signature")
    digest = _header(headers, "Content-Digest")
    match = _INPUT.match(signature_input.strip())
    if match is None or match["label"] != SIGNATURE_LABEL:
        raise SignatureError(f"the Signature-Input header is malformed (expected a {SIGNATURE_LABEL}= entry)")
    components = tuple(part.strip('"') for part in match["components"].split())
    if components != _COMPONENTS:
        raise SignatureError(f"the signature must cover {', '.join(_COMPONENTS)}; it covers {', '.join(components)}")
    params: dict[str, str] = {}
    for param in _PARAM.finditer(match["params"]):
        params[param["name"]] = param["text"] if param["text"] is not None else param["number"]
    if params.get("alg") != "ed25519" or not {"created", "nonce", "keyid"} <= params.keys():
        raise SignatureError('the signature parameters need created, nonce, keyid and alg="ed25519"')
    if expected_key_id is not None and params["keyid"] != expected_key_id:
        raise SignatureError(f"the request is signed with key {params['keyid']!r}, not the station's key")
    if digest != content_digest(body):
        raise SignatureError("the body does not match its Content-Digest: the request was changed on the way")
    created = int(params["created"])
    clock = time.time() if now is None else now
    if abs(clock - created) > max_age_s:
        raise SignatureError(
            f"the signature was made {int(clock - created)} s from now, outside the {int(max_age_s)} s replay window"
        )
    prefix, found, rest = signature_field.strip().partition("=:")
    if prefix != SIGNATURE_LABEL or not found or not rest.endswith(":"):
        raise SignatureError("the Signature header is malformed")
    try:
        raw = base64.b64decode(rest[:-1], validate=True)
    except ValueError as exc:
        raise SignatureError("the Signature header is not base64") from exc
    text = signature_input.strip().removeprefix(f"{SIGNATURE_LABEL}=")
    verify_bytes(public_key, _signature_base(method, path, query, digest, text), b64encode(raw))
    return SignedRequest(key_id=params["keyid"], created=created, nonce=params["nonce"])
