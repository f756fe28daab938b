"""Station requests must carry a fresh, untampered HTTP message signature of the station's key."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from hub_factories import UNSIGNED, EnrolledStation

from protocol import generate_key_pair, sign_request

NEXT_JOB = "/stations/me/jobs/next"


def _signed(
    station: EnrolledStation, *, path: str = NEXT_JOB, query: str = "", body: bytes = b"", **kw: object
) -> dict[str, str]:
    headers = sign_request(
        method=str(kw.pop("method", "GET")),
        path=path,
        query=query,
        body=body,
        key=kw.pop("key", station.keys.signing),  # type: ignore[arg-type]
        key_id=station.keys.key_id,
        **kw,  # type: ignore[arg-type]
    )
    return {**station.headers, **headers}


def test_signed_request_is_accepted(client: TestClient, station: EnrolledStation) -> None:
    assert client.get(NEXT_JOB, headers=_signed(station)).status_code == 204


def test_unsigned_request_is_refused(client: TestClient, station: EnrolledStation) -> None:
    answer = client.get(NEXT_JOB, headers={**station.headers, UNSIGNED: "1"})

    assert answer.status_code == 401
    assert "not signed" in answer.json()["detail"]


def test_stale_request_is_refused(client: TestClient, station: EnrolledStation) -> None:
    answer = client.get(NEXT_JOB, headers=_signed(station, created=int(time.time()) - 3600))

    assert answer.status_code == 401
    assert "replay window" in answer.json()["detail"]


def test_replayed_request_is_refused(client: TestClient, station: EnrolledStation) -> None:
    headers = _signed(station)

    first = client.get(NEXT_JOB, headers=headers)
    second = client.get(NEXT_JOB, headers=headers)

    assert first.status_code == 204
    assert second.status_code == 401
    assert "replay" in second.json()["detail"]


def test_tampered_query_is_refused(client: TestClient, station: EnrolledStation) -> None:
    headers = _signed(station, query="wait=0")

    answer = client.get(NEXT_JOB, params={"wait": 5}, headers=headers)

    assert answer.status_code == 401
    assert "does not verify" in answer.json()["detail"]


def test_tampered_body_is_refused(client: TestClient, station: EnrolledStation) -> None:
    path = "/stations/me/collections/chest-ct"
    headers = _signed(station, method="PUT", path=path, body=b'{"a": 1}')

    answer = client.put(path, content=b'{"a": 2}', headers={**headers, "Content-Type": "application/json"})

    assert answer.status_code == 401
    assert "Content-Digest" in answer.json()["detail"]


def test_request_signed_with_another_key_is_refused(client: TestClient, station: EnrolledStation) -> None:
    answer = client.get(NEXT_JOB, headers=_signed(station, key=generate_key_pair().signing))

    assert answer.status_code == 401


@pytest.mark.parametrize("path", ["/artifacts/sha256:" + "0" * 64])
def test_station_reading_artifacts_must_sign_too(client: TestClient, station: EnrolledStation, path: str) -> None:
    unsigned = client.get(path, headers={**station.headers, UNSIGNED: "1"})
    signed = client.get(path, headers=_signed(station, path=path))

    assert unsigned.status_code == 401
    assert signed.status_code == 404  # past the signature check: no such artifact
