"""Access requests: a project asks for collections; screening checks them; each station's steward decides.

Every move goes through :mod:`hub.governance`'s table (via ``crud.move_*``); a refused move is a
4xx that names the rule. Every move is an :class:`~hub.models.AccessEvent` and an audit entry.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from sqlalchemy import Engine
from sqlmodel import Session

from hub import audit, crud
from hub.api.deps import CurrentUser, EngineDep, ResearcherUser, SessionDep, SettingsDep, StewardUser
from hub.catalog.duo import screen
from hub.core.config import Settings
from hub.governance import SYSTEM, DecisionState, RequestState, TransitionRefused
from hub.models import (
    AccessEvent,
    AccessEventPublic,
    AccessEventsPublic,
    AccessGrant,
    AccessRequest,
    AccessRequestCheck,
    AccessRequestCreate,
    AccessRequestPublic,
    AccessRequestsPublic,
    AccessRequestUpdate,
    Collection,
    Decision,
    DecisionComment,
    Project,
    ScreeningFinding,
    ScreeningReport,
    StewardDigest,
    TransitionComment,
    User,
)
from protocol import Role, SignatureError, SignedGrant, key_id_for_public_key, utc_now, verify_grant

router = APIRouter(prefix="/access-requests", tags=["access_requests"])


def sweep(session: Session, engine: Engine, settings: Settings) -> None:
    """Expire what nobody moved in time (decisions) or what ran out (grants), before reading."""
    events, _cancelled = crud.sweep_access(session=session, decision_ttl_s=settings.decision_ttl_days * 86400)
    audit.record_access_events(engine, events)


# -- helpers --------------------------------------------------------------------------------


def _collections(session: Session, ids: list[str]) -> list[Collection]:
    found: list[Collection] = []
    for collection_id in dict.fromkeys(ids):
        collection = crud.get_collection(session=session, collection_id=collection_id)
        if collection is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                detail=f"no collection {collection_id!r} in the catalog (ids are '<station>/<collection>')",
            )
        found.append(collection)
    return found


def _member_project(session: Session, user: User, project_id: str) -> Project:
    project = crud.get_project(session=session, project_id=project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no project {project_id!r}")
    if not project.has_member(user.username):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="only the project's owner or members may request access for it"
        )
    return project


def _screen(project: Project, collections: list[Collection]) -> ScreeningReport:
    """Match the project's intended use against every collection's data-use conditions."""
    findings: list[ScreeningFinding] = []
    if project.end_date is not None and project.end_date < utc_now().date():
        findings.append(
            ScreeningFinding(
                collection="*",
                severity="problem",
                code="project-ended",
                message=f"the project ended on {project.end_date}: extend its end date first",
            )
        )
    project_level: set[str] = set()
    for collection in collections:
        metadata = collection.metadata_ or {}
        for finding in screen(
            project_use=project.data_use,
            project_diseases=project.diseases,
            ethics_reference=project.ethics_reference,
            conditions=metadata.get("data_use", []),
            collection_diseases=[code["code"] for code in metadata.get("disease_codes", [])],
        ):
            if finding.code in {"no-purpose", "ds-without-disease"}:  # about the project: say it once
                if finding.code in project_level:
                    continue
                project_level.add(finding.code)
                findings.append(ScreeningFinding(collection="*", **vars(finding)))
                continue
            findings.append(ScreeningFinding(collection=collection.id, **vars(finding)))
    return ScreeningReport(passed=not any(f.severity == "problem" for f in findings), findings=findings)


def _public(session: Session, request: AccessRequest) -> AccessRequestPublic:
    requester = crud.get_user_by_username(session=session, username=request.requester)
    key = requester.signing_public_key if requester is not None else None
    return AccessRequestPublic.from_rows(
        request,
        crud.decisions_for_request(session=session, request_id=request.id),
        requester_key_id=key_id_for_public_key(key) if key else None,
        project=crud.get_project(session=session, project_id=request.project_id),
    )


def _submit(session: Session, engine: Engine, request: AccessRequest, user: User) -> None:
    """Submit, screen, then forward to the stewards or return to the researcher (with why)."""
    project = crud.get_project(session=session, project_id=request.project_id)
    assert project is not None  # the foreign key
    decisions = crud.decisions_for_request(session=session, request_id=request.id)
    collections = [crud.get_collection(session=session, collection_id=d.collection_id) for d in decisions]
    events = [
        crud.move_request(session=session, request=request, action="submit", actor=user.username, role="researcher")
    ]
    events.append(crud.move_request(session=session, request=request, action="screen", actor=SYSTEM, role=SYSTEM))
    report = _screen(project, [c for c in collections if c is not None])
    if report.passed:
        events.append(
            crud.move_request(
                session=session,
                request=request,
                action="forward",
                actor=SYSTEM,
                role=SYSTEM,
                screening=report.model_dump(mode="json"),
            )
        )
        crud.restart_decision_clocks(session=session, request_id=request.id)
    else:
        problems = "; ".join(
            f"{finding.collection}: {finding.message}" for finding in report.findings if finding.severity == "problem"
        )
        events.append(
            crud.move_request(
                session=session,
                request=request,
                action="return",
                actor=SYSTEM,
                role=SYSTEM,
                comment=problems,
                screening=report.model_dump(mode="json"),
            )
        )
    audit.record_access_events(engine, events)


def _own_request(access_request_id: str, session: SessionDep, user: ResearcherUser) -> AccessRequest:
    request = crud.get_access_request(session=session, request_id=access_request_id)
    if request is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no access request {access_request_id!r}")
    if request.requester != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only the researcher who asked may do this")
    return request


OwnRequest = Annotated[AccessRequest, Depends(_own_request)]


def _visible_request(session: Session, user: User, access_request_id: str) -> AccessRequest:
    request = crud.get_access_request(session=session, request_id=access_request_id)
    if request is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no access request {access_request_id!r}")
    if user.role == Role.ADMIN:
        return request
    if user.role == Role.RESEARCHER:
        project = crud.get_project(session=session, project_id=request.project_id)
        if request.requester == user.username or (project is not None and project.has_member(user.username)):
            return request
    if user.role == Role.STEWARD and request.status in crud.STEWARD_VISIBLE:
        decisions = crud.decisions_for_request(session=session, request_id=request.id)
        if any(decision.station == user.station for decision in decisions):
            return request
    raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this access request is not yours to see")


# -- the request as a whole -----------------------------------------------------------------


@router.post("/check")
def check_access_request(body: AccessRequestCheck, session: SessionDep, user: ResearcherUser) -> ScreeningReport:
    """Preview the automatic checks (DUO match, conditions) before submitting: nothing is stored."""
    project = _member_project(session, user, body.project_id)
    return _screen(project, _collections(session, body.collections))


@router.post("", status_code=status.HTTP_201_CREATED)
def create_access_request(
    body: AccessRequestCreate, session: SessionDep, user: ResearcherUser, engine: EngineDep
) -> AccessRequestPublic:
    """Ask for collections across stations (one decision per collection); submitted and screened at once
    unless ``submit`` is false (a draft)."""
    project = _member_project(session, user, body.project_id)
    collections = _collections(session, body.collections)
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
    if body.submit:
        _submit(session, engine, request, user)
    return _public(session, request)


@router.get("")
def read_access_requests(
    session: SessionDep,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    state: Annotated[RequestState | None, Query(description="only requests in this state")] = None,
) -> AccessRequestsPublic:
    """List requests: a researcher's own and their projects', those at a steward's station, or all (admin)."""
    sweep(session, engine, settings)
    if user.role == Role.RESEARCHER:
        projects = [project.id for project in crud.list_projects(session=session, member=user.username)]
        rows = crud.list_access_requests(session=session, requester=user.username, projects=projects)
    elif user.role == Role.STEWARD:
        rows = crud.list_access_requests(session=session, station=user.station or "")
    else:
        rows = crud.list_access_requests(session=session)
    data = [_public(session, request) for request, _decisions in rows if state is None or request.status == state]
    return AccessRequestsPublic(data=data, count=len(data))


@router.get("/digest")
def read_steward_digest(
    session: SessionDep,
    steward: StewardUser,
    engine: EngineDep,
    settings: SettingsDep,
    since: Annotated[datetime | None, Query(description="count the station's events after this time")] = None,
) -> StewardDigest:
    """One summary of what waits for your station: counts by state and the decisions waiting, oldest first."""
    sweep(session, engine, settings)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return crud.steward_digest(
        session=session, station=steward.station or "", decision_ttl_s=settings.decision_ttl_days * 86400, since=since
    )


@router.get("/{access_request_id}")
def read_access_request(access_request_id: str, session: SessionDep, user: CurrentUser) -> AccessRequestPublic:
    """Read one request with its decisions and screening report."""
    return _public(session, _visible_request(session, user, access_request_id))


@router.get("/{access_request_id}/events")
def read_access_request_events(access_request_id: str, session: SessionDep, user: CurrentUser) -> AccessEventsPublic:
    """The request's history: every move of it, its decisions and its grants (actor, role, time, comment)."""
    request = _visible_request(session, user, access_request_id)
    events = [
        AccessEventPublic.model_validate(event, from_attributes=True)
        for event in crud.events_for_request(session=session, request_id=request.id)
    ]
    return AccessEventsPublic(data=events, count=len(events))


@router.patch("/{access_request_id}")
def update_access_request(
    request: OwnRequest, body: AccessRequestUpdate, session: SessionDep, user: ResearcherUser
) -> AccessRequestPublic:
    """Change a draft's or returned request's collections before (re)submitting it."""
    project = _member_project(session, user, request.project_id)
    crud.replace_request_collections(
        session=session, request=request, project=project, collections=_collections(session, body.collections)
    )
    return _public(session, request)


@router.post("/{access_request_id}/submit")
def submit_access_request(
    request: OwnRequest, session: SessionDep, user: ResearcherUser, engine: EngineDep
) -> AccessRequestPublic:
    """Submit a draft (or resubmit a returned request): screening runs again."""
    _submit(session, engine, request, user)
    return _public(session, request)


@router.post("/{access_request_id}/withdraw")
def withdraw_access_request(
    request: OwnRequest,
    session: SessionDep,
    user: ResearcherUser,
    engine: EngineDep,
    body: Annotated[TransitionComment | None, Body()] = None,
) -> AccessRequestPublic:
    """Withdraw the request until it closes: its open decisions end (grants already given stay)."""
    events = crud.withdraw_request(
        session=session, request=request, actor=user.username, comment=body.comment if body else None
    )
    audit.record_access_events(engine, events)
    return _public(session, request)


def _admin_move(action: str) -> Any:
    def move(
        access_request_id: str,
        session: SessionDep,
        user: CurrentUser,
        engine: EngineDep,
        body: Annotated[TransitionComment | None, Body()] = None,
    ) -> AccessRequestPublic:
        if user.role != Role.ADMIN:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"only a hub admin may {action} a request")
        request = crud.get_access_request(session=session, request_id=access_request_id)
        if request is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no access request {access_request_id!r}")
        event = crud.move_request(
            session=session,
            request=request,
            action=action,
            actor=user.username,
            role="admin",
            comment=body.comment if body else None,
        )
        if action == "forward":
            crud.restart_decision_clocks(session=session, request_id=request.id)
        audit.record_access_events(engine, [event])
        return _public(session, request)

    return move


router.post(
    "/{access_request_id}/reject", summary="Reject a request outright (hub admin)", name="reject_access_request"
)(_admin_move("reject"))
router.post(
    "/{access_request_id}/forward",
    summary="Forward a request in screening to the stewards despite its findings (hub admin)",
    name="forward_access_request",
)(_admin_move("forward"))
router.post(
    "/{access_request_id}/return",
    summary="Return a request in screening to the researcher (hub admin)",
    name="return_access_request",
)(_admin_move("return"))


# -- one station's decision -----------------------------------------------------------------


def _decision(session: Session, access_request_id: str, decision_id: str) -> tuple[AccessRequest, Decision]:
    request = crud.get_access_request(session=session, request_id=access_request_id)
    decision = crud.get_decision(session=session, request_id=access_request_id, decision_id=decision_id)
    if request is None or decision is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no decision {decision_id!r} in access request {access_request_id!r}"
        )
    return request, decision


def _get_station_decision(
    access_request_id: str, decision_id: str, session: SessionDep, steward: StewardUser
) -> tuple[AccessRequest, Decision]:
    request, decision = _decision(session, access_request_id, decision_id)
    if decision.station != steward.station:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"only a steward of station {decision.station!r} may decide this"
        )
    if request.status not in (RequestState.FORWARDED, RequestState.ACTIVE, RequestState.CLOSED):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"the request is {request.status.value}: stewards decide once screening has forwarded it",
        )
    return request, decision


def _get_researcher_decision(
    access_request_id: str, decision_id: str, session: SessionDep, user: ResearcherUser
) -> tuple[AccessRequest, Decision]:
    request, decision = _decision(session, access_request_id, decision_id)
    if request.requester != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only the researcher who asked may answer this")
    return request, decision


StationDecision = Annotated[tuple[AccessRequest, Decision], Depends(_get_station_decision)]
ResearcherDecision = Annotated[tuple[AccessRequest, Decision], Depends(_get_researcher_decision)]
CommentBody = Annotated[DecisionComment | None, Body()]
TransitionBody = Annotated[TransitionComment | None, Body()]


def _check_grant(
    session: Session, steward: User, request: AccessRequest, decision: Decision, project: Project, signed: SignedGrant
) -> None:
    """Refuse (400/403) a grant that is not the steward's own signature over exactly this decision."""
    if not steward.signing_public_key:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail="register your public keys first (PUT /users/me/keys) so stations can check your grants",
        )
    try:
        grant = verify_grant(signed, steward.signing_public_key)
    except SignatureError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"the grant is not signed by you: {exc}") from exc
    requester = crud.get_user_by_username(session=session, username=request.requester)
    expected: dict[str, Any] = {
        "project_id": decision.project_id,
        "station": decision.station,
        "collection": decision.collection,
        "researcher": request.requester,
        "steward": steward.username,
    }
    if requester is not None and requester.signing_public_key:
        expected["researcher_key_id"] = key_id_for_public_key(requester.signing_public_key)
    wrong = [f"{field} should be {value!r}" for field, value in expected.items() if getattr(grant, field) != value]
    if not set(grant.purpose) <= set(project.data_use):
        wrong.append(f"purpose {list(grant.purpose)} goes beyond the project's data use {project.data_use}")
    end = _project_end(project)
    if end is not None and grant.not_after > end:
        wrong.append(f"not_after {grant.not_after.isoformat()} is after the project's end date {project.end_date}")
    if wrong:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"the grant does not match this decision: {'; '.join(wrong)}"
        )


def _project_end(project: Project) -> datetime | None:
    if project.end_date is None:
        return None
    return datetime.combine(project.end_date + timedelta(days=1), time(), tzinfo=UTC)


def _grant_row(
    *,
    request: AccessRequest,
    decision: Decision,
    project: Project,
    steward: str,
    settings: Settings,
    signed: dict[str, Any] | None,
    conditions: str | None,
) -> AccessGrant:
    now = utc_now()
    if signed is not None:
        grant = SignedGrant.model_validate(signed).grant
        not_before, not_after = grant.not_before, grant.not_after
        purpose, action = list(grant.purpose) or list(project.data_use), grant.allowed_action
    else:
        not_before, not_after = now, now + timedelta(days=settings.grant_default_days)
        purpose, action = list(project.data_use), AccessGrant.model_fields["allowed_action"].default
        end = _project_end(project)
        if end is not None:
            not_after = min(not_after, end)
    return AccessGrant(
        decision_id=decision.id,
        access_request_id=request.id,
        project_id=project.id,
        collection_id=decision.collection_id,
        station=decision.station,
        collection=decision.collection,
        researcher=request.requester,
        steward=steward,
        purpose=purpose,
        allowed_action=action,
        conditions=conditions,
        not_before=not_before,
        not_after=not_after,
        signed_grant=signed,
    )


def _after_decision(
    session: Session, engine: Engine, request: AccessRequest, events: list[AccessEvent]
) -> AccessRequestPublic:
    events.extend(crud.settle_request(session=session, request=request))
    audit.record_access_events(engine, events)
    return _public(session, request)


@router.post("/{access_request_id}/decisions/{decision_id}/approve")
def approve_decision(
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    steward: StewardUser,
    target: StationDecision,
    body: CommentBody = None,
) -> AccessRequestPublic:
    """Approve one collection without conditions: the project's grant on it (signed on your machine)."""
    request, decision = target
    project = crud.get_project(session=session, project_id=decision.project_id)
    assert project is not None
    signed = body.signed_grant if body else None
    if signed is not None:
        _check_grant(session, steward, request, decision, project, signed)
    dumped = signed.model_dump(mode="json") if signed is not None else None
    grant = _grant_row(
        request=request,
        decision=decision,
        project=project,
        steward=steward.username,
        settings=settings,
        signed=dumped,
        conditions=None,
    )
    event = crud.move_decision(
        session=session,
        decision=decision,
        action="approve",
        actor=steward.username,
        role="steward",
        comment=body.comment if body else None,
        values={"signed_grant": dumped},
        grant=grant,
    )
    return _after_decision(session, engine, request, [event])


@router.post("/{access_request_id}/decisions/{decision_id}/offer-conditions")
def offer_conditions(
    session: SessionDep, engine: EngineDep, steward: StewardUser, target: StationDecision, body: CommentBody = None
) -> AccessRequestPublic:
    """Offer a grant with conditions (the comment); the researcher accepts or declines them."""
    request, decision = target
    project = crud.get_project(session=session, project_id=decision.project_id)
    assert project is not None
    comment = body.comment if body else None
    signed = body.signed_grant if body else None
    if signed is not None:
        _check_grant(session, steward, request, decision, project, signed)
    event = crud.move_decision(
        session=session,
        decision=decision,
        action="offer_conditions",
        actor=steward.username,
        role="steward",
        comment=comment,
        values={
            "conditions": comment,
            "decided_by": steward.username,
            "signed_grant": signed.model_dump(mode="json") if signed is not None else None,
        },
    )
    return _after_decision(session, engine, request, [event])


def _steward_move(action: str, doc: str) -> Any:
    def move(
        session: SessionDep, engine: EngineDep, steward: StewardUser, target: StationDecision, body: CommentBody = None
    ) -> AccessRequestPublic:
        request, decision = target
        comment = body.comment if body else None
        event = crud.move_decision(
            session=session,
            decision=decision,
            action=action,
            actor=steward.username,
            role="steward",
            comment=comment,
        )
        return _after_decision(session, engine, request, [event])

    move.__doc__ = doc
    return move


router.post("/{access_request_id}/decisions/{decision_id}/decline", name="decline_decision")(
    _steward_move("decline", "Decline access to one collection (say why).")
)
router.post("/{access_request_id}/decisions/{decision_id}/request-information", name="request_information")(
    _steward_move("request_information", "Ask the researcher a question (the comment) before deciding.")
)


def _researcher_move(action: str, doc: str) -> Any:
    def move(
        session: SessionDep,
        engine: EngineDep,
        settings: SettingsDep,
        user: ResearcherUser,
        target: ResearcherDecision,
        body: TransitionBody = None,
    ) -> AccessRequestPublic:
        request, decision = target
        if request.status not in (RequestState.FORWARDED, RequestState.ACTIVE):
            raise TransitionRefused(409, f"the request is {request.status.value}: there is nothing to answer")
        comment = body.comment if body else None
        grant = None
        if action == "accept" and decision.status == DecisionState.CONDITIONS_OFFERED and decision.decided_by:
            project = crud.get_project(session=session, project_id=decision.project_id)
            assert project is not None  # the foreign key
            grant = _grant_row(
                request=request,
                decision=decision,
                project=project,
                steward=decision.decided_by,
                settings=settings,
                signed=decision.signed_grant,
                conditions=decision.conditions,
            )
        event = crud.move_decision(
            session=session,
            decision=decision,
            action=action,
            actor=user.username,
            role="researcher",
            comment=comment,
            grant=grant,
        )
        return _after_decision(session, engine, request, [event])

    move.__doc__ = doc
    return move


router.post("/{access_request_id}/decisions/{decision_id}/answer", name="answer_decision")(
    _researcher_move("answer", "Answer the steward's question (the comment): the decision is pending again.")
)
router.post("/{access_request_id}/decisions/{decision_id}/accept", name="accept_conditions")(
    _researcher_move("accept", "Accept the steward's conditions: the decision is approved and the grant starts.")
)
router.post("/{access_request_id}/decisions/{decision_id}/decline-offer", name="decline_conditions")(
    _researcher_move("decline_offer", "Decline the steward's conditions: no grant.")
)
