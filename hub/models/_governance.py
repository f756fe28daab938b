"""Projects, access requests, the per-collection decisions, the grants they give, and their events.

The states and who may move them live in :mod:`hub.governance`; these are the rows and shapes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import StringConstraints, field_validator
from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from hub.governance import DecisionState, GrantState, RequestState
from hub.models._types import UTCDateTime, new_id
from protocol import REMOTE_PROCESSING, SignedGrant, utc_now

__all__ = [
    "AccessEvent",
    "AccessEventPublic",
    "AccessEventsPublic",
    "AccessGrant",
    "AccessGrantPublic",
    "AccessGrantsPublic",
    "AccessRequest",
    "AccessRequestCheck",
    "AccessRequestCreate",
    "AccessRequestPublic",
    "AccessRequestUpdate",
    "AccessRequestsPublic",
    "Decision",
    "DecisionComment",
    "DecisionPublic",
    "DigestItem",
    "Project",
    "ProjectCreate",
    "ProjectPublic",
    "ProjectsPublic",
    "ScreeningFinding",
    "ScreeningReport",
    "StewardDigest",
    "TransitionComment",
]

DuoCode = Annotated[str, StringConstraints(pattern=r"^DUO:[0-9]{7}$")]
DiseaseCodeText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.\-]{1,32}$")]
Username = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Project(SQLModel, table=True):
    """A researcher's project: the unit that holds grants and submits trains."""

    id: str = Field(default_factory=new_id, primary_key=True)
    title: str
    purpose: str
    owner: str = Field(foreign_key="user.username", index=True)
    members: list[str] = Field(default_factory=list, sa_type=JSON)
    data_use: list[str] = Field(default_factory=list, sa_type=JSON)
    diseases: list[str] = Field(default_factory=list, sa_type=JSON)
    ethics_reference: str | None = None
    end_date: date | None = None
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)

    def has_member(self, username: str) -> bool:
        """Tell whether ``username`` owns or is a member of the project."""
        return username == self.owner or username in self.members


class ProjectCreate(SQLModel):
    """A new project: what it is for, who works on it, its intended use (GA4GH DUO), ethics and end."""

    title: str = Field(min_length=1, max_length=300)
    purpose: str = Field(min_length=1, max_length=5000)
    members: list[Username] = Field(
        default_factory=list, max_length=100, description="other researchers (usernames) who work on it"
    )
    data_use: list[DuoCode] = Field(
        default_factory=list,
        max_length=20,
        description="intended use as DUO codes: a primary purpose (DUO:0000042 GRU, DUO:0000006 HMB, "
        "DUO:0000007 DS) and modifiers such as DUO:0000031 (methods development, e.g. training a model)",
    )
    diseases: list[DiseaseCodeText] = Field(
        default_factory=list, max_length=50, description="ICD-10 / SNOMED CT codes a disease-specific use is about"
    )
    ethics_reference: str | None = Field(default=None, min_length=1, max_length=200)
    end_date: date | None = Field(default=None, description="the last day of the project; grants end by then")

    @field_validator("end_date")
    @classmethod
    def _end_in_future(cls, value: date | None) -> date | None:
        if value is not None and value < utc_now().date():
            raise ValueError("a project's end date cannot be in the past")
        return value


class ProjectUpdate(SQLModel):
    """What a project's owner may change; fields left out stay as they are."""

    title: str | None = Field(default=None, min_length=1, max_length=300)
    purpose: str | None = Field(default=None, min_length=1, max_length=5000)
    members: list[Username] | None = Field(default=None, max_length=100)
    data_use: list[DuoCode] | None = Field(default=None, max_length=20)
    diseases: list[DiseaseCodeText] | None = Field(default=None, max_length=50)
    ethics_reference: str | None = Field(default=None, min_length=1, max_length=200)
    end_date: date | None = None

    @field_validator("end_date")
    @classmethod
    def _end_in_future(cls, value: date | None) -> date | None:
        if value is not None and value < utc_now().date():
            raise ValueError("a project's end date cannot be in the past")
        return value


class ProjectPublic(SQLModel):
    """A project as the API shows it."""

    id: str
    title: str
    purpose: str
    owner: str
    members: list[str]
    data_use: list[str]
    diseases: list[str]
    ethics_reference: str | None
    end_date: date | None
    created_at: datetime
    member_keys: dict[str, str | None] = Field(
        default_factory=dict,
        description="GET /projects/{id} only: each member's registered encryption key, to seal results for them",
    )


class ProjectsPublic(SQLModel):
    """A list of projects."""

    data: list[ProjectPublic]
    count: int


class AccessRequest(SQLModel, table=True):
    """A project's request for access to one or more collections."""

    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    requester: str = Field(foreign_key="user.username", index=True)
    status: RequestState = Field(default=RequestState.DRAFT, index=True)
    screening: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class Decision(SQLModel, table=True):
    """The decision of one station's steward on one collection of an access request."""

    id: str = Field(default_factory=new_id, primary_key=True)
    access_request_id: str = Field(foreign_key="accessrequest.id", index=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    collection_id: str = Field(foreign_key="collection.id", index=True)
    station: str = Field(index=True)
    collection: str
    status: DecisionState = Field(default=DecisionState.PENDING, index=True)
    decided_by: str | None = Field(default=None, foreign_key="user.username")
    comment: str | None = None
    conditions: str | None = None
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    signed_grant: dict[str, Any] | None = Field(default=None, sa_type=JSON)


class AccessGrant(SQLModel, table=True):
    """What an approved decision gives: a project may process one collection, in a period, for a purpose."""

    id: str = Field(default_factory=new_id, primary_key=True)
    decision_id: str = Field(foreign_key="decision.id", index=True, unique=True)
    access_request_id: str = Field(foreign_key="accessrequest.id", index=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    collection_id: str = Field(foreign_key="collection.id", index=True)
    station: str = Field(index=True)
    collection: str
    researcher: str = Field(foreign_key="user.username")
    steward: str = Field(foreign_key="user.username")
    status: GrantState = Field(default=GrantState.ACTIVE, index=True)
    purpose: list[str] = Field(default_factory=list, sa_type=JSON)
    allowed_action: str = REMOTE_PROCESSING
    conditions: str | None = None
    not_before: datetime = Field(sa_type=UTCDateTime)
    not_after: datetime = Field(sa_type=UTCDateTime)
    signed_grant: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class AccessEvent(SQLModel, table=True):
    """One move of a request, decision or grant: who, in which role, when, from where to where, why."""

    id: int | None = Field(default=None, primary_key=True)
    access_request_id: str = Field(foreign_key="accessrequest.id", index=True)
    kind: str  # request | decision | grant
    subject: str = Field(index=True)
    action: str
    from_state: str | None = None
    to_state: str
    actor: str
    role: str
    station: str | None = Field(default=None, index=True)
    comment: str | None = None
    at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class AccessRequestCreate(SQLModel):
    """Which project asks for which collections (ids ``"<station>/<collection>"``)."""

    project_id: str = Field(min_length=1, max_length=128)
    collections: list[str] = Field(min_length=1, max_length=200)
    submit: bool = Field(default=True, description="submit now (screening starts); false keeps a draft")


class AccessRequestCheck(SQLModel):
    """What to screen before submitting: a project and the collections it would ask for."""

    project_id: str = Field(min_length=1, max_length=128)
    collections: list[str] = Field(min_length=1, max_length=200)


class AccessRequestUpdate(SQLModel):
    """A draft's or returned request's new list of collections."""

    collections: list[str] = Field(min_length=1, max_length=200)


class TransitionComment(SQLModel):
    """The comment a move carries (some moves require one)."""

    comment: str | None = Field(default=None, max_length=5000)


class DecisionComment(SQLModel):
    """A steward's comment, and (to approve or offer conditions) the grant signed on their machine."""

    comment: str | None = Field(default=None, max_length=5000)
    signed_grant: SignedGrant | None = None


class ScreeningFinding(SQLModel):
    """One thing the automatic checks found about one collection."""

    collection: str
    severity: str  # problem | note
    code: str
    message: str


class ScreeningReport(SQLModel):
    """The automatic checks of a request: problems return it to the researcher; notes go to stewards."""

    passed: bool
    findings: list[ScreeningFinding]


class DecisionPublic(SQLModel):
    """A decision as the API shows it."""

    id: str
    station: str
    collection: str
    status: DecisionState
    decided_by: str | None
    comment: str | None
    conditions: str | None = None
    decided_at: datetime | None
    updated_at: datetime | None = None
    signed_grant: dict[str, Any] | None = None


class AccessRequestPublic(SQLModel):
    """An access request with its decisions."""

    id: str
    project_id: str
    requester: str
    status: RequestState
    screening: ScreeningReport | None = None
    created_at: datetime
    updated_at: datetime | None = None
    decisions: list[DecisionPublic]
    requester_key_id: str | None = Field(
        default=None, description="the key id of the requester's signing key, which a steward's grant names"
    )
    project_data_use: list[str] = Field(
        default_factory=list, description="the project's intended use (DUO codes): a grant's purpose is within it"
    )
    project_end_date: date | None = Field(default=None, description="the project's last day: a grant ends by then")

    @classmethod
    def from_rows(
        cls,
        request: AccessRequest,
        decisions: list[Decision],
        *,
        requester_key_id: str | None = None,
        project: Project | None = None,
    ) -> AccessRequestPublic:
        """Build the public shape of a request and its decisions (and its project's use and end)."""
        return cls(
            id=request.id,
            project_id=request.project_id,
            requester=request.requester,
            status=request.status,
            screening=ScreeningReport.model_validate(request.screening) if request.screening else None,
            requester_key_id=requester_key_id,
            project_data_use=list(project.data_use) if project is not None else [],
            project_end_date=project.end_date if project is not None else None,
            created_at=request.created_at,
            updated_at=request.updated_at,
            decisions=[DecisionPublic.model_validate(decision, from_attributes=True) for decision in decisions],
        )


class AccessRequestsPublic(SQLModel):
    """A list of access requests."""

    data: list[AccessRequestPublic]
    count: int


class AccessGrantPublic(SQLModel):
    """A grant as the API shows it."""

    id: str
    decision_id: str
    access_request_id: str
    project_id: str
    station: str
    collection: str
    researcher: str
    steward: str
    status: GrantState
    purpose: list[str]
    allowed_action: str
    conditions: str | None
    not_before: datetime
    not_after: datetime
    signed: bool
    updated_at: datetime

    @classmethod
    def from_row(cls, row: AccessGrant) -> AccessGrantPublic:
        """Build the public shape of a grant row."""
        return cls.model_validate(row.model_dump() | {"signed": row.signed_grant is not None})


class AccessGrantsPublic(SQLModel):
    """A list of grants."""

    data: list[AccessGrantPublic]
    count: int


class AccessEventPublic(SQLModel):
    """One event of a request's history."""

    kind: str
    subject: str
    action: str
    from_state: str | None
    to_state: str
    actor: str
    role: str
    station: str | None
    comment: str | None
    at: datetime


class AccessEventsPublic(SQLModel):
    """A request's history, oldest first."""

    data: list[AccessEventPublic]
    count: int


class DigestItem(SQLModel):
    """A decision waiting for the steward."""

    access_request_id: str
    decision_id: str
    project_id: str
    project_title: str
    requester: str
    collection: str
    status: DecisionState
    waiting_since: datetime
    expires_at: datetime


class StewardDigest(SQLModel):
    """One summary of what waits for a steward's station, instead of one message per event."""

    station: str
    generated_at: datetime
    counts: dict[str, int]
    waiting: list[DigestItem]
    events_since: int
    since: datetime | None
