"""Every database read and write of the hub: keyword-only functions over a session."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from hub.core.security import generate_token, hash_password, hash_token, verify_password
from hub.governance import (
    OPEN_DECISIONS,
    SYSTEM,
    DecisionState,
    GrantState,
    RequestState,
    Transition,
    TransitionRefused,
    check,
)
from hub.models import (
    AccessEvent,
    AccessGrant,
    AccessRequest,
    Collection,
    Decision,
    DigestItem,
    EnrolmentToken,
    Job,
    OidcIdentity,
    Project,
    ProjectCreate,
    ProjectUpdate,
    Result,
    Station,
    StewardDigest,
    Token,
    Train,
    User,
    UserCreate,
    UserKeys,
)
from protocol import (
    CollectionPublication,
    JobStatus,
    ResultEnvelope,
    Role,
    SignedGrant,
    SignedManifest,
    StationEnrolment,
    canonical_json,
    content_address,
    utc_now,
)

__all__ = [
    "STEWARD_VISIBLE",
    "authenticate_user",
    "claim_next_job",
    "create_access_request",
    "create_api_token",
    "create_enrolment_token",
    "create_project",
    "create_station_token",
    "create_train",
    "create_user",
    "create_user_token",
    "decisions_for_request",
    "enrol_station",
    "events_for_request",
    "expire_job_leases",
    "extend_job_lease",
    "get_access_request",
    "get_api_token",
    "get_collection",
    "get_decision",
    "get_grant",
    "get_job",
    "get_project",
    "get_result",
    "get_station",
    "get_station_for_token",
    "get_train",
    "get_train_by_manifest_hash",
    "get_user_by_username",
    "get_user_for_token",
    "get_user_token",
    "grant_for_decision",
    "has_grant",
    "jobs_for_train",
    "list_access_requests",
    "list_api_tokens",
    "list_collections",
    "list_grants",
    "list_projects",
    "list_stations",
    "list_trains",
    "list_users",
    "manifest_hash_for",
    "move_decision",
    "move_grant",
    "move_request",
    "provision_oidc_user",
    "record_result",
    "redeem_enrolment_token",
    "replace_request_collections",
    "restart_decision_clocks",
    "revoke_api_token",
    "settle_request",
    "signed_grants_for",
    "steward_digest",
    "sweep_access",
    "touch_station",
    "update_project",
    "update_user_keys",
    "upsert_collection",
    "withdraw_request",
]


# -- users and tokens -----------------------------------------------------------------------


def get_user_by_username(*, session: Session, username: str) -> User | None:
    """Return the user called ``username``."""
    return session.exec(select(User).where(User.username == username)).first()


def list_users(*, session: Session) -> Sequence[User]:
    """Return every user, oldest first."""
    return session.exec(select(User).order_by(col(User.created_at))).all()


def create_user(*, session: Session, user_create: UserCreate) -> User:
    """Create a user with a hashed password."""
    user = User(
        username=user_create.username,
        role=user_create.role,
        station=user_create.station,
        password_hash=hash_password(user_create.password),
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def authenticate_user(*, session: Session, username: str, password: str) -> User | None:
    """Return the user when the password matches (same work whether or not the user exists)."""
    user = get_user_by_username(session=session, username=username)
    if not verify_password(password, user.password_hash if user else None):
        return None
    return user


_UNUSABLE_PASSWORD = "!"  # noqa: S105  (no scrypt hash: password log-in never matches)
_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


def _username_for_identity(*, session: Session, issuer: str, subject: str, hint: str | None) -> str:
    suffix = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:10]
    base = "".join(char for char in (hint or "") if char in _USERNAME_CHARS).lstrip("._@-")[:64]
    if base and get_user_by_username(session=session, username=base) is None:
        return base
    return f"{base[:53]}-{suffix}" if base else f"oidc-{suffix}"


def provision_oidc_user(
    *,
    session: Session,
    issuer: str,
    subject: str,
    username_hint: str | None,
    role: Role,
    station: str | None,
    update_role: bool,
) -> User:
    """Return the user of an OpenID account (issuer, ``sub``), creating one on first log-in.

    Accounts are matched only by issuer and subject, never by username or e-mail, so an
    identity provider cannot take over a local account. ``update_role`` re-applies the role
    the provider's claims map to (when a role map is configured) on every log-in.
    """
    identity = session.get(OidcIdentity, (issuer, subject))
    if identity is not None:
        user = session.get(User, identity.user_id)
        if user is None:  # pragma: no cover - the foreign key cascades
            raise LookupError(f"the user of OpenID account {subject!r} is gone")
        identity.last_login_at = utc_now()
        if update_role:
            user.role, user.station = role, station
        session.add_all([identity, user])
        session.commit()
        session.refresh(user)
        return user
    username = _username_for_identity(session=session, issuer=issuer, subject=subject, hint=username_hint)
    user = User(username=username, role=role, station=station, password_hash=_UNUSABLE_PASSWORD)
    session.add(user)
    session.flush()
    session.add(OidcIdentity(issuer=issuer, subject=subject, user_id=user.id))
    session.commit()
    session.refresh(user)
    return user


def update_user_keys(*, session: Session, user: User, keys: UserKeys) -> User:
    """Register a user's public keys."""
    user.signing_public_key = keys.signing_public_key
    user.encryption_public_key = keys.encryption_public_key
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def _create_token(*, session: Session, user_id: str | None, station_id: str | None, ttl_s: int | None) -> str:
    token = generate_token()
    expires_at = utc_now() + timedelta(seconds=ttl_s) if ttl_s is not None else None
    session.add(Token(token_hash=hash_token(token), user_id=user_id, station_id=station_id, expires_at=expires_at))
    session.commit()
    return token


def create_user_token(*, session: Session, user: User, ttl_s: int) -> str:
    """Issue a bearer token for ``user``; only its hash is stored."""
    return _create_token(session=session, user_id=user.id, station_id=None, ttl_s=ttl_s)


def create_station_token(*, session: Session, station: Station, ttl_s: int | None) -> str:
    """Issue an API token for ``station``; only its hash is stored."""
    return _create_token(session=session, user_id=None, station_id=station.id, ttl_s=ttl_s)


def _live_token(*, session: Session, token: str) -> Token | None:
    statement = select(Token).where(
        Token.token_hash == hash_token(token),
        or_(col(Token.expires_at).is_(None), col(Token.expires_at) > utc_now()),
        col(Token.revoked_at).is_(None),
    )
    return session.exec(statement).first()


def get_user_for_token(*, session: Session, token: str) -> User | None:
    """Return the user a live bearer token belongs to."""
    row = _live_token(session=session, token=token)
    return session.get(User, row.user_id) if row is not None and row.user_id else None


def get_station_for_token(*, session: Session, token: str) -> Station | None:
    """Return the station a live API token belongs to."""
    row = _live_token(session=session, token=token)
    return session.get(Station, row.station_id) if row is not None and row.station_id else None


def get_user_token(*, session: Session, token: str) -> tuple[User, Token] | None:
    """Return the user a live bearer token belongs to, with the token's row (for its scopes)."""
    row = _live_token(session=session, token=token)
    if row is None or not row.user_id:
        return None
    user = session.get(User, row.user_id)
    return (user, row) if user is not None else None


def create_api_token(
    *, session: Session, user: User, name: str, scopes: Sequence[str], ttl_s: int
) -> tuple[str, Token]:
    """Issue a named, scoped, expiring API token for ``user``; return the secret (shown once) and its row."""
    secret = generate_token()
    row = Token(
        token_hash=hash_token(secret),
        user_id=user.id,
        name=name,
        scopes=sorted(set(scopes)),
        expires_at=utc_now() + timedelta(seconds=ttl_s),
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return secret, row


def list_api_tokens(*, session: Session, user: User) -> Sequence[Token]:
    """The named API tokens of ``user`` (live, expired and revoked), newest first."""
    statement = (
        select(Token)
        .where(Token.user_id == user.id, col(Token.name).is_not(None))
        .order_by(col(Token.created_at).desc())
    )
    return session.exec(statement).all()


def get_api_token(*, session: Session, token_id: str) -> Token | None:
    """Look up a named API token by its public id."""
    return session.exec(select(Token).where(Token.id == token_id, col(Token.name).is_not(None))).first()


def revoke_api_token(*, session: Session, token: Token) -> Token:
    """Revoke an API token now (idempotent: the first revocation time stays)."""
    if token.revoked_at is None:
        token.revoked_at = utc_now()
        session.add(token)
        session.commit()
        session.refresh(token)
    return token


# -- stations -------------------------------------------------------------------------------


def create_enrolment_token(
    *, session: Session, station: str, created_by: User, ttl_s: int
) -> tuple[str, EnrolmentToken]:
    """Issue a one-time enrolment token for ``station``; return it in clear with its row."""
    token = generate_token()
    row = EnrolmentToken(
        token_hash=hash_token(token),
        station=station,
        created_by=created_by.id,
        expires_at=utc_now() + timedelta(seconds=ttl_s),
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return token, row


def redeem_enrolment_token(*, session: Session, token: str, station: str) -> bool:
    """Mark an unused, unexpired token for ``station`` as used; tell whether that happened."""
    now = utc_now()
    statement = (
        update(EnrolmentToken)
        .where(
            col(EnrolmentToken.token_hash) == hash_token(token),
            col(EnrolmentToken.station) == station,
            col(EnrolmentToken.used_at).is_(None),
            col(EnrolmentToken.expires_at) > now,
        )
        .values(used_at=now)
    )
    redeemed = session.exec(statement).rowcount == 1
    session.commit()
    return redeemed


def enrol_station(*, session: Session, enrolment: StationEnrolment) -> Station:
    """Create the station, or give an existing one new keys and revoke its old API tokens."""
    station = session.get(Station, enrolment.name)
    if station is None:
        station = Station(id=enrolment.name, signing_public_key="", encryption_public_key="")
    else:
        for old in session.exec(select(Token).where(Token.station_id == station.id)).all():
            session.delete(old)
        station.enrolled_at = utc_now()
    station.signing_public_key = enrolment.signing_public_key
    station.encryption_public_key = enrolment.encryption_public_key
    session.add(station)
    session.commit()
    session.refresh(station)
    return station


def get_station(*, session: Session, station_id: str) -> Station | None:
    """Return the station with this slug."""
    return session.get(Station, station_id)


def list_stations(*, session: Session) -> Sequence[Station]:
    """Return every station, by slug."""
    return session.exec(select(Station).order_by(col(Station.id))).all()


def touch_station(*, session: Session, station_id: str) -> None:
    """Record that the station was seen now."""
    session.exec(update(Station).where(col(Station.id) == station_id).values(last_seen_at=utc_now()))
    session.commit()


# -- catalog --------------------------------------------------------------------------------


def upsert_collection(*, session: Session, publication: CollectionPublication, graph_iri: str) -> Collection:
    """Create or replace the SQL row of a published collection."""
    collection_id = f"{publication.station}/{publication.collection}"
    row = session.get(Collection, collection_id)
    if row is None:
        row = Collection(
            id=collection_id,
            station_id=publication.station,
            collection=publication.collection,
            title=publication.title,
            summary={},
            graph_iri=graph_iri,
            published_at=publication.published_at,
        )
    row.title = publication.title
    row.description = publication.description
    row.summary = publication.summary.model_dump(mode="json")
    row.metadata_ = publication.metadata.model_dump(mode="json")
    row.graph_iri = graph_iri
    row.published_at = publication.published_at
    row.updated_at = utc_now()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def get_collection(*, session: Session, collection_id: str) -> Collection | None:
    """Return the collection ``"<station>/<collection>"``."""
    return session.get(Collection, collection_id)


def list_collections(*, session: Session) -> Sequence[Collection]:
    """Return every published collection, by id."""
    return session.exec(select(Collection).order_by(col(Collection.id))).all()


# -- governance -----------------------------------------------------------------------------


def create_project(*, session: Session, project_create: ProjectCreate, owner: User) -> Project:
    """Create a project owned by ``owner`` (members, intended use, ethics and end date as given)."""
    project = Project(
        title=project_create.title,
        purpose=project_create.purpose,
        owner=owner.username,
        members=sorted(set(project_create.members) - {owner.username}),
        data_use=list(dict.fromkeys(project_create.data_use)),
        diseases=list(dict.fromkeys(code.upper() for code in project_create.diseases)),
        ethics_reference=project_create.ethics_reference,
        end_date=project_create.end_date,
    )
    session.add(project)
    session.commit()
    session.refresh(project)
    return project


def update_project(*, session: Session, project: Project, changes: ProjectUpdate) -> Project:
    """Apply the fields ``changes`` sets to ``project``."""
    fields = changes.model_dump(exclude_unset=True)
    if "members" in fields and fields["members"] is not None:
        fields["members"] = sorted(set(fields["members"]) - {project.owner})
    if "diseases" in fields and fields["diseases"] is not None:
        fields["diseases"] = list(dict.fromkeys(code.upper() for code in fields["diseases"]))
    for name, value in fields.items():
        if value is not None or name in {"ethics_reference", "end_date"}:
            setattr(project, name, value)
    session.add(project)
    session.commit()
    session.refresh(project)
    return project


def get_project(*, session: Session, project_id: str) -> Project | None:
    """Return the project with this id."""
    return session.get(Project, project_id)


def list_projects(*, session: Session, member: str) -> list[Project]:
    """Return the projects ``member`` owns or works on, oldest first."""
    projects = session.exec(select(Project).order_by(col(Project.created_at))).all()
    return [project for project in projects if project.has_member(member)]


def _event(
    session: Session,
    *,
    request_id: str,
    row: Transition,
    subject: str,
    from_state: str | None,
    actor: str,
    role: str,
    station: str | None = None,
    comment: str | None = None,
    at: datetime | None = None,
) -> AccessEvent:
    event = AccessEvent(
        access_request_id=request_id,
        kind=row.kind,
        subject=subject,
        action=row.action,
        from_state=from_state,
        to_state=row.target,
        actor=actor,
        role=role,
        station=station,
        comment=comment,
        at=at or utc_now(),
    )
    session.add(event)
    return event


def _decision_rows(request: AccessRequest, project: Project, collections: Sequence[Collection]) -> list[Decision]:
    return [
        Decision(
            access_request_id=request.id,
            project_id=project.id,
            collection_id=collection.id,
            station=collection.station_id,
            collection=collection.collection,
        )
        for collection in collections
    ]


def create_access_request(
    *, session: Session, project: Project, requester: User, collections: Sequence[Collection]
) -> tuple[AccessRequest, list[Decision]]:
    """Create a draft request with one pending decision per collection."""
    request = AccessRequest(project_id=project.id, requester=requester.username)
    session.add(request)
    session.flush()  # the request row exists before the decisions that point at it
    session.add_all(_decision_rows(request, project, collections))
    session.add(
        AccessEvent(
            access_request_id=request.id,
            kind="request",
            subject=request.id,
            action="create",
            to_state=RequestState.DRAFT,
            actor=requester.username,
            role="researcher",
        )
    )
    session.commit()
    session.refresh(request)
    return request, decisions_for_request(session=session, request_id=request.id)


def replace_request_collections(
    *, session: Session, request: AccessRequest, project: Project, collections: Sequence[Collection]
) -> list[Decision]:
    """Give a draft or returned request a new list of collections (its decisions start again)."""
    if request.status not in (RequestState.DRAFT, RequestState.RETURNED):
        raise TransitionRefused(409, f"only a draft or returned request can change; this one is {request.status}")
    for decision in decisions_for_request(session=session, request_id=request.id):
        session.delete(decision)
    session.flush()
    session.add_all(_decision_rows(request, project, collections))
    request.updated_at = utc_now()
    session.add(request)
    session.commit()
    return decisions_for_request(session=session, request_id=request.id)


def decisions_for_request(*, session: Session, request_id: str) -> list[Decision]:
    """Return the decisions of one access request, by collection id."""
    statement = select(Decision).where(Decision.access_request_id == request_id).order_by(col(Decision.collection_id))
    return list(session.exec(statement).all())


def get_access_request(*, session: Session, request_id: str) -> AccessRequest | None:
    """Return the access request with this id."""
    return session.get(AccessRequest, request_id)


def get_decision(*, session: Session, request_id: str, decision_id: str) -> Decision | None:
    """Return a decision of this access request."""
    decision = session.get(Decision, decision_id)
    return decision if decision is not None and decision.access_request_id == request_id else None


STEWARD_VISIBLE = (RequestState.FORWARDED, RequestState.ACTIVE, RequestState.CLOSED, RequestState.WITHDRAWN)


def list_access_requests(
    *, session: Session, requester: str | None = None, station: str | None = None, projects: Sequence[str] = ()
) -> list[tuple[AccessRequest, list[Decision]]]:
    """Return requests with their decisions: all; or a researcher's (own, or of ``projects`` they
    work on); or those with a decision at ``station`` that reached the stewards."""
    statement = select(AccessRequest).order_by(col(AccessRequest.created_at))
    if requester is not None:
        statement = statement.where(
            or_(col(AccessRequest.requester) == requester, col(AccessRequest.project_id).in_(list(projects)))
        )
    if station is not None:
        at_station = select(Decision.access_request_id).where(Decision.station == station)
        statement = statement.where(
            col(AccessRequest.id).in_(at_station), col(AccessRequest.status).in_(STEWARD_VISIBLE)
        )
    return [
        (request, decisions_for_request(session=session, request_id=request.id))
        for request in session.exec(statement).all()
    ]


def _compare_and_set(
    session: Session,
    table: type[AccessRequest] | type[Decision] | type[AccessGrant],
    row_id: str,
    source: str,
    values: dict[str, Any],
    *,
    what: str,
) -> None:
    """Move one row out of ``source`` (or raise 409 when another caller moved it first)."""
    moved = session.exec(
        update(table).where(col(table.id) == row_id, col(table.status) == source).values(**values)
    ).rowcount
    if moved != 1:
        session.rollback()
        raise TransitionRefused(409, f"the {what} changed meanwhile: read it again")


def move_request(
    *,
    session: Session,
    request: AccessRequest,
    action: str,
    actor: str,
    role: str,
    comment: str | None = None,
    screening: dict[str, Any] | None = None,
) -> AccessEvent:
    """Make one move of the request as the transition table allows it (or raise :class:`TransitionRefused`).

    The update is compare-and-set on the state it leaves, so two racing moves cannot both happen.
    """
    row = check("request", action, request.status, role, comment=comment)
    source = request.status
    values: dict[str, Any] = {"status": row.target, "updated_at": utc_now()}
    if screening is not None:
        values["screening"] = screening
    _compare_and_set(session, AccessRequest, request.id, source, values, what="request")
    event = _event(
        session,
        request_id=request.id,
        row=row,
        subject=request.id,
        from_state=source,
        actor=actor,
        role=role,
        comment=comment,
    )
    session.commit()
    session.refresh(request)
    return event


def move_decision(
    *,
    session: Session,
    decision: Decision,
    action: str,
    actor: str,
    role: str,
    comment: str | None = None,
    values: dict[str, Any] | None = None,
    grant: AccessGrant | None = None,
) -> AccessEvent:
    """Make one move of a decision (and create ``grant`` with it when it becomes approved)."""
    row = check("decision", action, decision.status, role, comment=comment)
    source = decision.status
    now = utc_now()
    changes: dict[str, Any] = {"status": row.target, "updated_at": now, **(values or {})}
    if role == "steward":
        if comment:
            changes.setdefault("comment", comment)
        if row.target not in OPEN_DECISIONS:
            changes.setdefault("decided_by", actor)
            changes.setdefault("decided_at", now)
    _compare_and_set(session, Decision, decision.id, source, changes, what="decision")
    if grant is not None:
        session.add(grant)
    event = _event(
        session,
        request_id=decision.access_request_id,
        row=row,
        subject=decision.id,
        from_state=source,
        actor=actor,
        role=role,
        station=decision.station,
        comment=comment,
        at=now,
    )
    session.commit()
    session.refresh(decision)
    return event


def restart_decision_clocks(*, session: Session, request_id: str) -> None:
    """Start the expiry clock of a request's open decisions now (the stewards just received it)."""
    session.exec(
        update(Decision)
        .where(col(Decision.access_request_id) == request_id, col(Decision.status).in_(list(OPEN_DECISIONS)))
        .values(updated_at=utc_now())
    )
    session.commit()


def settle_request(*, session: Session, request: AccessRequest) -> list[AccessEvent]:
    """The hub's own moves after a decision moved: active on the first approval, closed when all decided."""
    session.refresh(request)
    decisions = decisions_for_request(session=session, request_id=request.id)
    events: list[AccessEvent] = []
    approved = any(decision.status == DecisionState.APPROVED for decision in decisions)
    if request.status == RequestState.FORWARDED and approved:
        events.append(move_request(session=session, request=request, action="activate", actor=SYSTEM, role=SYSTEM))
    if request.status in (RequestState.FORWARDED, RequestState.ACTIVE) and not any(
        decision.status in OPEN_DECISIONS for decision in decisions
    ):
        events.append(move_request(session=session, request=request, action="close", actor=SYSTEM, role=SYSTEM))
    return events


def withdraw_request(*, session: Session, request: AccessRequest, actor: str, comment: str | None) -> list[AccessEvent]:
    """Withdraw a request: its open decisions end as declined by the applicant (grants stay)."""
    check("request", "withdraw", request.status, "researcher", comment=comment)
    events = [
        move_decision(session=session, decision=decision, action="withdraw", actor=actor, role="researcher")
        for decision in decisions_for_request(session=session, request_id=request.id)
        if decision.status in OPEN_DECISIONS
    ]
    events.append(
        move_request(
            session=session, request=request, action="withdraw", actor=actor, role="researcher", comment=comment
        )
    )
    return events


def get_grant(*, session: Session, grant_id: str) -> AccessGrant | None:
    """Return the grant with this id."""
    return session.get(AccessGrant, grant_id)


def grant_for_decision(*, session: Session, decision_id: str) -> AccessGrant | None:
    """Return the grant an approved decision gave."""
    return session.exec(select(AccessGrant).where(AccessGrant.decision_id == decision_id)).first()


def list_grants(
    *, session: Session, station: str | None = None, projects: Sequence[str] | None = None
) -> list[AccessGrant]:
    """Return grants (all, a station's, or those of ``projects``), newest first."""
    statement = select(AccessGrant).order_by(col(AccessGrant.created_at).desc())
    if station is not None:
        statement = statement.where(AccessGrant.station == station)
    if projects is not None:
        statement = statement.where(col(AccessGrant.project_id).in_(list(projects)))
    return list(session.exec(statement).all())


def _cancel_project_jobs(*, session: Session, grant: AccessGrant, reason: str) -> list[str]:
    open_jobs = (
        col(Job.collection_id) == grant.collection_id,
        col(Job.status).in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        col(Job.train_id).in_(select(Train.id).where(Train.project_id == grant.project_id)),
    )
    ids = list(session.exec(select(Job.id).where(*open_jobs)).all())
    if ids:
        session.exec(
            update(Job)
            .where(col(Job.id).in_(ids))
            .values(status=JobStatus.CANCELLED, failure={"reason": reason}, updated_at=utc_now(), lease_expires_at=None)
        )
    return ids


def move_grant(
    *, session: Session, grant: AccessGrant, action: str, actor: str, role: str, comment: str | None = None
) -> tuple[AccessEvent, list[str]]:
    """Suspend, resume, revoke or expire a grant; every move but resume cancels the project's open jobs
    on the collection (a running job's station learns it at its next heartbeat). Returns the event and
    the cancelled job ids."""
    row = check("grant", action, grant.status, role, comment=comment)
    source, now = grant.status, utc_now()
    _compare_and_set(session, AccessGrant, grant.id, source, {"status": row.target, "updated_at": now}, what="grant")
    cancelled: list[str] = []
    if row.target != GrantState.ACTIVE:
        cancelled = _cancel_project_jobs(
            session=session, grant=grant, reason=f"the grant on {grant.collection_id} was {_past(action)}"
        )
    event = _event(
        session,
        request_id=grant.access_request_id,
        row=row,
        subject=grant.id,
        from_state=source,
        actor=actor,
        role=role,
        station=grant.station,
        comment=comment,
        at=now,
    )
    session.commit()
    session.refresh(grant)
    return event, cancelled


def _past(action: str) -> str:
    return {"suspend": "suspended", "revoke": "revoked", "expire": "expired"}.get(action, action)


def sweep_access(
    *, session: Session, decision_ttl_s: float, now: datetime | None = None
) -> tuple[list[AccessEvent], list[str]]:
    """Expire decisions nobody moved for ``decision_ttl_s`` and grants past their end; settle requests.

    Returns the events and the ids of jobs the expired grants cancelled.
    """
    clock = now or utc_now()
    events: list[AccessEvent] = []
    cancelled: list[str] = []
    stale = session.exec(
        select(Decision).where(
            col(Decision.status).in_(list(OPEN_DECISIONS)),
            col(Decision.updated_at) < clock - timedelta(seconds=decision_ttl_s),
            col(Decision.access_request_id).in_(
                select(AccessRequest.id).where(
                    col(AccessRequest.status).in_([RequestState.FORWARDED, RequestState.ACTIVE])
                )
            ),
        )
    ).all()
    requests: set[str] = set()
    for decision in stale:
        with contextlib.suppress(TransitionRefused):  # moved meanwhile by a person: theirs wins
            events.append(
                move_decision(
                    session=session,
                    decision=decision,
                    action="expire",
                    actor=SYSTEM,
                    role=SYSTEM,
                    comment=f"no decision within {decision_ttl_s / 86400:g} days",
                )
            )
            requests.add(decision.access_request_id)
    for request_id in sorted(requests):
        request = session.get(AccessRequest, request_id)
        if request is not None:
            events.extend(settle_request(session=session, request=request))
    ended = session.exec(
        select(AccessGrant).where(
            col(AccessGrant.status).in_([GrantState.ACTIVE, GrantState.SUSPENDED]), col(AccessGrant.not_after) < clock
        )
    ).all()
    for grant in ended:
        with contextlib.suppress(TransitionRefused):
            event, jobs = move_grant(session=session, grant=grant, action="expire", actor=SYSTEM, role=SYSTEM)
            events.append(event)
            cancelled.extend(jobs)
    return events, cancelled


def events_for_request(*, session: Session, request_id: str) -> list[AccessEvent]:
    """Return the events of a request (its decisions' and grants' included), oldest first."""
    statement = (
        select(AccessEvent)
        .where(AccessEvent.access_request_id == request_id)
        .order_by(col(AccessEvent.at), col(AccessEvent.id))
    )
    return list(session.exec(statement).all())


def steward_digest(
    *, session: Session, station: str, decision_ttl_s: float, since: datetime | None = None
) -> StewardDigest:
    """What waits for a station's stewards: counts by state, the waiting decisions oldest first, and
    how many events happened at the station since ``since``."""
    visible = select(AccessRequest.id).where(col(AccessRequest.status).in_(STEWARD_VISIBLE))
    decisions = session.exec(
        select(Decision).where(Decision.station == station, col(Decision.access_request_id).in_(visible))
    ).all()
    counts: dict[str, int] = {}
    for decision in decisions:
        counts[decision.status] = counts.get(decision.status, 0) + 1
    for grant in list_grants(session=session, station=station):
        key = f"grant_{grant.status}"
        counts[key] = counts.get(key, 0) + 1
    waiting: list[DigestItem] = []
    for decision in sorted(decisions, key=lambda row: row.updated_at):
        if decision.status != DecisionState.PENDING:  # information requested / offered: the researcher's move
            continue
        request = session.get(AccessRequest, decision.access_request_id)
        project = session.get(Project, decision.project_id)
        if request is None or project is None:  # pragma: no cover - foreign keys
            continue
        waiting.append(
            DigestItem(
                access_request_id=request.id,
                decision_id=decision.id,
                project_id=project.id,
                project_title=project.title,
                requester=request.requester,
                collection=decision.collection_id,
                status=decision.status,
                waiting_since=decision.updated_at,
                expires_at=decision.updated_at + timedelta(seconds=decision_ttl_s),
            )
        )
    recent = select(AccessEvent.id).where(AccessEvent.station == station)
    if since is not None:
        recent = recent.where(col(AccessEvent.at) > since)
    return StewardDigest(
        station=station,
        generated_at=utc_now(),
        counts=dict(sorted(counts.items())),
        waiting=waiting,
        events_since=len(session.exec(recent).all()),
        since=since,
    )


def _live_grants(*, session: Session, project_id: str, collection_id: str) -> list[AccessGrant]:
    now = utc_now()
    statement = select(AccessGrant).where(
        AccessGrant.project_id == project_id,
        AccessGrant.collection_id == collection_id,
        AccessGrant.status == GrantState.ACTIVE,
        col(AccessGrant.not_before) <= now,
        col(AccessGrant.not_after) > now,
    )
    return list(session.exec(statement).all())


def has_grant(*, session: Session, project_id: str, collection_id: str) -> bool:
    """Tell whether the project holds an active grant on the collection now."""
    return bool(_live_grants(session=session, project_id=project_id, collection_id=collection_id))


def signed_grants_for(*, session: Session, project_id: str, collection_id: str) -> list[SignedGrant]:
    """Return the stewards' signed grants of the project's active grants on the collection."""
    return [
        SignedGrant.model_validate(grant.signed_grant)
        for grant in _live_grants(session=session, project_id=project_id, collection_id=collection_id)
        if grant.signed_grant is not None
    ]


# -- trains, jobs, results ------------------------------------------------------------------


def manifest_hash_for(signed: SignedManifest) -> str:
    """Return the content address of a signed manifest (the same submission has the same hash)."""
    return content_address(canonical_json(signed.model_dump(mode="json")))


def get_train_by_manifest_hash(*, session: Session, manifest_hash: str) -> Train | None:
    """Return the train accepted for this exact signed manifest."""
    return session.exec(select(Train).where(Train.manifest_hash == manifest_hash)).first()


def create_train(
    *,
    session: Session,
    signed: SignedManifest,
    owner: User,
    collections: Sequence[Collection],
    first_jobs: Callable[[Session, Train], list[Job]] | None = None,
) -> tuple[Train, list[Job]]:
    """Create a train and one queued job per collection, in one transaction.

    ``first_jobs`` replaces the one-job-per-collection rule (a federated run queues its first round).
    """
    manifest = signed.manifest
    train = Train(
        name=manifest.name,
        kind=manifest.kind,
        project_id=manifest.project_id,
        owner=owner.username,
        signed_manifest=signed.model_dump(mode="json"),
        manifest_hash=manifest_hash_for(signed),
    )
    session.add(train)
    session.flush()  # the train row exists before the jobs that point at it
    if first_jobs is not None:
        first_jobs(session, train)
    else:
        session.add_all(
            Job(
                train_id=train.id,
                station_id=collection.station_id,
                collection_id=collection.id,
                collection=collection.collection,
            )
            for collection in collections
        )
    session.commit()
    session.refresh(train)
    return train, jobs_for_train(session=session, train_id=train.id)


def get_train(*, session: Session, train_id: str) -> Train | None:
    """Return the train with this id."""
    return session.get(Train, train_id)


def jobs_for_train(*, session: Session, train_id: str) -> list[Job]:
    """Return the jobs of a train, by collection id."""
    return list(session.exec(select(Job).where(Job.train_id == train_id).order_by(col(Job.collection_id))).all())


def list_trains(*, session: Session, owner: str) -> list[tuple[Train, list[Job]]]:
    """Return the trains of ``owner`` with their jobs, oldest first."""
    trains = session.exec(select(Train).where(Train.owner == owner).order_by(col(Train.created_at))).all()
    return [(train, jobs_for_train(session=session, train_id=train.id)) for train in trains]


def get_job(*, session: Session, job_id: str) -> Job | None:
    """Return the job with this id."""
    return session.get(Job, job_id)


def expire_job_leases(*, session: Session, max_attempts: int, now: datetime | None = None) -> tuple[int, int]:
    """Re-queue running jobs whose lease expired; fail those delivered ``max_attempts`` times.

    Returns
    -------
    tuple of int
        How many jobs were re-queued and how many failed.
    """
    clock = now or utc_now()
    expired = (col(Job.status) == JobStatus.RUNNING, col(Job.lease_expires_at) < clock)
    failure = {"reason": f"the station stopped answering: the job's lease expired {max_attempts} times"}
    failed = session.exec(
        update(Job)
        .where(*expired, col(Job.attempts) >= max_attempts)
        .values(status=JobStatus.FAILED, failure=failure, updated_at=clock, lease_expires_at=None)
    ).rowcount
    requeued = session.exec(
        update(Job)
        .where(*expired, col(Job.attempts) < max_attempts)
        .values(status=JobStatus.QUEUED, updated_at=clock, lease_expires_at=None)
    ).rowcount
    session.commit()
    return requeued, failed


def extend_job_lease(*, session: Session, job: Job, lease_s: float) -> Job:
    """Extend a running job's lease (a station's heartbeat)."""
    now = utc_now()
    session.exec(
        update(Job)
        .where(col(Job.id) == job.id, col(Job.status) == JobStatus.RUNNING)
        .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
    )
    session.commit()
    session.refresh(job)
    return job


def claim_next_job(*, session: Session, station_id: str, lease_s: float = 120.0) -> tuple[Job, Train] | None:
    """Mark the oldest queued job of the station running and return it with its train."""
    while True:
        statement = (
            select(Job)
            .where(Job.station_id == station_id, Job.status == JobStatus.QUEUED)
            .order_by(col(Job.created_at), col(Job.id))
        )
        job = session.exec(statement).first()
        if job is None:
            return None
        now = utc_now()
        claim = (
            update(Job)
            .where(col(Job.id) == job.id, col(Job.status) == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                delivered_at=now,
                updated_at=now,
                lease_expires_at=now + timedelta(seconds=lease_s),
                attempts=col(Job.attempts) + 1,
            )
        )
        claimed = session.exec(claim).rowcount == 1
        session.commit()
        if claimed:  # else another poll of the same station took it first: look again
            session.refresh(job)
            train = session.get(Train, job.train_id)
            assert train is not None
            return job, train


def get_result(*, session: Session, job_id: str) -> Result | None:
    """Return the stored result of a job."""
    return session.get(Result, job_id)


def record_result(*, session: Session, job: Job, envelope: ResultEnvelope, address: str, path: str) -> Result:
    """Store where the result lives and finish the job (succeeded or failed)."""
    result = Result(job_id=job.id, address=address, path=path)
    job.status = envelope.status
    job.failure = envelope.failure.model_dump(mode="json") if envelope.failure is not None else None
    job.updated_at = utc_now()
    session.add(result)
    session.add(job)
    session.commit()
    session.refresh(result)
    session.refresh(job)
    return result


def cancel_train(*, session: Session, train_id: str, reason: str = "cancelled by the researcher") -> list[str]:
    """Cancel the train's queued and running jobs; return their ids (finished jobs stay as they are).

    A running job's station learns it at its next heartbeat (409) and its upload is refused.
    """
    now = utc_now()
    open_jobs = (col(Job.train_id) == train_id, col(Job.status).in_([JobStatus.QUEUED, JobStatus.RUNNING]))
    ids = list(session.exec(select(Job.id).where(*open_jobs)).all())
    session.exec(
        update(Job)
        .where(*open_jobs)
        .values(status=JobStatus.CANCELLED, failure={"reason": reason}, updated_at=now, lease_expires_at=None)
    )
    session.commit()
    return ids
