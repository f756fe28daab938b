"""Access requests: a project asks for collections; each station's steward decides."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, status

from hub import audit, crud
from hub.api.deps import CurrentUser, EngineDep, ResearcherUser, SessionDep, StewardUser
from hub.models import (
    AccessRequest,
    AccessRequestCreate,
    AccessRequestPublic,
    AccessRequestsPublic,
    Collection,
    Decision,
    DecisionComment,
    DecisionStatus,
)
from protocol import Role, SignatureError, SignedGrant, key_id_for_public_key, verify_grant

router = APIRouter(prefix="/access-requests", tags=["access_requests"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_access_request(
    body: AccessRequestCreate, session: SessionDep, user: ResearcherUser, engine: EngineDep
) -> AccessRequestPublic:
    """Ask for access to collections on behalf of one of the caller's projects."""
    project = crud.get_project(session=session, project_id=body.project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no project {body.project_id!r}")
    if project.owner != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only the project's owner may request access for it")
    collections: list[Collection] = []
    for collection_id in dict.fromkeys(body.collections):
        collection = crud.get_collection(session=session, collection_id=collection_id)
        if collection is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                detail=f"no collection {collection_id!r} in the catalog (ids are '<station>/<collection>')",
            )
        collections.append(collection)
    request, decisions = crud.create_access_request(
        session=session, project=project, requester=user, collections=collections
    )
    audit.record_event(
        engine,
        actor=user.username,
        role=user.role.value,
        action="access_request.created",
        subject=request.id,
        details={"project": project.id, "collections": [decision.collection_id for decision in decisions]},
    )
    return AccessRequestPublic.from_rows(request, decisions)


@router.get("")
def read_access_requests(session: SessionDep, user: CurrentUser) -> AccessRequestsPublic:
    """List requests: a researcher's own, those a steward decides on, or all for an admin."""
    if user.role == Role.RESEARCHER:
        rows = crud.list_access_requests(session=session, requester=user.username)
    elif user.role == Role.STEWARD:
        rows = crud.list_access_requests(session=session, station=user.station or "")
    else:
        rows = crud.list_access_requests(session=session)
    key_ids: dict[str, str | None] = {}
    for request, _decisions in rows:
        if request.requester not in key_ids:
            requester = crud.get_user_by_username(session=session, username=request.requester)
            key = requester.signing_public_key if requester is not None else None
            key_ids[request.requester] = key_id_for_public_key(key) if key else None
    data = [
        AccessRequestPublic.from_rows(request, decisions, requester_key_id=key_ids[request.requester])
        for request, decisions in rows
    ]
    return AccessRequestsPublic(data=data, count=len(data))


def _get_station_decision(
    access_request_id: str, decision_id: str, session: SessionDep, steward: StewardUser
) -> tuple[AccessRequest, Decision]:
    request = crud.get_access_request(session=session, request_id=access_request_id)
    decision = crud.get_decision(session=session, request_id=access_request_id, decision_id=decision_id)
    if request is None or decision is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no decision {decision_id!r} in access request {access_request_id!r}"
        )
    if decision.station != steward.station:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"only a steward of station {decision.station!r} may decide this"
        )
    return request, decision


StationDecision = Annotated[tuple[AccessRequest, Decision], Depends(_get_station_decision)]
CommentBody = Annotated[DecisionComment | None, Body()]


def _check_grant(
    session: SessionDep,
    steward: StewardUser,
    request: AccessRequest,
    decision: Decision,
    decision_status: DecisionStatus,
    signed_grant: SignedGrant,
) -> None:
    """Refuse (400/403) a grant that is not the steward's own signature over exactly this decision."""
    if decision_status != DecisionStatus.APPROVED:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="only an approval carries a signed grant")
    if not steward.signing_public_key:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail="register your public keys first (PUT /users/me/keys) so stations can check your grants",
        )
    try:
        grant = verify_grant(signed_grant, steward.signing_public_key)
    except SignatureError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"the grant is not signed by you: {exc}") from exc
    requester = crud.get_user_by_username(session=session, username=request.requester)
    expected = {
        "project_id": decision.project_id,
        "station": decision.station,
        "collection": decision.collection,
        "researcher": request.requester,
        "steward": steward.username,
    }
    if requester is not None and requester.signing_public_key:
        expected["researcher_key_id"] = key_id_for_public_key(requester.signing_public_key)
    wrong = [f"{field} should be {value!r}" for field, value in expected.items() if getattr(grant, field) != value]
    if wrong:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"the grant does not match this decision: {'; '.join(wrong)}"
        )


def _decide(
    session: SessionDep,
    engine: EngineDep,
    steward: StewardUser,
    target: StationDecision,
    decision_status: DecisionStatus,
    comment: str | None,
    signed_grant: SignedGrant | None = None,
) -> AccessRequestPublic:
    request, decision = target
    if signed_grant is not None:
        _check_grant(session, steward, request, decision, decision_status, signed_grant)
    if not crud.decide_decision(
        session=session,
        decision=decision,
        status=decision_status,
        steward=steward,
        comment=comment,
        signed_grant=signed_grant,
    ):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"this decision was already made: {decision.status.value} by {decision.decided_by}",
        )
    audit.record_event(
        engine,
        actor=steward.username,
        role=steward.role.value,
        action=f"decision.{decision_status.value}",
        subject=decision.id,
        details={"access_request": request.id, "collection": decision.collection_id, "comment": bool(comment)},
    )
    return AccessRequestPublic.from_rows(request, crud.decisions_for_request(session=session, request_id=request.id))


@router.post("/{access_request_id}/decisions/{decision_id}/approve")
def approve_decision(
    session: SessionDep, engine: EngineDep, steward: StewardUser, target: StationDecision, body: CommentBody = None
) -> AccessRequestPublic:
    """Approve access to one collection: this is the project's grant on it."""
    return _decide(
        session,
        engine,
        steward,
        target,
        DecisionStatus.APPROVED,
        body.comment if body else None,
        body.signed_grant if body else None,
    )


@router.post("/{access_request_id}/decisions/{decision_id}/reject")
def reject_decision(
    session: SessionDep, engine: EngineDep, steward: StewardUser, target: StationDecision, body: CommentBody = None
) -> AccessRequestPublic:
    """Reject access to one collection."""
    return _decide(session, engine, steward, target, DecisionStatus.REJECTED, body.comment if body else None)
