"""The station's job long-poll and result uploads, and the researcher reading results."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from hub_factories import STATION, EnrolledStation, HubFactory, Researcher

from hub import Settings, create_app
from protocol import (
    Job,
    JobFailure,
    JobStatus,
    ResultEnvelope,
    SignedManifest,
    generate_key_pair,
    seal,
    sign_envelope,
)


def _envelope(station: EnrolledStation, job: Job, researcher: Researcher, payload: bytes = b"counts") -> ResultEnvelope:
    envelope = ResultEnvelope(
        job_id=job.job_id,
        train_id=job.train_id,
        station=station.name,
        status=JobStatus.SUCCEEDED,
        sealed=seal(payload, researcher.keys.encryption_public, associated_data=job.job_id),
        created_at=datetime.now(UTC),
    )
    return sign_envelope(envelope, station.keys.signing)


def _poll(client: TestClient, station: EnrolledStation, wait: float = 0) -> Job | None:
    answer = client.get("/stations/me/jobs/next", params={"wait": wait}, headers=station.headers)
    if answer.status_code == 204:
        return None
    assert answer.status_code == 200, answer.text
    return Job.model_validate(answer.json())


def test_read_next_job_timeout(client: TestClient, station: EnrolledStation) -> None:
    started = time.monotonic()

    answer = client.get("/stations/me/jobs/next", params={"wait": 0.3}, headers=station.headers)

    assert answer.status_code == 204
    assert 0.25 <= time.monotonic() - started < 3


def test_read_next_job_delivers_queued_job(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    train = hub.submit(signed_manifest, researcher)

    job = _poll(client, station)

    assert job is not None
    assert job.train_id == train["id"]
    assert job.station == STATION
    assert job.signed_manifest == signed_manifest
    assert client.get(f"/trains/{train['id']}", headers=researcher.headers).json()["jobs"][0]["status"] == "running"
    assert _poll(client, station) is None


def test_read_next_job_updates_last_seen(client: TestClient, station: EnrolledStation, researcher: Researcher) -> None:
    _poll(client, station)

    (listed,) = client.get("/stations", headers=researcher.headers).json()["data"]

    assert listed["last_seen_at"] is not None


def test_read_next_job_wakes_when_job_created(
    settings: Settings,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
    client: TestClient,
) -> None:
    client.app.state.settings = settings.model_copy(update={"long_poll_recheck_s": 30.0})  # type: ignore[attr-defined]
    delivered: list[tuple[int, float]] = []

    def poll() -> None:
        answer = client.get("/stations/me/jobs/next", params={"wait": 10}, headers=station.headers)
        delivered.append((answer.status_code, time.monotonic()))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)  # the poll is waiting now
    submitted_at = time.monotonic()
    hub.submit(signed_manifest, researcher)
    poller.join(timeout=10)

    assert delivered, "the poll did not return"
    status, returned_at = delivered[0]
    assert status == 200
    assert returned_at - submitted_at < 2.0


def test_read_next_job_wait_capped(client: TestClient, station: EnrolledStation, settings: Settings) -> None:
    client.app.state.settings = settings.model_copy(update={"long_poll_max_s": 0.2})  # type: ignore[attr-defined]
    started = time.monotonic()

    answer = client.get("/stations/me/jobs/next", params={"wait": 600}, headers=station.headers)

    assert answer.status_code == 204
    assert time.monotonic() - started < 3


def test_read_next_job_without_station_token(client: TestClient, researcher: Researcher) -> None:
    answer = client.get("/stations/me/jobs/next", headers=researcher.headers)

    assert answer.status_code == 401


def test_upload_job_result_then_researcher_reads_it(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    envelope = _envelope(station, job, researcher)

    answer = client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=envelope.model_dump(mode="json"), headers=station.headers
    )
    read = client.get(f"/jobs/{job.job_id}/result", headers=researcher.headers)

    assert answer.status_code == 202
    assert answer.json()["status"] == "succeeded"
    assert read.status_code == 200
    assert ResultEnvelope.model_validate(read.json()) == envelope


def test_upload_job_result_same_envelope_again(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    body = _envelope(station, job, researcher).model_dump(mode="json")
    path = f"/stations/me/jobs/{job.job_id}/result"
    assert client.post(path, json=body, headers=station.headers).status_code == 202

    answer = client.post(path, json=body, headers=station.headers)

    assert answer.status_code == 200
    assert answer.json()["status"] == "succeeded"


def test_upload_job_result_different_envelope_conflict(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    path = f"/stations/me/jobs/{job.job_id}/result"
    first = _envelope(station, job, researcher, b"first")
    second = _envelope(station, job, researcher, b"second")
    assert client.post(path, json=first.model_dump(mode="json"), headers=station.headers).status_code == 202

    answer = client.post(path, json=second.model_dump(mode="json"), headers=station.headers)

    assert answer.status_code == 409
    read = client.get(f"/jobs/{job.job_id}/result", headers=researcher.headers)
    assert ResultEnvelope.model_validate(read.json()) == first


def test_upload_job_result_failure(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    train = hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    envelope = ResultEnvelope(
        job_id=job.job_id,
        train_id=job.train_id,
        station=station.name,
        status=JobStatus.FAILED,
        failure=JobFailure(reason="the train exited with 1", exit_code=1),
        created_at=datetime.now(UTC),
    )
    signed = sign_envelope(envelope, station.keys.signing)

    answer = client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=signed.model_dump(mode="json"), headers=station.headers
    )

    assert answer.status_code == 202
    jobs = client.get(f"/trains/{train['id']}", headers=researcher.headers).json()["jobs"]
    assert jobs[0]["status"] == "failed"
    assert jobs[0]["failure"] == {"reason": "the train exited with 1", "exit_code": 1}


def test_upload_job_result_tampered_envelope(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    envelope = _envelope(station, job, researcher).model_copy(update={"status": JobStatus.FAILED})

    answer = client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=envelope.model_dump(mode="json"), headers=station.headers
    )

    assert answer.status_code == 403
    assert client.get(f"/jobs/{job.job_id}/result", headers=researcher.headers).status_code == 404


def test_upload_job_result_other_station(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
    admin_headers: dict[str, str],
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    intruder = hub.enrol_station(admin_headers, "site-b")
    envelope = _envelope(intruder, job, researcher)

    answer = client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=envelope.model_dump(mode="json"), headers=intruder.headers
    )

    assert answer.status_code == 403


def test_upload_job_result_unknown_job(client: TestClient, station: EnrolledStation) -> None:
    job = Job.model_construct(job_id="nope", train_id="nope")
    envelope = ResultEnvelope(
        job_id="nope", train_id="nope", station=station.name, status=JobStatus.FAILED, created_at=datetime.now(UTC)
    )

    answer = client.post(
        f"/stations/me/jobs/{job.job_id}/result",
        json=sign_envelope(envelope, station.keys.signing).model_dump(mode="json"),
        headers=station.headers,
    )

    assert answer.status_code == 404


def test_read_job_result_before_upload(
    client: TestClient, hub: HubFactory, researcher: Researcher, signed_manifest: SignedManifest
) -> None:
    train = hub.submit(signed_manifest, researcher)
    job_id = train["jobs"][0]["id"]  # type: ignore[index]

    answer = client.get(f"/jobs/{job_id}/result", headers=researcher.headers)

    assert answer.status_code == 404
    assert "no result yet" in answer.json()["detail"]


def test_read_job_result_not_owner(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    envelope = _envelope(station, job, researcher)
    client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=envelope.model_dump(mode="json"), headers=station.headers
    )
    other = hub.create_researcher("mallory")

    answer = client.get(f"/jobs/{job.job_id}/result", headers=other.headers)

    assert answer.status_code == 403


def test_result_survives_restart(
    settings: Settings,
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    envelope = _envelope(station, job, researcher)
    client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=envelope.model_dump(mode="json"), headers=station.headers
    )
    client.__exit__(None, None, None)

    with TestClient(create_app(settings)) as restarted:
        answer = restarted.get(f"/jobs/{job.job_id}/result", headers=researcher.headers)

    assert answer.status_code == 200
    assert ResultEnvelope.model_validate(answer.json()) == envelope
    assert generate_key_pair()  # keys are independent of the hub


# -- leases: a job whose station stops answering is re-offered, then failed ----------------------


def _expire_lease(client: TestClient) -> None:
    from datetime import timedelta

    from sqlalchemy import update
    from sqlmodel import Session

    from hub.models import Job as JobRow

    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        session.exec(update(JobRow).values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))  # type: ignore[call-overload]
        session.commit()


def _job_view(client: TestClient, researcher: Researcher, train_id: object) -> dict:  # type: ignore[type-arg]
    return client.get(f"/trains/{train_id}", headers=researcher.headers).json()["jobs"][0]  # type: ignore[no-any-return]


def test_delivered_job_carries_a_lease_that_heartbeats_extend(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    train = hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    first = _job_view(client, researcher, train["id"])

    beat = client.post(f"/stations/me/jobs/{job.job_id}/heartbeat", headers=station.headers)

    assert first["attempts"] == 1 and first["lease_expires_at"] is not None
    assert beat.status_code == 200
    assert beat.json()["lease_expires_at"] >= first["lease_expires_at"]


def test_expired_lease_re_offers_the_job_then_fails_it(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
    settings: Settings,
) -> None:
    train = hub.submit(signed_manifest, researcher)
    deliveries = []
    for _ in range(settings.job_max_attempts):
        job = _poll(client, station)
        assert job is not None
        deliveries.append(job.job_id)
        _expire_lease(client)

    assert _poll(client, station) is None  # the sweep on this poll failed it for good
    view = _job_view(client, researcher, train["id"])
    assert len(set(deliveries)) == 1 and len(deliveries) == settings.job_max_attempts
    assert view["status"] == "failed"
    assert "lease expired" in view["failure"]["reason"]


def test_late_result_after_a_re_offer_is_still_accepted_once(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    _expire_lease(client)
    assert _poll(client, station) is not None  # re-offered

    envelope = _envelope(station, job, researcher)
    first = client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=envelope.model_dump(mode="json"), headers=station.headers
    )
    again = client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=envelope.model_dump(mode="json"), headers=station.headers
    )

    assert (first.status_code, again.status_code) == (202, 200)


def test_heartbeat_for_a_finished_or_foreign_job(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
    admin_headers: dict[str, str],
) -> None:
    hub.submit(signed_manifest, researcher)
    job = _poll(client, station)
    assert job is not None
    other = hub.enrol_station(admin_headers, "site-b")
    envelope = _envelope(station, job, researcher)
    client.post(
        f"/stations/me/jobs/{job.job_id}/result", json=envelope.model_dump(mode="json"), headers=station.headers
    )

    finished = client.post(f"/stations/me/jobs/{job.job_id}/heartbeat", headers=station.headers)
    foreign = client.post(f"/stations/me/jobs/{job.job_id}/heartbeat", headers=other.headers)
    missing = client.post("/stations/me/jobs/nope/heartbeat", headers=station.headers)

    assert (finished.status_code, foreign.status_code, missing.status_code) == (409, 403, 404)
