"""The model registry: who may read which trained model."""

from __future__ import annotations

from sqlmodel import Session, col, select

from hub.models import ModelVersion, Project, User

__all__ = ["get_model_for_user", "list_models_for_user"]


def _readable_projects(session: Session, user: User) -> list[str]:
    """Projects whose models ``user`` may read: the ones they own or are a member of."""
    projects = session.exec(select(Project)).all()
    readable = []
    for project in projects:
        members = getattr(project, "members", None) or []
        if project.owner == user.username or user.username in members:
            readable.append(project.id)
    return readable


def list_models_for_user(*, session: Session, user: User, project_id: str | None = None) -> list[ModelVersion]:
    """The registered models of the user's projects, newest first."""
    projects = _readable_projects(session, user)
    if project_id is not None:
        projects = [project for project in projects if project == project_id]
    query = select(ModelVersion).where(col(ModelVersion.project_id).in_(projects))
    return list(session.exec(query.order_by(col(ModelVersion.created_at).desc())).all())


def get_model_for_user(*, session: Session, user: User, model_id: str) -> ModelVersion | None:
    """One registered model, or None when it does not exist or belongs to another project."""
    row = session.get(ModelVersion, model_id)
    if row is None or row.project_id not in _readable_projects(session, user):
        return None
    return row
