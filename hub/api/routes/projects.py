"""Projects: the unit of a researcher's work that holds grants and submits trains."""

from __future__ import annotations

from fastapi import APIRouter, status

from hub import crud
from hub.api.deps import ResearcherUser, SessionDep
from hub.models import ProjectCreate, ProjectPublic, ProjectsPublic

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, session: SessionDep, user: ResearcherUser) -> ProjectPublic:
    """Create a project owned by the calling researcher."""
    project = crud.create_project(session=session, project_create=body, owner=user)
    return ProjectPublic.model_validate(project, from_attributes=True)


@router.get("")
def read_projects(session: SessionDep, user: ResearcherUser) -> ProjectsPublic:
    """List the calling researcher's projects."""
    projects = [
        ProjectPublic.model_validate(project, from_attributes=True)
        for project in crud.list_projects(session=session, owner=user.username)
    ]
    return ProjectsPublic(data=projects, count=len(projects))
