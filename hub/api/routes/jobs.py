"""Jobs: the researcher fetches a job's sealed result (the hub holds ciphertext only)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from hub import audit, crud
from hub.api.deps import CurrentUser, EngineDep, OwnedJob, SessionDep, VaultDep
from protocol import ResultEnvelope

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}/result")
def read_job_result(
    job: OwnedJob, session: SessionDep, vault: VaultDep, user: CurrentUser, engine: EngineDep
) -> ResultEnvelope:
    """Read a job's signed result envelope (404 until the station uploaded it)."""
    result = crud.get_result(session=session, job_id=job.id)
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job {job.id!r} has no result yet ({job.status.value})")
    envelope = ResultEnvelope.model_validate_json(vault.read_bytes(result.address))
    audit.record_event(engine, actor=user.username, role=user.role.value, action="result.downloaded", subject=job.id)
    return envelope
