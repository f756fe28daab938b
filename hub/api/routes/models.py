"""The model registry: trained models with their provenance, for the project's researchers only."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse
from sqlmodel import Session

from hub.api.deps import ArtifactsDep, ResearcherUser, SessionDep
from hub.fl import get_model_for_user, list_models_for_user
from hub.models import ModelVersion, ModelVersionPublic, ModelVersionsPublic, User

router = APIRouter(prefix="/models", tags=["models"])


def _model(session: Session, user: User, model_id: str) -> ModelVersion:
    row = get_model_for_user(session=session, user=user, model_id=model_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no model {model_id!r} in your projects")
    return row


@router.get("")
def read_models(session: SessionDep, user: ResearcherUser, project_id: str | None = None) -> ModelVersionsPublic:
    """List the registered models of your projects, newest first."""
    rows = list_models_for_user(session=session, user=user, project_id=project_id)
    return ModelVersionsPublic(data=[ModelVersionPublic.from_row(row) for row in rows], count=len(rows))


@router.get("/{model_id}")
def read_model(model_id: str, session: SessionDep, user: ResearcherUser) -> ModelVersionPublic:
    """Read one registered model with its provenance (stations, rounds, strategy, metrics, DP budget)."""
    return ModelVersionPublic.from_row(_model(session, user, model_id))


@router.get(
    "/{model_id}/weights",
    response_class=FileResponse,
    responses={status.HTTP_200_OK: {"content": {"application/octet-stream": {}}}},
)
def read_model_weights(
    model_id: str, session: SessionDep, user: ResearcherUser, artifacts: ArtifactsDep
) -> FileResponse:
    """Download a registered model's weights (safetensors)."""
    row = _model(session, user, model_id)
    if not artifacts.has(row.address):
        raise HTTPException(status.HTTP_410_GONE, detail=f"the weights of model {model_id!r} are no longer stored")
    return FileResponse(
        artifacts.path_for(row.address),
        media_type="application/octet-stream",
        filename=f"{row.name}-v{row.version}.safetensors",
    )
