"""Steward-signed grants: round trip, tampering, other keys, and what a grant covers."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from protocol import Grant, KeyPair, SignatureError, generate_key_pair, sign_grant, verify_grant

T0 = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def steward() -> KeyPair:
    return generate_key_pair()


def make_grant(steward: KeyPair, **overrides: object) -> Grant:
    fields: dict[str, object] = {
        "grant_id": "g1",
        "project_id": "p1",
        "station": "site-a",
        "collection": "chest-ct",
        "researcher": "rosa",
        "researcher_key_id": "0123456789abcdef",
        "purpose": ("DUO:0000007",),
        "steward": "steward-a",
        "steward_key_id": steward.key_id,
        "not_before": T0,
        "not_after": T0 + timedelta(days=365),
        "issued_at": T0,
    }
    return Grant.model_validate({**fields, **overrides})


def test_round_trip(steward: KeyPair) -> None:
    grant = make_grant(steward)

    assert verify_grant(sign_grant(grant, steward.signing), steward.signing_public) == grant


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project_id", "p2"),
        ("station", "site-b"),
        ("collection", "brain-mr"),
        ("researcher", "mallory"),
        ("researcher_key_id", "fedcba9876543210"),
        ("purpose", ("DUO:0000042",)),
        ("allowed_action", "download"),
        ("not_after", T0 + timedelta(days=3650)),
    ],
)
def test_tampered_grant_is_refused(steward: KeyPair, field: str, value: object) -> None:
    signed = sign_grant(make_grant(steward), steward.signing)
    forged = signed.model_copy(update={"grant": signed.grant.model_copy(update={field: value})})

    with pytest.raises(SignatureError):
        verify_grant(forged, steward.signing_public)


def test_grant_signed_by_another_key_is_refused(steward: KeyPair) -> None:
    hub_key = generate_key_pair()
    forged = sign_grant(make_grant(steward), hub_key.signing)

    with pytest.raises(SignatureError):
        verify_grant(forged, steward.signing_public)


def test_grant_naming_another_steward_key_is_refused(steward: KeyPair) -> None:
    other = generate_key_pair()
    signed = sign_grant(make_grant(steward, steward_key_id=other.key_id), steward.signing)

    with pytest.raises(SignatureError, match="names steward key"):
        verify_grant(signed, steward.signing_public)


def test_covers_checks_station_collection_project_and_period(steward: KeyPair) -> None:
    grant = make_grant(steward)
    inside = T0 + timedelta(days=1)

    assert grant.covers(station="site-a", collection="chest-ct", project_id="p1", at=inside)
    assert not grant.covers(station="site-b", collection="chest-ct", project_id="p1", at=inside)
    assert not grant.covers(station="site-a", collection="brain-mr", project_id="p1", at=inside)
    assert not grant.covers(station="site-a", collection="chest-ct", project_id="p2", at=inside)
    assert not grant.covers(station="site-a", collection="chest-ct", project_id="p1", at=T0 + timedelta(days=400))


def test_empty_period_is_invalid(steward: KeyPair) -> None:
    with pytest.raises(ValidationError, match="not_after"):
        make_grant(steward, not_after=T0)
