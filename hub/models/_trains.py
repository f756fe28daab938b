"""Trains, their jobs at stations, stored results and artifacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from hub.models._types import UTCDateTime, new_id
from protocol import JobFailure, JobStatus, TrainKind, utc_now

__all__ = [
    "ArtifactPublic",
    "Job",
    "JobPublic",
    "Result",
    "Train",
    "TrainPublic",
    "TrainsPublic",
]


class Train(SQLModel, table=True):
    """A researcher's signed train, accepted for a project."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str
    kind: TrainKind
    project_id: str = Field(foreign_key="project.id", index=True)
    owner: str = Field(foreign_key="user.username", index=True)
    signed_manifest: dict[str, Any] = Field(sa_type=JSON)
    manifest_hash: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class Job(SQLModel, table=True):
    """One train at one collection of one station."""

    id: str = Field(default_factory=new_id, primary_key=True)
    train_id: str = Field(foreign_key="train.id", index=True)
    station_id: str = Field(foreign_key="station.id", index=True)
    collection_id: str = Field(foreign_key="collection.id")
    collection: str
    status: JobStatus = Field(default=JobStatus.QUEUED, index=True)
    failure: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True))
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    attempts: int = 0
    fl_round: int | None = Field(default=None, index=True, description="a federated train's round")
    round_spec: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True))


class Result(SQLModel, table=True):
    """Where the hub keeps a job's result envelope (ciphertext only)."""

    job_id: str = Field(primary_key=True, foreign_key="job.id")
    address: str
    path: str
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class JobPublic(SQLModel):
    """A job as the API shows it."""

    id: str
    train_id: str
    station: str
    collection: str
    status: JobStatus
    failure: JobFailure | None
    updated_at: datetime
    attempts: int = 0
    lease_expires_at: datetime | None = None
    fl_round: int | None = None

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        """Build the public shape of a job row."""
        return cls(
            id=job.id,
            train_id=job.train_id,
            station=job.station_id,
            collection=job.collection,
            status=job.status,
            failure=JobFailure.model_validate(job.failure) if job.failure else None,
            updated_at=job.updated_at,
            attempts=job.attempts,
            lease_expires_at=job.lease_expires_at,
            fl_round=job.fl_round,
        )


class TrainPublic(SQLModel):
    """A train with its jobs."""

    id: str
    name: str
    kind: TrainKind
    project_id: str
    created_at: datetime
    jobs: list[JobPublic]

    @classmethod
    def from_rows(cls, train: Train, jobs: list[Job]) -> TrainPublic:
        """Build the public shape of a train and its jobs."""
        return cls(
            id=train.id,
            name=train.name,
            kind=train.kind,
            project_id=train.project_id,
            created_at=train.created_at,
            jobs=[JobPublic.from_job(job) for job in jobs],
        )


class TrainsPublic(SQLModel):
    """A list of trains."""

    data: list[TrainPublic]
    count: int


class ArtifactPublic(SQLModel):
    """A stored artifact."""

    address: str
    size: int
