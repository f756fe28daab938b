"""Grants: what approved decisions give, and the steward's pause (suspend ↔ resume) and end (revoke).

Suspending, revoking or the end of a grant's period cancels the project's queued and running jobs
on the collection: a running job's station learns it at its next heartbeat (409) and its result
upload is refused.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status

from hub import audit, crud
from hub.api.deps import CurrentUser, EngineDep, SessionDep, SettingsDep, StewardUser
from hub.governance import GrantState
from hub.models import AccessGrant, AccessGrantPublic, AccessGrantsPublic, TransitionComment, User
from protocol import Role

router = APIRouter(prefix="/grants", tags=["grants"])


def _visible(session: SessionDep, user: User, grant: AccessGrant) -> bool:
    if user.role == Role.ADMIN:
        return True
    if user.role == Role.STEWARD:
        return grant.station == user.station
    project = crud.get_project(session=session, project_id=grant.project_id)
    return project is not None and project.has_member(user.username)


@router.get("")
def read_grants(
    session: SessionDep,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    state: Annotated[GrantState | None, Query(description="only grants in this state")] = None,
) -> AccessGrantsPublic:
    """List grants: a researcher's projects', a steward's station's, or all (admin)."""
    events, _cancelled = crud.sweep_access(session=session, decision_ttl_s=settings.decision_ttl_days * 86400)
    audit.record_access_events(engine, events)
    if user.role == Role.STEWARD:
        rows = crud.list_grants(session=session, station=user.station or "")
    elif user.role == Role.RESEARCHER:
        projects = [project.id for project in crud.list_projects(session=session, member=user.username)]
        rows = crud.list_grants(session=session, projects=projects)
    else:
        rows = crud.list_grants(session=session)
    data = [AccessGrantPublic.from_row(row) for row in rows if state is None or row.status == state]
    return AccessGrantsPublic(data=data, count=len(data))


@router.get("/{grant_id}")
def read_grant(grant_id: str, session: SessionDep, user: CurrentUser) -> AccessGrantPublic:
    """Read one grant."""
    grant = crud.get_grant(session=session, grant_id=grant_id)
    if grant is None or not _visible(session, user, grant):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no grant {grant_id!r} you may see")
    return AccessGrantPublic.from_row(grant)


def _steward_move(action: str, doc: str) -> Any:
    def move(
        grant_id: str,
        session: SessionDep,
        steward: StewardUser,
        engine: EngineDep,
        body: Annotated[TransitionComment | None, Body()] = None,
    ) -> AccessGrantPublic:
        grant = crud.get_grant(session=session, grant_id=grant_id)
        if grant is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no grant {grant_id!r}")
        if grant.station != steward.station:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"only a steward of station {grant.station!r} may {action} this grant"
            )
        event, cancelled = crud.move_grant(
            session=session,
            grant=grant,
            action=action,
            actor=steward.username,
            role="steward",
            comment=body.comment if body else None,
        )
        audit.record_access_events(engine, [event])
        if cancelled:
            audit.record_event(
                engine,
                actor=steward.username,
                role=steward.role.value,
                action="job.cancelled",
                subject=grant.id,
                details={"jobs": ",".join(cancelled), "reason": f"grant {action}"},
            )
        return AccessGrantPublic.from_row(grant)

    move.__doc__ = doc
    return move


router.post("/{grant_id}/suspend", name="suspend_grant")(
    _steward_move("suspend", "Pause a grant (say why): the project's jobs on the collection stop, none start.")
)
router.post("/{grant_id}/resume", name="resume_grant")(
    _steward_move("resume", "End a pause: the project may submit trains on the collection again.")
)
router.post("/{grant_id}/revoke", name="revoke_grant")(
    _steward_move("revoke", "End a grant for good (say why): the project's jobs on the collection stop.")
)
