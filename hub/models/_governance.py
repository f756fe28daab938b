"""Projects, access requests and the per-collection decisions that grant access."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from hub.models._types import UTCDateTime, new_id
from protocol import SignedGrant, utc_now

__all__ = [
    "AccessRequest",
    "AccessRequestCreate",
    "AccessRequestPublic",
    "AccessRequestsPublic",
    "Decision",
    "DecisionComment",
    "DecisionPublic",
    "DecisionStatus",
    "Project",
    "ProjectCreate",
    "ProjectPublic",
    "ProjectsPublic",
]


class DecisionStatus(StrEnum):
    """Where a steward's decision on one collection stands; ``approved`` is a grant."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Project(SQLModel, table=True):
    """A researcher's project: the unit that holds grants and submits trains."""

    id: str = Field(default_factory=new_id, primary_key=True)
    title: str
    purpose: str
    owner: str = Field(foreign_key="user.username", index=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class ProjectCreate(SQLModel):
    """Title and purpose of a new project."""

    title: str = Field(min_length=1, max_length=300)
    purpose: str = Field(min_length=1, max_length=5000)


class ProjectPublic(SQLModel):
    """A project as the API shows it."""

    id: str
    title: str
    purpose: str
    owner: str
    created_at: datetime


class ProjectsPublic(SQLModel):
    """A list of projects."""

    data: list[ProjectPublic]
    count: int


class AccessRequest(SQLModel, table=True):
    """A project's request for access to one or more collections."""

    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    requester: str = Field(foreign_key="user.username", index=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class Decision(SQLModel, table=True):
    """The decision of one station's steward on one collection of an access request."""

    id: str = Field(default_factory=new_id, primary_key=True)
    access_request_id: str = Field(foreign_key="accessrequest.id", index=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    collection_id: str = Field(foreign_key="collection.id", index=True)
    station: str = Field(index=True)
    collection: str
    status: DecisionStatus = DecisionStatus.PENDING
    decided_by: str | None = Field(default=None, foreign_key="user.username")
    comment: str | None = None
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    signed_grant: dict[str, Any] | None = Field(default=None, sa_type=JSON)


class AccessRequestCreate(SQLModel):
    """Which project asks for which collections (ids ``"<station>/<collection>"``)."""

    project_id: str
    collections: list[str] = Field(min_length=1, max_length=200)


class DecisionComment(SQLModel):
    """An optional comment a steward adds to a decision, and (to approve) the grant signed on their machine."""

    comment: str | None = Field(default=None, max_length=5000)
    signed_grant: SignedGrant | None = None


class DecisionPublic(SQLModel):
    """A decision as the API shows it."""

    id: str
    station: str
    collection: str
    status: DecisionStatus
    decided_by: str | None
    comment: str | None
    decided_at: datetime | None
    signed_grant: dict[str, Any] | None = None


class AccessRequestPublic(SQLModel):
    """An access request with its decisions."""

    id: str
    project_id: str
    requester: str
    created_at: datetime
    decisions: list[DecisionPublic]
    requester_key_id: str | None = Field(
        default=None, description="the key id of the requester's signing key, which a steward's grant names"
    )

    @classmethod
    def from_rows(
        cls, request: AccessRequest, decisions: list[Decision], *, requester_key_id: str | None = None
    ) -> AccessRequestPublic:
        """Build the public shape of a request and its decisions."""
        return cls(
            id=request.id,
            project_id=request.project_id,
            requester=request.requester,
            requester_key_id=requester_key_id,
            created_at=request.created_at,
            decisions=[DecisionPublic.model_validate(decision, from_attributes=True) for decision in decisions],
        )


class AccessRequestsPublic(SQLModel):
    """A list of access requests."""

    data: list[AccessRequestPublic]
    count: int
