"""Secure aggregation: the stations' protocol messages, relayed by the hub (stations never talk to each other).

A station sends its step's message with ``PUT /stations/me/jobs/{job_id}/secagg/{step}`` (``keys``, ``shares``,
``masked``, ``unmask``) and polls what the hub publishes after a step with ``GET .../secagg/{publication}``
(``roster``, ``shares``, ``survivors``): 204 until the step is over. Both keep the job's lease.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Response, status
from sqlmodel import Session

from hub import crud
from hub.api.deps import CurrentStation, RoundsDep, SessionDep, SettingsDep
from hub.fl import plan_of
from hub.fl._secagg import SecAggError
from hub.models import Job, Train

router = APIRouter(prefix="/stations", tags=["stations"])


def _secagg_job(session: Session, job_id: str, station_id: str) -> Job:
    job = crud.get_job(session=session, job_id=job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
    if job.station_id != station_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"job {job_id!r} is not for station {station_id!r}")
    train = session.get(Train, job.train_id)
    if train is None or job.fl_round is None or not plan_of(train).secagg:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"job {job_id!r} does not use secure aggregation")
    return job


@router.put("/me/jobs/{job_id}/secagg/{step}")
def send_secagg_message(
    job_id: str,
    step: str,
    session: SessionDep,
    station: CurrentStation,
    rounds: RoundsDep,
    settings: SettingsDep,
    body: dict[str, Any] = Body(...),  # noqa: B008 - FastAPI's way to take a JSON object whose shape the step decides
) -> dict[str, str]:
    """Send this job's message of one secure-aggregation step (the same message again is a no-op)."""
    job = _secagg_job(session, job_id, station.id)
    try:
        rounds.secagg.put_message(session, job=job, phase=step, body=body)
    except SecAggError as exc:
        raise HTTPException(exc.status, detail=exc.detail) from exc
    crud.extend_job_lease(session=session, job=job, lease_s=settings.job_lease_s)
    rounds.advance(job.train_id)
    return {"job_id": job.id, "step": step, "status": "stored"}


@router.get(
    "/me/jobs/{job_id}/secagg/{publication}",
    responses={status.HTTP_204_NO_CONTENT: {"description": "the step before it is not over yet"}},
)
def read_secagg_publication(
    job_id: str,
    publication: str,
    session: SessionDep,
    station: CurrentStation,
    rounds: RoundsDep,
    settings: SettingsDep,
) -> Any:
    """Read what the hub published after a step: the roster, the shares for this station, the survivors."""
    job = _secagg_job(session, job_id, station.id)
    crud.extend_job_lease(session=session, job=job, lease_s=settings.job_lease_s)
    rounds.advance(job.train_id)
    session.expire_all()
    try:
        answer = rounds.secagg.read_publication(session, job=job, phase=publication)
    except SecAggError as exc:
        raise HTTPException(exc.status, detail=exc.detail) from exc
    if answer is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return answer.model_dump(mode="json")
