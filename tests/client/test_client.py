import json
from datetime import UTC, datetime

import httpx
import pytest

from client import ClientError, TrainyardClient
from protocol import (
    DecryptionError,
    JobFailure,
    JobStatus,
    KeyPair,
    ResultEnvelope,
    ResultPayload,
    SignatureError,
    b64encode,
    generate_key_pair,
    open_sealed,
    seal,
    sign_envelope,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _envelope(station: KeyPair, researcher: KeyPair, *, job_id: str = "j1") -> ResultEnvelope:
    payload = ResultPayload(
        job_id=job_id,
        station="site-a",
        collection="c",
        files={"cohort.json": b64encode(b'{"subjects": 12}')},
        executor="sandbox",
        started_at=NOW,
        finished_at=NOW,
    )
    sealed = seal(payload.model_dump_json().encode(), researcher.encryption_public, associated_data=job_id)
    envelope = ResultEnvelope(
        job_id=job_id, train_id="t1", station="site-a", status=JobStatus.SUCCEEDED, sealed=sealed, created_at=NOW
    )
    return sign_envelope(envelope, station.signing)


def _client(envelope: ResultEnvelope, station_key: str) -> TrainyardClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/stations":
            station = {"name": "site-a", "signing_public_key": station_key}
            return httpx.Response(200, json={"data": [station], "count": 1})
        if request.url.path.startswith("/jobs/"):
            return httpx.Response(200, text=envelope.model_dump_json())
        return httpx.Response(404, json={"detail": "not here"})

    return TrainyardClient("http://hub", token="t", transport=httpx.MockTransport(handler))


def test_fetch_result_verifies_and_decrypts() -> None:
    station, researcher = generate_key_pair(), generate_key_pair()
    client = _client(_envelope(station, researcher), station.signing_public)

    result = client.fetch_result("j1", keys=researcher)

    assert result.json_output("cohort.json") == {"subjects": 12}


def test_fetch_result_signed_by_other_station() -> None:
    researcher = generate_key_pair()
    client = _client(_envelope(generate_key_pair(), researcher), generate_key_pair().signing_public)

    with pytest.raises(SignatureError):
        client.fetch_result("j1", keys=researcher)


def test_fetch_result_sealed_for_other_researcher() -> None:
    station = generate_key_pair()
    client = _client(_envelope(station, generate_key_pair()), station.signing_public)

    with pytest.raises(DecryptionError):
        client.fetch_result("j1", keys=generate_key_pair())


def test_fetch_result_failed_job_reports_reason() -> None:
    station, researcher = generate_key_pair(), generate_key_pair()
    failed = ResultEnvelope(
        job_id="j1",
        train_id="t1",
        station="site-a",
        status=JobStatus.FAILED,
        failure=JobFailure(reason="the train exited with 1", exit_code=1),
        created_at=NOW,
    )
    client = _client(sign_envelope(failed, station.signing), station.signing_public)

    with pytest.raises(ClientError, match="exited with 1"):
        client.fetch_result("j1", keys=researcher)


def test_request_error_carries_detail_and_status() -> None:
    client = TrainyardClient(
        "http://hub", transport=httpx.MockTransport(lambda r: httpx.Response(403, json={"detail": "no grant"}))
    )

    with pytest.raises(ClientError, match="no grant") as caught:
        client.read_train("t1")
    assert caught.value.status == 403


def test_request_hub_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = TrainyardClient("http://hub", transport=httpx.MockTransport(refuse))

    with pytest.raises(ClientError, match="cannot reach the hub"):
        client.read_user_me()


def test_login_keeps_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.url.path == "/auth/login":
            return httpx.Response(200, json={"access_token": "abc", "token_type": "bearer", "user": {}})
        return httpx.Response(200, text=json.dumps({"username": "rosa"}))

    client = TrainyardClient("http://hub", transport=httpx.MockTransport(handler))
    client.login("rosa", "pw")
    client.read_user_me()

    assert seen == ["", "Bearer abc"]


def test_fetch_result_picks_the_retired_key_it_was_sealed_for() -> None:
    station, retired, current = generate_key_pair(), generate_key_pair(), generate_key_pair()
    client = _client(_envelope(station, retired), station.signing_public)

    result = client.fetch_result("j1", keys=[current, retired])

    assert result.json_output("cohort.json") == {"subjects": 12}


def test_fetch_result_opens_the_box_sealed_for_a_co_recipient() -> None:
    station, researcher, colleague = generate_key_pair(), generate_key_pair(), generate_key_pair()
    mine = _envelope(station, researcher)
    assert mine.sealed is not None
    colleague_box = seal(
        open_sealed(mine.sealed, researcher.encryption), colleague.encryption_public, associated_data="j1"
    )
    both = sign_envelope(mine.model_copy(update={"sealed_for": (colleague_box,), "signature": ""}), station.signing)
    client = _client(both, station.signing_public)

    assert client.fetch_result("j1", keys=colleague).json_output("cohort.json") == {"subjects": 12}
    assert client.fetch_result("j1", keys=researcher).json_output("cohort.json") == {"subjects": 12}
    with pytest.raises(DecryptionError):
        client.fetch_result("j1", keys=generate_key_pair())
