"""OpenID Connect login: the authorization-code flow with PKCE, against a hospital's own provider.

The hub is a confidential client. :meth:`OidcClient.begin_login` makes a one-time ``state``,
a ``nonce`` and a PKCE verifier and returns the provider's authorization URL;
:meth:`OidcClient.finish_login` takes the ``code`` and ``state`` the browser brings back,
redeems the code at the token endpoint (with the verifier and the client secret) and
verifies the id_token: an RS256 signature by a key of the provider's JWKS (fetched from the
discovery document and cached, refetched once for an unknown ``kid``), then ``iss``, ``aud``
(and ``azp``), ``exp``, ``iat``/``nbf`` and ``nonce``. Every refusal is an :class:`OidcError`
whose message says which check failed. Nothing here touches the database.

References: OpenID Connect Core 1.0 (sections 3.1.3.7, id_token validation), RFC 7636 (PKCE),
RFC 7515 / 7517 / 7518 (JWS, JWK, RS256).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hub.core.config import Settings
from protocol import Role

__all__ = [
    "OidcClient",
    "OidcError",
    "OidcLogin",
    "OidcProviderError",
    "pkce_challenge",
    "role_for_claims",
    "verify_id_token",
]

_ALGORITHMS = frozenset({"RS256"})
_HTTP_TIMEOUT_S = 10.0
_MIN_JWKS_REFETCH_S = 30.0
_MAX_PENDING_LOGINS = 10_000
_PRECEDENCE = (Role.ADMIN, Role.STEWARD, Role.OPERATOR, Role.RESEARCHER)


class OidcError(Exception):
    """An OpenID Connect login was refused; the message says why (safe to show the user)."""


class OidcProviderError(OidcError):
    """The identity provider could not be reached or answered nonsense (not the user's fault)."""


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise OidcError("the id_token is not a JWT (bad base64url)") from exc


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE ``verifier`` (RFC 7636, section 4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _rsa_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    try:
        n = int.from_bytes(_b64url_decode(str(jwk["n"])), "big")
        e = int.from_bytes(_b64url_decode(str(jwk["e"])), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError) as exc:
        raise OidcError(f"the provider's key {jwk.get('kid')!r} is not a usable RSA key") from exc


def _check_audience(claims: Mapping[str, Any], audience: str) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in audiences:
        raise OidcError(f"the id_token is for audience {aud!r}, not this hub's client id {audience!r}")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != audience:
        raise OidcError(f"the id_token's authorized party {azp!r} is not this hub's client id")


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise OidcError("the id_token lacks a numeric exp or iat")
    if exp + leeway < now:
        raise OidcError(f"the id_token expired {int(now - exp)} s ago: log in again")
    if iat - leeway > now:
        raise OidcError("the id_token was issued in the future: check the clocks")
    if isinstance(nbf, int | float) and nbf - leeway > now:
        raise OidcError("the id_token is not valid yet (nbf): check the clocks")


def verify_id_token(
    token: str,
    *,
    keys: Mapping[str, Mapping[str, Any]],
    issuer: str,
    audience: str,
    nonce: str,
    now: float | None = None,
    leeway: float = 60.0,
) -> dict[str, Any]:
    """Verify an id_token and return its claims.

    Parameters
    ----------
    token
        The compact JWS from the token endpoint.
    keys
        The provider's JWKs by ``kid``.
    issuer, audience, nonce
        What ``iss``, ``aud`` and ``nonce`` must be (the configured issuer, this hub's client id,
        the nonce sent with the authorization request).
    now, leeway
        The time (Unix seconds; default: the clock) and the allowed clock skew.

    Returns
    -------
    dict
        The verified claims (``sub`` is a non-empty string).

    Raises
    ------
    OidcError
        Naming the first check that failed.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise OidcError("the id_token is not a signed JWT (three dot-separated parts)")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
    except ValueError as exc:
        raise OidcError("the id_token's header or claims are not JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise OidcError("the id_token's header or claims are not JSON objects")
    if header.get("alg") not in _ALGORITHMS:
        raise OidcError(f"the id_token is signed with {header.get('alg')!r}; only RS256 is accepted")
    jwk = keys.get(str(header.get("kid")))
    if jwk is None:
        raise OidcError(f"the id_token is signed by key {header.get('kid')!r}, which the provider does not publish")
    try:
        _rsa_key(jwk).verify(
            _b64url_decode(parts[2]), f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature as exc:
        raise OidcError(
            "the id_token's signature does not verify: it was altered or not signed by the provider"
        ) from exc
    if claims.get("iss") != issuer:
        raise OidcError(f"the id_token was issued by {claims.get('iss')!r}, not the configured issuer {issuer!r}")
    _check_audience(claims, audience)
    _check_times(claims, time.time() if now is None else now, leeway)
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], nonce):
        raise OidcError("the id_token's nonce does not match this login (a replayed or foreign token)")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise OidcError("the id_token names no subject (sub)")
    return claims


def _kid_of(token: str) -> str | None:
    try:
        header = json.loads(_b64url_decode(token.split(".")[0]))
    except (ValueError, OidcError):
        return None
    return str(header.get("kid")) if isinstance(header, dict) else None


def role_for_claims(claims: Mapping[str, Any], settings: Settings) -> tuple[Role, str | None]:
    """The role (and station, for stewards and operators) that ``settings.oidc_role_map`` gives ``claims``.

    The claim named ``settings.oidc_role_claim`` may be a string or a list; when several values
    map, the most privileged wins (admin, steward, operator, researcher, in that order) and
    ties go to the first value. With no mapped value the user is a researcher.
    """
    raw = claims.get(settings.oidc_role_claim)
    values = (
        [raw]
        if isinstance(raw, str)
        else [value for value in raw if isinstance(value, str)]
        if isinstance(raw, list)
        else []
    )
    best: tuple[int, Role, str | None] = (len(_PRECEDENCE), Role.RESEARCHER, None)
    for value in values:
        target = settings.oidc_role_map.get(value)
        if target is None:
            continue
        name, _, station = target.partition(":")
        role = Role(name)
        rank = _PRECEDENCE.index(role)
        if rank < best[0]:
            best = (rank, role, station or None)
    return best[1], best[2]


@dataclass(frozen=True)
class OidcLogin:
    """A started login: where to send the browser, and the ``state`` that will come back."""

    authorization_url: str
    state: str


@dataclass
class _Pending:
    nonce: str
    verifier: str
    created: float


@dataclass
class _Cache:
    discovery: dict[str, Any] | None = None
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys_fetched: float = 0.0


class OidcClient:
    """The hub's side of the OpenID Connect code flow for one configured provider.

    Parameters
    ----------
    settings
        The hub's settings; ``settings.oidc_enabled`` must be true.
    transport
        An httpx transport for the provider (default: real HTTP).
    """

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.oidc_enabled or settings.oidc_issuer is None or settings.oidc_client_id is None:
            raise ValueError("OpenID Connect is not configured (oidc_issuer and oidc_client_id)")
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self._secret = settings.oidc_client_secret
        self.redirect_uri = settings.oidc_callback_uri
        self._settings = settings
        self._http = httpx.Client(timeout=_HTTP_TIMEOUT_S, transport=transport)
        self._pending: dict[str, _Pending] = {}
        self._cache = _Cache()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OidcClient(issuer={self.issuer!r}, client_id={self.client_id!r})"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcProviderError(f"cannot read {url} from the identity provider: {exc}") from exc
        if not isinstance(body, dict):
            raise OidcProviderError(f"{url} did not answer a JSON object")
        return body

    def discovery(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once; its issuer must be the configured one)."""
        if self._cache.discovery is None:
            document = self._get_json(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
            if document.get("issuer") != self.issuer:
                raise OidcProviderError(
                    f"the discovery document names issuer {document.get('issuer')!r}, not {self.issuer!r}"
                )
            missing = [key for key in ("authorization_endpoint", "token_endpoint", "jwks_uri") if key not in document]
            if missing:
                raise OidcProviderError(f"the discovery document lacks {', '.join(missing)}")
            self._cache.discovery = document
        return self._cache.discovery

    def _keys(self, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        age = time.monotonic() - self._cache.keys_fetched
        stale = not self._cache.keys or age > self._settings.oidc_jwks_cache_s
        if stale or (refresh and age > _MIN_JWKS_REFETCH_S):
            jwks = self._get_json(str(self.discovery()["jwks_uri"]))
            found = jwks.get("keys")
            if not isinstance(found, list):
                raise OidcError("the provider's JWKS has no keys list")
            self._cache.keys = {str(key.get("kid")): key for key in found if isinstance(key, dict)}
            self._cache.keys_fetched = time.monotonic()
        return self._cache.keys

    def begin_login(self) -> OidcLogin:
        """Start a login: a fresh state, nonce and PKCE verifier, and the provider URL to visit."""
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        now = time.monotonic()
        with self._lock:
            expired = [
                key for key, item in self._pending.items() if now - item.created > self._settings.oidc_login_ttl_s
            ]
            for key in expired:
                del self._pending[key]
            if len(self._pending) >= _MAX_PENDING_LOGINS:
                raise OidcError("too many log-ins in progress: try again in a few minutes")
            self._pending[state] = _Pending(nonce=nonce, verifier=verifier, created=now)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self._settings.oidc_scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return OidcLogin(authorization_url=f"{self.discovery()['authorization_endpoint']}?{query}", state=state)

    def _take_pending(self, state: str) -> _Pending:
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.created > self._settings.oidc_login_ttl_s:
            raise OidcError("this login is unknown, already used or expired: start again at /auth/oidc/login")
        return pending

    def finish_login(self, *, code: str, state: str) -> dict[str, Any]:
        """Redeem ``code`` for an id_token and return its verified claims.

        Raises
        ------
        OidcError
            When the state is unknown or used, the provider refuses the code, or a check on
            the id_token fails.
        """
        pending = self._take_pending(state)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": pending.verifier,
        }
        auth = None
        if self._secret is not None:  # client_secret_basic (the OIDC default)
            auth = httpx.BasicAuth(self.client_id, self._secret.get_secret_value())
        try:
            endpoint = str(self.discovery()["token_endpoint"])
            response = self._http.post(endpoint, data=form, auth=auth) if auth else self._http.post(endpoint, data=form)
        except httpx.HTTPError as exc:
            raise OidcProviderError(f"cannot reach the identity provider's token endpoint: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_error or not isinstance(body, dict):
            reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise OidcError(f"the identity provider refused the code ({response.status_code}): {reason or 'no reason'}")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the identity provider answered no id_token (is 'openid' among the scopes?)")
        keys = self._keys()
        if _kid_of(id_token) not in keys:
            keys = self._keys(refresh=True)  # the provider may have rotated its keys
        return verify_id_token(
            id_token,
            keys=keys,
            issuer=self.issuer,
            audience=self.client_id,
            nonce=pending.nonce,
            leeway=self._settings.oidc_clock_skew_s,
        )
