"""Federated runs, their rounds, the stations' updates and the model registry."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models._types import UTCDateTime, new_id
from protocol import utc_now

__all__ = [
    "FLRound",
    "FLRoundPublic",
    "FLRun",
    "FLRunPublic",
    "FLUpdate",
    "ModelVersion",
    "ModelVersionPublic",
    "ModelVersionsPublic",
    "RoundStatus",
    "RunStatus",
]


class RunStatus(StrEnum):
    """Where a federated run stands."""

    RUNNING = "running"
    FINISHED = "finished"
    STOPPED_EARLY = "stopped_early"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RoundStatus(StrEnum):
    """Where one round stands."""

    OPEN = "open"
    AGGREGATED = "aggregated"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FLRun(SQLModel, table=True):
    """The hub's side of a federated train: which round it is in and its current global model."""

    train_id: str = Field(primary_key=True, foreign_key="train.id")
    status: RunStatus = Field(default=RunStatus.RUNNING, index=True)
    strategy: str
    total_rounds: int
    current_round: int = 0
    collections: list[str] = Field(default_factory=list, sa_type=JSON)
    global_model: str | None = None
    best_metric: float | None = None
    best_round: int | None = None
    reason: str | None = None
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class FLRound(SQLModel, table=True):
    """One round of a run: who was asked, who delivered, what came out."""

    __table_args__ = (UniqueConstraint("train_id", "number"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    train_id: str = Field(foreign_key="train.id", index=True)
    number: int
    status: RoundStatus = Field(default=RoundStatus.OPEN)
    deadline: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    asked: list[str] = Field(default_factory=list, sa_type=JSON)
    contributed: list[str] = Field(default_factory=list, sa_type=JSON)
    dropped: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    metrics: dict[str, float] = Field(default_factory=dict, sa_type=JSON)
    station_metrics: dict[str, dict[str, float]] = Field(default_factory=dict, sa_type=JSON)
    bytes_up: int = 0
    bytes_down: int = 0
    global_model: str | None = None


class FLUpdate(SQLModel, table=True):
    """A station's model update for a round (the bytes are a content-addressed artifact)."""

    job_id: str = Field(primary_key=True, foreign_key="job.id")
    train_id: str = Field(foreign_key="train.id", index=True)
    round: int
    collection: str
    address: str
    size: int
    num_examples: int
    metrics: dict[str, float] = Field(default_factory=dict, sa_type=JSON)
    used_in_round: int | None = None
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class ModelVersion(SQLModel, table=True):
    """A trained model in the registry: safetensors weights plus their provenance."""

    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    train_id: str = Field(foreign_key="train.id", index=True)
    name: str
    version: int
    address: str
    size: int
    provenance: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class FLRoundPublic(SQLModel):
    """A round as the API shows it."""

    number: int
    status: RoundStatus
    started_at: datetime
    finished_at: datetime | None
    deadline: datetime
    asked: list[str]
    contributed: list[str]
    dropped: dict[str, str]
    metrics: dict[str, float]
    station_metrics: dict[str, dict[str, float]]
    bytes_up: int
    bytes_down: int
    global_model: str | None

    @classmethod
    def from_round(cls, row: FLRound) -> FLRoundPublic:
        """Build the public shape of a round row."""
        return cls.model_validate(row, from_attributes=True)


class FLRunPublic(SQLModel):
    """A federated run with its rounds."""

    train_id: str
    status: RunStatus
    strategy: str
    total_rounds: int
    current_round: int
    global_model: str | None
    best_metric: float | None
    best_round: int | None
    reason: str | None
    rounds: list[FLRoundPublic]
    model_id: str | None = None


class ModelVersionPublic(SQLModel):
    """A registered model as the API shows it."""

    id: str
    project_id: str
    train_id: str
    name: str
    version: int
    address: str
    size: int
    provenance: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: ModelVersion) -> ModelVersionPublic:
        """Build the public shape of a registry row."""
        return cls.model_validate(row, from_attributes=True)


class ModelVersionsPublic(SQLModel):
    """A list of registered models."""

    data: list[ModelVersionPublic]
    count: int
