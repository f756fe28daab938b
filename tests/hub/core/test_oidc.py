"""hub.core.oidc: id_token checks, PKCE, role mapping and the OIDC settings (no network)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from oidc_provider import b64url, jwk_for, sign_jwt
from pydantic import ValidationError

from hub import Settings
from hub.core.oidc import OidcError, pkce_challenge, role_for_claims, verify_id_token
from protocol import Role

ISSUER = "https://idp.hospital.example"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEYS = {"k1": jwk_for(KEY, "k1")}


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "hub", "sub": "u1", "iat": now, "exp": now + 60, "nonce": "n1"} | changes


def _verify(token: str) -> dict[str, Any]:
    return verify_id_token(token, keys=KEYS, issuer=ISSUER, audience="hub", nonce="n1")


def test_verify_id_token_accepts_a_good_token() -> None:
    assert _verify(sign_jwt(_claims(email="a@b"), KEY, "k1"))["email"] == "a@b"


def test_verify_id_token_audience_list_needs_azp() -> None:
    assert _verify(sign_jwt(_claims(aud=["hub", "other"], azp="hub"), KEY, "k1"))["sub"] == "u1"
    with pytest.raises(OidcError, match="authorized party"):
        _verify(sign_jwt(_claims(aud=["hub", "other"]), KEY, "k1"))


def _without_exp() -> dict[str, Any]:
    return {"iss": ISSUER, "aud": "hub", "sub": "u1", "nonce": "n1"}


# the claims are made when the test runs, not when it is collected (a long suite outlives exp)
@pytest.mark.parametrize(
    ("make_claims", "expected"),
    [
        (lambda: _claims(exp=int(time.time()) - 120), "expired"),
        (lambda: _claims(iat=int(time.time()) + 3600), "in the future"),
        (lambda: _claims(nbf=int(time.time()) + 3600), "not valid yet"),
        (lambda: _claims(sub=""), "no subject"),
        (_without_exp, "lacks a numeric exp"),
        (lambda: _claims(aud="other"), "audience 'other'"),
        (lambda: _claims(nonce=None), "nonce does not match"),
    ],
    ids=["expired", "future-iat", "nbf", "no-sub", "no-exp", "audience", "nonce"],
)
def test_verify_id_token_refuses_bad_claims(make_claims: Callable[[], dict[str, Any]], expected: str) -> None:
    with pytest.raises(OidcError, match=expected):
        _verify(sign_jwt(make_claims(), KEY, "k1"))


def test_verify_id_token_within_clock_skew() -> None:
    token = sign_jwt(_claims(exp=int(time.time()) - 30), KEY, "k1")

    assert _verify(token)["sub"] == "u1"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512"])
def test_verify_id_token_refuses_other_algorithms(alg: str) -> None:
    header = b64url(json.dumps({"alg": alg, "kid": "k1"}).encode())
    token = f"{header}.{b64url(json.dumps(_claims()).encode())}."

    with pytest.raises(OidcError, match="only RS256"):
        _verify(token)


def test_verify_id_token_unknown_key() -> None:
    with pytest.raises(OidcError, match="key 'k9'"):
        _verify(sign_jwt(_claims(), KEY, "k9"))


@pytest.mark.parametrize("token", ["", "a.b", "!!.!!.!!", "e30.e30.e30.e30"])
def test_verify_id_token_malformed(token: str) -> None:
    with pytest.raises(OidcError):
        _verify(token)


def test_pkce_challenge_rfc7636_vector() -> None:
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_role_for_claims_precedence_and_default() -> None:
    settings = Settings(
        oidc_role_claim="groups",
        oidc_role_map={"ops-a": "operator:site-a", "stew-b": "steward:site-b", "admins": "admin"},
    )

    assert role_for_claims({"groups": ["ops-a", "stew-b"]}, settings) == (Role.STEWARD, "site-b")
    assert role_for_claims({"groups": "ops-a"}, settings) == (Role.OPERATOR, "site-a")
    assert role_for_claims({"groups": ["admins", "ops-a"]}, settings) == (Role.ADMIN, None)
    assert role_for_claims({"groups": ["unknown"]}, settings) == (Role.RESEARCHER, None)
    assert role_for_claims({}, settings) == (Role.RESEARCHER, None)


def test_oidc_settings_off_by_default() -> None:
    settings = Settings()

    assert not settings.oidc_enabled
    assert settings.oidc_callback_uri == "http://127.0.0.1:8000/auth/oidc/callback"


def test_oidc_settings_refuse_plain_http_issuer() -> None:
    with pytest.raises(ValidationError, match="https"):
        Settings(oidc_issuer="http://idp.example", oidc_client_id="hub")


@pytest.mark.parametrize("target", ["steward", "operator", "superuser", "researcher:site-a"])
def test_oidc_settings_refuse_bad_role_map(target: str) -> None:
    with pytest.raises(ValidationError, match="oidc_role_map"):
        Settings(oidc_role_map={"group": target})


def test_oidc_client_secret_is_not_shown() -> None:
    settings = Settings(oidc_issuer=ISSUER, oidc_client_id="hub", oidc_client_secret="s3cret-value")  # type: ignore[arg-type]

    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings.model_dump())
