"""Resumable uploads of model updates: start, send chunks at offsets, ask how far it got.

A station uploads an update larger than one chunk this way (:mod:`protocol._transfer`): each chunk
is its own signed request, written to disk as it arrives; the last one makes the hub check the
whole file against its content address and store it. Nothing holds the whole update in memory.
"""

from __future__ import annotations

import threading
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from sqlalchemy import Engine
from sqlmodel import Session

from hub import crud
from hub.api.deps import BINARY_BODY, ArtifactsDep, CurrentStation, EngineDep, SettingsDep
from hub.blobs import BlobStore
from hub.core.config import Settings
from hub.uploads import ResumableUploads, UploadRefused
from protocol import JobStatus, UploadStart, UploadStatus

router = APIRouter(prefix="/stations", tags=["stations"])

_SETUP = threading.Lock()


def _uploads(request: Request, artifacts: BlobStore, settings: Settings) -> ResumableUploads:
    """The app's upload keeper (made once: it remembers running hashes between chunks)."""
    with _SETUP:
        uploads: ResumableUploads | None = getattr(request.app.state, "uploads", None)
        if uploads is None:
            uploads = ResumableUploads(
                artifacts,
                chunk_bytes=settings.upload_chunk_bytes,
                max_bytes=settings.max_update_bytes,
                ttl_s=settings.upload_ttl_s,
            )
            request.app.state.uploads = uploads
        return uploads


def _check_chunk_length(request: Request) -> None:
    """Refuse an oversized body from its Content-Length, before the signature check reads it into memory."""
    settings: Settings = request.app.state.settings
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise HTTPException(status.HTTP_411_LENGTH_REQUIRED, detail="a chunk must say its Content-Length")
    if int(declared) > settings.upload_chunk_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"one request may carry at most {settings.upload_chunk_bytes} bytes of a model update (this one "
            f"says {declared}): send larger updates in chunks (POST /stations/me/jobs/{{job_id}}/uploads)",
        )


ChunkLength = Annotated[None, Depends(_check_chunk_length)]


def _running_job(engine: Engine, job_id: str, station_id: str) -> JobStatus:
    with Session(engine) as session:
        job = crud.get_job(session=session, job_id=job_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
        if job.station_id != station_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"job {job_id!r} is not for station {station_id!r}")
        if job.fl_round is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"job {job_id!r} is not a federated round's job")
        return job.status


def _refused(exc: UploadRefused) -> HTTPException:
    headers = {"Upload-Offset": str(exc.offset)} if exc.offset is not None else None
    return HTTPException(exc.status, detail=exc.detail, headers=headers)


@router.post("/me/jobs/{job_id}/uploads", status_code=status.HTTP_201_CREATED)
async def start_update_upload(
    job_id: str,
    start: UploadStart,
    request: Request,
    response: Response,
    station: CurrentStation,
    engine: EngineDep,
    artifacts: ArtifactsDep,
    settings: SettingsDep,
) -> UploadStatus:
    """Start a resumable upload of a round's model update (or get the unfinished one for the same file)."""
    job_status = await anyio.to_thread.run_sync(_running_job, engine, job_id, station.id)
    if job_status != JobStatus.RUNNING and not (job_status == JobStatus.SUCCEEDED and artifacts.has(start.address)):
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"job {job_id!r} is {job_status.value}, not running")
    uploads = _uploads(request, artifacts, settings)
    try:
        answer = await anyio.to_thread.run_sync(
            lambda: uploads.start(owner=station.id, job_id=job_id, address=start.address, size=start.size)
        )
    except UploadRefused as exc:
        raise _refused(exc) from exc
    if answer.complete or answer.offset:
        response.status_code = status.HTTP_200_OK
    return answer


@router.get("/me/jobs/{job_id}/uploads/{upload_id}")
async def read_update_upload(
    job_id: str,
    upload_id: str,
    request: Request,
    station: CurrentStation,
    artifacts: ArtifactsDep,
    settings: SettingsDep,
) -> UploadStatus:
    """Where an upload stands: the offset the next chunk starts at."""
    uploads = _uploads(request, artifacts, settings)
    try:
        return uploads.status(owner=station.id, job_id=job_id, upload_id=upload_id)
    except UploadRefused as exc:
        raise _refused(exc) from exc


@router.put(
    "/me/jobs/{job_id}/uploads/{upload_id}/{offset}",
    openapi_extra=BINARY_BODY,
)
async def write_update_chunk(
    job_id: str,
    upload_id: str,
    offset: int,
    request: Request,
    _length: ChunkLength,
    station: CurrentStation,
    artifacts: ArtifactsDep,
    settings: SettingsDep,
) -> UploadStatus:
    """Write one chunk at ``offset`` (the signed request's digest covers it); the last one stores the update."""
    uploads = _uploads(request, artifacts, settings)
    chunk = await request.body()  # at most one chunk: its length was checked before the signature read it
    try:
        return await anyio.to_thread.run_sync(
            lambda: uploads.write(owner=station.id, job_id=job_id, upload_id=upload_id, offset=offset, chunk=chunk)
        )
    except UploadRefused as exc:
        raise _refused(exc) from exc
