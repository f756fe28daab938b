"""Projects: the unit of a researcher's work that holds grants and submits trains."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlmodel import Session

from hub import crud
from hub.api.deps import ResearcherUser, SessionDep
from hub.models import Project, ProjectCreate, ProjectPublic, ProjectsPublic, ProjectUpdate
from protocol import Role

router = APIRouter(prefix="/projects", tags=["projects"])


def _check_members(session: Session, members: list[str] | None) -> None:
    for username in members or []:
        user = crud.get_user_by_username(session=session, username=username)
        if user is None or user.role != Role.RESEARCHER:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, detail=f"member {username!r} is not a researcher of this hub"
            )


def _member_project(session: Session, user_name: str, project_id: str) -> Project:
    project = crud.get_project(session=session, project_id=project_id)
    if project is None or not project.has_member(user_name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no project {project_id!r} of yours")
    return project


@router.post("", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, session: SessionDep, user: ResearcherUser) -> ProjectPublic:
    """Create a project owned by the calling researcher: purpose, members, intended use (DUO), ethics, end."""
    _check_members(session, body.members)
    project = crud.create_project(session=session, project_create=body, owner=user)
    return ProjectPublic.model_validate(project, from_attributes=True)


@router.get("")
def read_projects(session: SessionDep, user: ResearcherUser) -> ProjectsPublic:
    """List the projects the calling researcher owns or works on."""
    projects = [
        ProjectPublic.model_validate(project, from_attributes=True)
        for project in crud.list_projects(session=session, member=user.username)
    ]
    return ProjectsPublic(data=projects, count=len(projects))


@router.get("/{project_id}")
def read_project(project_id: str, session: SessionDep, user: ResearcherUser) -> ProjectPublic:
    """Read one of the caller's projects, with its members' encryption keys (to name them as co-recipients)."""
    project = _member_project(session, user.username, project_id)
    public = ProjectPublic.model_validate(project, from_attributes=True)
    for name in [project.owner, *project.members]:
        member = crud.get_user_by_username(session=session, username=name)
        public.member_keys[name] = member.encryption_public_key if member is not None else None
    return public


@router.patch("/{project_id}")
def update_project(project_id: str, body: ProjectUpdate, session: SessionDep, user: ResearcherUser) -> ProjectPublic:
    """Change a project (its owner only): e.g. add a DUO code or the ethics reference a screening asked for.

    Grants already given keep the purpose and period they were signed with.
    """
    project = _member_project(session, user.username, project_id)
    if project.owner != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only the project's owner may change it")
    _check_members(session, body.members)
    return ProjectPublic.model_validate(
        crud.update_project(session=session, project=project, changes=body), from_attributes=True
    )
