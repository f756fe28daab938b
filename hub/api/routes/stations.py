"""Stations: enrolment, publishing collections, the job long-poll and result uploads.

Every call here is opened by the station; the hub never calls into a hospital.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import anyio
import pyoxigraph as ox
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from hub import audit, crud
from hub.api.deps import (
    BINARY_BODY,
    AdminUser,
    ArtifactsDep,
    CatalogDep,
    CurrentStation,
    CurrentUser,
    EngineDep,
    RoundsDep,
    SessionDep,
    SettingsDep,
    VaultDep,
    WakeupsDep,
)
from hub.api.routes.uploads import ChunkLength
from hub.blobs import BlobStore
from hub.catalog.index import SearchIndex, records_from_store
from hub.catalog.records import distribution_triples
from hub.catalog.store import graph_iri_for_collection
from hub.catalog.validation import RecordInvalid, validate_record
from hub.core.config import Settings
from hub.models import (
    ArtifactPublic,
    CollectionPublic,
    EnrolmentTokenCreate,
    EnrolmentTokenPublic,
    Job,
    JobPublic,
    StationPublic,
    StationsPublic,
)
from protocol import (
    CollectionPublication,
    JobStatus,
    ProtocolError,
    ResultEnvelope,
    RoundSpec,
    SignatureError,
    SignedManifest,
    StationEnrolled,
    StationEnrolment,
    canonical_json,
    content_address,
    verify_envelope,
    verify_publication,
)
from protocol import Job as JobMessage

router = APIRouter(prefix="/stations", tags=["stations"])

_FINISHED = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


@router.post("/enrolment-tokens", status_code=status.HTTP_201_CREATED)
def create_enrolment_token(
    body: EnrolmentTokenCreate, session: SessionDep, settings: SettingsDep, admin: AdminUser
) -> EnrolmentTokenPublic:
    """Issue a one-time token that lets one station enrol (admins only)."""
    token, row = crud.create_enrolment_token(
        session=session, station=body.station, created_by=admin, ttl_s=settings.enrolment_token_ttl_s
    )
    return EnrolmentTokenPublic(token=token, station=row.station, expires_at=row.expires_at)


@router.post("/enrol", status_code=status.HTTP_201_CREATED)
def enrol_station(
    enrolment: StationEnrolment, session: SessionDep, settings: SettingsDep, engine: EngineDep
) -> StationEnrolled:
    """Redeem an enrolment token: register the station's public keys and get its API token."""
    if not crud.redeem_enrolment_token(session=session, token=enrolment.enrolment_token, station=enrolment.name):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"the enrolment token is unknown, already used, expired or not for station {enrolment.name!r}",
        )
    station = crud.enrol_station(session=session, enrolment=enrolment)
    token = crud.create_station_token(session=session, station=station, ttl_s=settings.station_token_ttl_s)
    audit.record_event(engine, actor=station.id, role="station", action="station.enrolled", subject=station.id)
    return StationEnrolled(station_id=station.id, api_token=token)


@router.get("")
def read_stations(session: SessionDep, _user: CurrentUser) -> StationsPublic:
    """List the enrolled stations."""
    stations = [StationPublic.from_station(station) for station in crud.list_stations(session=session)]
    return StationsPublic(data=stations, count=len(stations))


@router.put("/me/collections/{collection}")
def publish_collection(
    collection: str,
    publication: CollectionPublication,
    session: SessionDep,
    station: CurrentStation,
    catalog: CatalogDep,
    settings: SettingsDep,
    request: Request,
) -> CollectionPublic:
    """Publish (or replace) one of the calling station's collections in the catalog."""
    try:
        verify_publication(publication, station.signing_public_key)
    except SignatureError as exc:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"the publication is not signed by station {station.id!r}: {exc}"
        ) from exc
    if publication.station != station.id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"station {station.id!r} cannot publish for station {publication.station!r}",
        )
    if publication.collection != collection:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"the path names collection {collection!r} but the publication is for {publication.collection!r}",
        )
    graph_iri = graph_iri_for_collection(settings.base_iri, station.id, collection)

    def extra(published: list[ox.Triple]) -> list[ox.Triple]:
        return distribution_triples(
            settings.base_iri, station.id, collection, station_name=station.id, published=published
        )

    try:
        catalog.replace_collection(
            graph_iri, publication.turtle, station=station.id, collection=collection, extra=extra, check=validate_record
        )
    except RecordInvalid as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail={"message": str(exc), "problems": [problem.__dict__ for problem in exc.problems]},
        ) from exc
    except ProtocolError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    row = crud.upsert_collection(session=session, publication=publication, graph_iri=graph_iri)
    index: SearchIndex = request.app.state.search_index
    for record in records_from_store(catalog.store, [graph_iri]):
        index.upsert(record)  # searchable as soon as this answer leaves
    return CollectionPublic.from_collection(row)


def _claim_next_job(engine: Engine, station_id: str, settings: Settings) -> JobMessage | None:
    with Session(engine) as session:
        crud.touch_station(session=session, station_id=station_id)
        crud.expire_job_leases(session=session, max_attempts=settings.job_max_attempts)
        events, _cancelled = crud.sweep_access(session=session, decision_ttl_s=settings.decision_ttl_days * 86400)
        audit.record_access_events(engine, events)  # an ended grant's jobs are cancelled before any is sent
        claimed = crud.claim_next_job(session=session, station_id=station_id, lease_s=settings.job_lease_s)
        if claimed is None:
            return None
        job, train = claimed
        audit.record_event(engine, actor=station_id, role="station", action="job.dispatched", subject=job.id)
        return JobMessage(
            job_id=job.id,
            train_id=train.id,
            station=job.station_id,
            collection=job.collection,
            signed_manifest=SignedManifest.model_validate(train.signed_manifest),
            issued_at=job.created_at,
            grants=tuple(
                crud.signed_grants_for(session=session, project_id=train.project_id, collection_id=job.collection_id)
            ),
            round=RoundSpec.model_validate(job.round_spec) if job.round_spec else None,
        )


@router.get(
    "/me/jobs/next",
    response_model=JobMessage,
    responses={status.HTTP_204_NO_CONTENT: {"description": "no job arrived within the wait"}},
)
async def read_next_job(
    station: CurrentStation,
    engine: EngineDep,
    settings: SettingsDep,
    wakeups: WakeupsDep,
    wait: Annotated[float, Query(ge=0, description="seconds to wait for a job (capped by the hub)")] = 0,
) -> JobMessage | Response:
    """Long-poll for the station's oldest queued job; it becomes running when delivered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, settings.long_poll_max_s)
    with wakeups.listen(station.id) as woken:
        while True:
            woken.clear()  # cleared before the look, so a job created after it still wakes us
            job = await anyio.to_thread.run_sync(_claim_next_job, engine, station.id, settings)
            if job is not None:
                return job
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Response(status_code=status.HTTP_204_NO_CONTENT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=min(remaining, settings.long_poll_recheck_s))


@router.post("/me/jobs/{job_id}/heartbeat")
def heartbeat_job(job_id: str, session: SessionDep, station: CurrentStation, settings: SettingsDep) -> JobPublic:
    """Keep a delivered job's lease while the train runs (409 once the job is no longer running)."""
    job = crud.get_job(session=session, job_id=job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
    if job.station_id != station.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"job {job_id!r} is not for station {station.id!r}")
    if job.status != JobStatus.RUNNING:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"job {job_id!r} is {job.status.value}, not running")
    return JobPublic.from_job(crud.extend_job_lease(session=session, job=job, lease_s=settings.job_lease_s))


@router.put(
    "/me/jobs/{job_id}/update/{address}",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=BINARY_BODY,
)
async def upload_job_update(
    job_id: str,
    address: str,
    request: Request,
    response: Response,
    _length: ChunkLength,
    station: CurrentStation,
    engine: EngineDep,
    artifacts: ArtifactsDep,
    settings: SettingsDep,
) -> ArtifactPublic:
    """Upload a federated job's model update (safetensors) of up to one chunk under its content address, before
    its envelope; a larger one goes through the resumable upload (``POST /stations/me/jobs/{job_id}/uploads``)."""
    job = await anyio.to_thread.run_sync(_job_for_station, engine, job_id, station.id)
    if job.fl_round is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"job {job_id!r} is not a federated round's job")
    if job.status == JobStatus.SUCCEEDED and artifacts.has(address):
        return ArtifactPublic(address=address, size=artifacts.path_for(address).stat().st_size)  # a retry
    if job.status != JobStatus.RUNNING:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"job {job_id!r} is {job.status.value}, not running")
    limit = settings.max_update_bytes
    with artifacts.begin_upload(max_bytes=limit) as upload:
        try:
            async for chunk in request.stream():
                upload.write(chunk)
        except ValueError as exc:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail=f"a model update may hold at most {limit} bytes"
            ) from exc
        if upload.address != address:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"the update does not match its address: expected {address}, got {upload.address}",
            )
        if artifacts.has(address):
            response.status_code = status.HTTP_200_OK
        else:
            upload.commit(expected_address=address)
        return ArtifactPublic(address=address, size=upload.size)


def _job_for_station(engine: Engine, job_id: str, station_id: str) -> Job:
    with Session(engine) as session:
        job = crud.get_job(session=session, job_id=job_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
        if job.station_id != station_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"job {job_id!r} is not for station {station_id!r}")
        return job


@router.post("/me/jobs/{job_id}/result", status_code=status.HTTP_202_ACCEPTED)
def upload_job_result(
    job_id: str,
    envelope: ResultEnvelope,
    response: Response,
    session: SessionDep,
    station: CurrentStation,
    vault: VaultDep,
    engine: EngineDep,
    artifacts: ArtifactsDep,
    rounds: RoundsDep,
) -> JobPublic:
    """Store a job's signed, sealed result (the same envelope again is a no-op); a round's update joins its round."""
    job = crud.get_job(session=session, job_id=job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
    if job.station_id != station.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"job {job_id!r} is not for station {station.id!r}")
    try:
        verify_envelope(envelope, station.signing_public_key)
    except SignatureError as exc:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"the envelope is not signed by station {station.id!r}: {exc}"
        ) from exc
    if envelope.job_id != job.id or envelope.train_id != job.train_id or envelope.station != station.id:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="the envelope names another job, train or station than this upload"
        )
    if envelope.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="a result's status is 'succeeded' or 'failed'")
    if envelope.status == JobStatus.SUCCEEDED and envelope.sealed is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="a succeeded result carries its sealed payload")
    if job.fl_round is not None and envelope.status == JobStatus.SUCCEEDED:
        _check_update(envelope, artifacts)
    elif envelope.update is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="only a succeeded federated job carries a model update")
    data = canonical_json(envelope.model_dump(mode="json"))
    address = content_address(data)
    existing = crud.get_result(session=session, job_id=job.id)
    if existing is None and job.status in _FINISHED:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"job {job.id!r} is already {job.status.value}")
    if existing is None:
        vault.put_bytes(data)  # the file is durable before the row that points at it
        try:
            crud.record_result(
                session=session, job=job, envelope=envelope, address=address, path=vault.relative_path_for(address)
            )
            audit.record_event(
                engine,
                actor=station.id,
                role="station",
                action="result.uploaded",
                subject=job.id,
                details={"status": envelope.status.value, "address": address},
            )
            if job.fl_round is not None:
                if envelope.update is not None:
                    rounds.record_update(session=session, job=job, update_ref=envelope.update)
                rounds.advance(job.train_id)
            return JobPublic.from_job(job)
        except IntegrityError:  # a concurrent upload of the same job won the race
            session.rollback()
            existing = crud.get_result(session=session, job_id=job.id)
            assert existing is not None
    if existing.address != address:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"job {job.id!r} already has another result; results are final"
        )
    session.refresh(job)
    response.status_code = status.HTTP_200_OK
    return JobPublic.from_job(job)


def _check_update(envelope: ResultEnvelope, artifacts: BlobStore) -> None:
    """A round's result names an update that was uploaded first, with the size it claims."""
    update_ref = envelope.update
    if update_ref is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="a federated job's result names its model update (upload it first)"
        )
    if not artifacts.has(update_ref.address):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"the update {update_ref.address} is not uploaded: PUT /stations/me/jobs/{envelope.job_id}/update/"
            f"{update_ref.address} first",
        )
    size = artifacts.path_for(update_ref.address).stat().st_size
    if size != update_ref.size:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"the update is {size} bytes, not the {update_ref.size} the result says"
        )
