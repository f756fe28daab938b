"""Resumable chunked uploads of model updates, through the real API with signed station requests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fl_jobs import RunningRound, running_round
from hub_factories import HubFactory, sign_station_requests

from hub import Settings, create_app
from protocol import (
    JobStatus,
    ModelUpdateRef,
    ResultEnvelope,
    UploadStatus,
    content_address,
    seal,
    sign_envelope,
    sign_request,
)

CHUNK = 1024
DATA = bytes(range(256)) * 21  # 5376 bytes: five whole chunks and a short one


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "hub",
        base_iri="http://hub.test",
        upload_chunk_bytes=CHUNK,
        max_update_bytes=64 * CHUNK,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        test_client.event_hooks["request"].append(sign_station_requests)
        yield test_client


@pytest.fixture
def fl(client: TestClient) -> RunningRound:
    return running_round(client)


def _base(fl: RunningRound) -> str:
    return f"/stations/me/jobs/{fl.job.job_id}/uploads"


def _start(client: TestClient, fl: RunningRound, data: bytes = DATA, address: str | None = None) -> UploadStatus:
    body = {"address": address or content_address(data), "size": len(data)}
    answer = client.post(_base(fl), json=body, headers=fl.station.headers)
    assert answer.status_code in (200, 201), answer.text
    return UploadStatus.model_validate(answer.json())


def _put(client: TestClient, fl: RunningRound, upload: UploadStatus, offset: int, data: bytes = DATA) -> object:
    return client.put(
        f"{_base(fl)}/{upload.upload_id}/{offset}", content=data[offset : offset + CHUNK], headers=fl.station.headers
    )


def _envelope(fl: RunningRound, data: bytes) -> object:
    ref = ModelUpdateRef(address=content_address(data), size=len(data), num_examples=10)
    envelope = ResultEnvelope(
        job_id=fl.job.job_id,
        train_id=fl.job.train_id,
        station=fl.station.name,
        status=JobStatus.SUCCEEDED,
        sealed=seal(b"{}", fl.researcher.keys.encryption_public, associated_data=fl.job.job_id),
        update=ref,
        created_at=datetime.now(UTC),
    )
    return sign_envelope(envelope, fl.station.keys.signing).model_dump(mode="json")


def test_an_interrupted_upload_resumes_from_the_hub_s_offset_and_its_result_is_accepted(
    client: TestClient, fl: RunningRound, settings: Settings
) -> None:
    first = _start(client, fl)
    assert (first.offset, first.chunk_bytes, first.complete) == (0, CHUNK, False)
    for offset in (0, CHUNK):
        assert _put(client, fl, first, offset).status_code == 200  # type: ignore[attr-defined]

    again = _start(client, fl)  # the station crashed and forgot the id: starting again finds the upload
    status = client.get(f"{_base(fl)}/{first.upload_id}", headers=fl.station.headers)

    assert (again.upload_id, again.offset) == (first.upload_id, 2 * CHUNK)
    assert status.status_code == 200 and status.json()["offset"] == 2 * CHUNK
    offset = again.offset
    while offset < len(DATA):
        answer = _put(client, fl, again, offset)
        assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
        done = UploadStatus.model_validate(answer.json())  # type: ignore[attr-defined]
        offset = done.offset
    assert done.complete and done.offset == len(DATA)
    assert client.get(f"/artifacts/{content_address(DATA)}", headers=fl.station.headers).content == DATA
    assert not any((settings.artifacts_dir / "tmp" / "uploads").iterdir())  # nothing partial is left
    posted = client.post(
        f"/stations/me/jobs/{fl.job.job_id}/result", json=_envelope(fl, DATA), headers=fl.station.headers
    )
    assert posted.status_code == 202, posted.text
    assert _start(client, fl).complete  # a retry after success is told it is stored


def test_a_chunk_at_the_wrong_offset_is_refused_with_the_offset_the_hub_holds(
    client: TestClient, fl: RunningRound
) -> None:
    upload = _start(client, fl)
    assert _put(client, fl, upload, 0).status_code == 200  # type: ignore[attr-defined]

    ahead = _put(client, fl, upload, 3 * CHUNK)
    repeated = _put(client, fl, upload, 0)

    for answer in (ahead, repeated):
        assert answer.status_code == 409  # type: ignore[attr-defined]
        assert answer.headers["upload-offset"] == str(CHUNK)  # type: ignore[attr-defined]
        assert f"offset {CHUNK}" in answer.json()["detail"]  # type: ignore[attr-defined]
    assert client.get(f"{_base(fl)}/{upload.upload_id}", headers=fl.station.headers).json()["offset"] == CHUNK


def test_a_chunk_changed_on_the_way_fails_its_signed_digest_and_is_not_written(
    client: TestClient, fl: RunningRound
) -> None:
    upload = _start(client, fl)
    path = f"{_base(fl)}/{upload.upload_id}/0"
    signed = sign_request(
        method="PUT", path=path, query="", body=DATA[:CHUNK], key=fl.station.keys.signing, key_id=fl.station.keys.key_id
    )
    changed = bytes([DATA[0] ^ 1]) + DATA[1:CHUNK]

    answer = client.put(path, content=changed, headers={**fl.station.headers, **signed})

    assert answer.status_code == 401
    assert "Content-Digest" in answer.json()["detail"]
    assert client.get(f"{_base(fl)}/{upload.upload_id}", headers=fl.station.headers).json()["offset"] == 0


def test_a_whole_file_that_does_not_match_its_address_is_refused_and_dropped(
    client: TestClient, fl: RunningRound
) -> None:
    claimed = content_address(b"another update")
    upload = _start(client, fl, address=claimed)
    offset = 0
    while offset + CHUNK < len(DATA):
        assert _put(client, fl, upload, offset).status_code == 200  # type: ignore[attr-defined]
        offset += CHUNK

    last = _put(client, fl, upload, offset)

    assert last.status_code == 400  # type: ignore[attr-defined]
    assert "does not match its address" in last.json()["detail"]  # type: ignore[attr-defined]
    assert client.get(f"{_base(fl)}/{upload.upload_id}", headers=fl.station.headers).status_code == 404
    assert client.get(f"/artifacts/{claimed}", headers=fl.station.headers).status_code == 404


def test_oversized_updates_and_chunks_are_refused_with_the_limit(client: TestClient, fl: RunningRound) -> None:
    huge = client.post(
        _base(fl), json={"address": content_address(b"x"), "size": 64 * CHUNK + 1}, headers=fl.station.headers
    )
    upload = _start(client, fl)
    fat_chunk = client.put(f"{_base(fl)}/{upload.upload_id}/0", content=DATA[: CHUNK + 1], headers=fl.station.headers)
    small = b"s" * 100
    short = _start(client, fl, small)
    past_end = client.put(f"{_base(fl)}/{short.upload_id}/0", content=b"s" * 101, headers=fl.station.headers)
    whole = client.put(
        f"/stations/me/jobs/{fl.job.job_id}/update/{content_address(DATA)}", content=DATA, headers=fl.station.headers
    )

    assert huge.status_code == 413 and str(64 * CHUNK) in huge.json()["detail"]
    assert fat_chunk.status_code == 413 and str(CHUNK) in fat_chunk.json()["detail"]
    assert past_end.status_code == 413 and "declared size 100" in past_end.json()["detail"]
    assert whole.status_code == 413 and "in chunks" in whole.json()["detail"]


def test_an_upload_untouched_past_its_time_to_live_is_gone_and_swept(
    client: TestClient, fl: RunningRound, settings: Settings
) -> None:
    stale = _start(client, fl)
    assert _put(client, fl, stale, 0).status_code == 200  # type: ignore[attr-defined]
    part = settings.artifacts_dir / "tmp" / "uploads" / stale.upload_id / "data.part"
    old = time.time() - settings.upload_ttl_s - 10
    os.utime(part, (old, old))

    expired = client.get(f"{_base(fl)}/{stale.upload_id}", headers=fl.station.headers)
    chunk = _put(client, fl, stale, CHUNK)

    assert expired.status_code == 410 and "expired" in expired.json()["detail"]
    assert chunk.status_code == 404  # type: ignore[attr-defined]
    assert not part.parent.exists()
    other = _start(client, fl, b"o" * 10)
    other_part = settings.artifacts_dir / "tmp" / "uploads" / other.upload_id / "data.part"
    os.utime(other_part, (old, old))
    fresh = _start(client, fl)  # starting any upload sweeps the expired ones
    assert fresh.offset == 0 and not other_part.exists()


def test_another_station_cannot_see_or_write_the_upload(client: TestClient, fl: RunningRound) -> None:
    upload = _start(client, fl)
    hub = HubFactory(client)
    intruder = hub.enrol_station(hub.login("admin"), "site-z")

    read = client.get(f"{_base(fl)}/{upload.upload_id}", headers=intruder.headers)
    write = client.put(f"{_base(fl)}/{upload.upload_id}/0", content=DATA[:CHUNK], headers=intruder.headers)
    start = client.post(_base(fl), json={"address": content_address(DATA), "size": len(DATA)}, headers=intruder.headers)

    assert read.status_code == 404 and write.status_code == 404
    assert start.status_code == 403
