"""HTTP message signatures: round trip, and every tampered part refused with its reason."""

import time

import pytest

from protocol import KeyPair, SignatureError, generate_key_pair, sign_request, verify_request

NOW = 1_800_000_000
REQUEST = {"method": "POST", "path": "/stations/me/jobs/j1/result", "query": "", "body": b'{"status": "succeeded"}'}


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_key_pair()


def signed_headers(keys: KeyPair, **overrides: object) -> dict[str, str]:
    request = {**REQUEST, **overrides}
    return sign_request(key=keys.signing, key_id=keys.key_id, created=NOW, nonce="n-1", **request)  # type: ignore[arg-type]


def verify(keys: KeyPair, headers: dict[str, str], **overrides: object) -> object:
    request = {**REQUEST, **overrides}
    return verify_request(
        headers=headers,
        public_key=keys.signing_public,
        expected_key_id=keys.key_id,
        now=NOW + 5,
        **request,  # type: ignore[arg-type]
    )


def test_round_trip(keys: KeyPair) -> None:
    info = verify(keys, signed_headers(keys))

    assert (info.key_id, info.created, info.nonce) == (keys.key_id, NOW, "n-1")  # type: ignore[attr-defined]


def test_query_with_or_without_question_mark(keys: KeyPair) -> None:
    headers = signed_headers(keys, method="GET", path="/stations/me/jobs/next", query="wait=30", body=b"")

    verify(keys, headers, method="GET", path="/stations/me/jobs/next", query="?wait=30", body=b"")


@pytest.mark.parametrize(
    ("part", "value", "reason"),
    [
        ("method", "PUT", "does not verify"),
        ("path", "/stations/me/jobs/j2/result", "does not verify"),
        ("query", "wait=0", "does not verify"),
        ("body", b'{"status": "failed"}', "Content-Digest"),
    ],
)
def test_tampered_request_part_is_refused(keys: KeyPair, part: str, value: object, reason: str) -> None:
    headers = signed_headers(keys)

    with pytest.raises(SignatureError, match=reason):
        verify(keys, headers, **{part: value})


def test_tampered_body_with_recomputed_digest_is_refused(keys: KeyPair) -> None:
    from protocol import content_digest

    headers = signed_headers(keys)
    headers["Content-Digest"] = content_digest(b"{}")

    with pytest.raises(SignatureError, match="does not verify"):
        verify(keys, headers, body=b"{}")


@pytest.mark.parametrize(
    ("field", "old", "new"),
    [
        ("Signature-Input", f"created={NOW}", f"created={NOW + 1}"),
        ("Signature-Input", 'nonce="n-1"', 'nonce="n-2"'),
        ("Signature-Input", '"content-digest")', ")"),
        ("Signature-Input", 'alg="ed25519"', 'alg="hmac-sha256"'),
        ("Signature", "trainyard=:", "trainyard=:AAAA"),
        ("Signature", "trainyard=:", "other=:"),
    ],
)
def test_tampered_signature_fields_are_refused(keys: KeyPair, field: str, old: str, new: str) -> None:
    headers = signed_headers(keys)
    headers[field] = headers[field].replace(old, new)

    with pytest.raises(SignatureError):
        verify(keys, headers)


@pytest.mark.parametrize("missing", ["Signature", "Signature-Input", "Content-Digest"])
def test_unsigned_request_is_refused(keys: KeyPair, missing: str) -> None:
    headers = signed_headers(keys)
    del headers[missing]

    with pytest.raises(SignatureError, match=f"{missing} header is missing"):
        verify(keys, headers)


def test_stale_signature_is_refused(keys: KeyPair) -> None:
    headers = signed_headers(keys)

    with pytest.raises(SignatureError, match="replay window"):
        verify_request(headers=headers, public_key=keys.signing_public, now=NOW + 301, **REQUEST)  # type: ignore[arg-type]


def test_other_key_is_refused(keys: KeyPair) -> None:
    other = generate_key_pair()
    headers = sign_request(key=other.signing, key_id=keys.key_id, **REQUEST)  # type: ignore[arg-type]

    with pytest.raises(SignatureError, match="does not verify"):
        verify_request(headers=headers, public_key=keys.signing_public, **REQUEST)  # type: ignore[arg-type]


def test_other_key_id_is_refused(keys: KeyPair) -> None:
    headers = sign_request(key=keys.signing, key_id="someone-else", **REQUEST)  # type: ignore[arg-type]

    with pytest.raises(SignatureError, match="someone-else"):
        verify_request(headers=headers, public_key=keys.signing_public, expected_key_id=keys.key_id, **REQUEST)  # type: ignore[arg-type]


def test_fresh_signature_has_random_nonce(keys: KeyPair) -> None:
    first = sign_request(key=keys.signing, key_id=keys.key_id, **REQUEST)  # type: ignore[arg-type]
    second = sign_request(key=keys.signing, key_id=keys.key_id, **REQUEST)  # type: ignore[arg-type]

    assert first["Signature-Input"] != second["Signature-Input"]
    assert abs(int(first["Signature-Input"].split("created=")[1].split(";")[0]) - time.time()) < 5
