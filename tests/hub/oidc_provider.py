"""A small but real OpenID provider for tests, served over HTTP on loopback.

It serves discovery, JWKS, ``/authorize`` (which logs in :attr:`TestProvider.account` without a
page) and ``/token`` (client_secret_basic, single-use codes, PKCE S256 enforced), and signs
RS256 id_tokens with ``cryptography``. Knobs make it misbehave the way a test needs:
``claim_overrides`` (wrong audience, expired, foreign nonce...), ``tamper`` (change a claim
after signing), ``rogue_key`` (sign with a key it does not publish).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse

CLIENT_ID = "trainyard-hub"
CLIENT_SECRET = "provider-issued-secret"
REDIRECT_URI = "http://hub.test/auth/oidc/callback"


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def sign_jwt(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str) -> str:
    """A compact RS256 JWS of ``claims``."""
    header = b64url(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64url(signature)}"


def jwk_for(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    """The public JWK of ``key``."""
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}


@dataclass
class _Grant:
    nonce: str
    challenge: str
    redirect_uri: str
    claims: dict[str, Any]


@dataclass
class TestProvider:
    """The provider's state; :meth:`serve` runs it on a free loopback port."""

    __test__ = False  # not a pytest test class

    account: dict[str, Any] = field(default_factory=lambda: {"sub": "idp-0001", "preferred_username": "rosa"})
    claim_overrides: dict[str, Any] = field(default_factory=dict)
    tamper: bool = False
    rogue_key: bool = False
    deny: bool = False
    issuer: str = ""
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = "test-key-1"
    token_requests: list[dict[str, str]] = field(default_factory=list)
    _grants: dict[str, _Grant] = field(default_factory=dict)

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant.nonce}
        claims |= grant.claims | self.claim_overrides
        if self.rogue_key:
            return sign_jwt(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), self.kid)
        token = sign_jwt(claims, self.key, self.kid)
        if self.tamper:
            header, _, signature = token.split(".")
            forged = b64url(json.dumps(claims | {"sub": "idp-admin"}).encode())
            token = f"{header}.{forged}.{signature}"
        return token

    def app(self) -> FastAPI:
        """The provider's HTTP app."""
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return {"keys": [jwk_for(self.key, self.kid)]}

        @app.get("/authorize")
        def authorize(
            response_type: str,
            client_id: str,
            redirect_uri: str,
            state: str,
            nonce: str,
            code_challenge: str,
            code_challenge_method: Annotated[str, Query()],
            scope: str = "",
        ) -> Any:
            if client_id != CLIENT_ID or redirect_uri != REDIRECT_URI:
                return JSONResponse({"error": "invalid_client"}, status_code=400)
            if response_type != "code" or code_challenge_method != "S256" or "openid" not in scope.split():
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            if self.deny:
                query = urlencode({"error": "access_denied", "error_description": "the user said no", "state": state})
                return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)
            code = b64url(hashlib.sha256(f"{state}{time.time_ns()}".encode()).digest())
            self._grants[code] = _Grant(nonce, code_challenge, redirect_uri, dict(self.account))
            return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", status_code=302)

        @app.post("/token")
        async def token(request: Request) -> Any:
            form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
            authorization = request.headers.get("authorization", "")
            self.token_requests.append({"code_verifier": form.get("code_verifier", ""), "authorization": authorization})
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if authorization != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self._grants.pop(form.get("code", ""), None)
            if form.get("grant_type") != "authorization_code" or grant is None:
                return JSONResponse({"error": "invalid_grant", "error_description": "unknown or used code"}, 400)
            if grant.redirect_uri != form.get("redirect_uri"):
                return JSONResponse({"error": "invalid_grant", "error_description": "redirect_uri mismatch"}, 400)
            verifier = form.get("code_verifier", "")
            if b64url(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE verifier mismatch"}, 400)
            id_token = self._id_token(grant)
            return {"access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}

        return app

    @contextmanager
    def serve(self) -> Iterator[TestProvider]:
        """Serve the provider on a free loopback port for the ``with`` block."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.issuer = f"http://127.0.0.1:{port}"
        server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test OpenID provider did not start")
            time.sleep(0.02)
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join(timeout=10)
