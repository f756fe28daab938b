"""Stations, their one-time enrolment tokens and their public shapes."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from hub.models._types import Slug, UTCDateTime
from protocol import utc_now

__all__ = [
    "EnrolmentToken",
    "EnrolmentTokenCreate",
    "EnrolmentTokenPublic",
    "Station",
    "StationPublic",
    "StationsPublic",
]


class Station(SQLModel, table=True):
    """An enrolled station; its id is its slug."""

    id: str = Field(primary_key=True)
    signing_public_key: str
    encryption_public_key: str
    enrolled_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EnrolmentToken(SQLModel, table=True):
    """A one-time token that lets the station named ``station`` enrol."""

    token_hash: str = Field(primary_key=True)
    station: str = Field(index=True)
    created_by: str = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EnrolmentTokenCreate(SQLModel):
    """Which station the token is for."""

    station: Slug


class EnrolmentTokenPublic(SQLModel):
    """The token in clear: shown once, to the admin who made it."""

    token: str
    station: str
    expires_at: datetime


class StationPublic(SQLModel):
    """A station as people see it."""

    id: str
    name: str
    signing_public_key: str
    encryption_public_key: str
    enrolled_at: datetime
    last_seen_at: datetime | None

    @classmethod
    def from_station(cls, station: Station) -> StationPublic:
        """Build the public shape of a station row."""
        return cls(
            id=station.id,
            name=station.id,
            signing_public_key=station.signing_public_key,
            encryption_public_key=station.encryption_public_key,
            enrolled_at=station.enrolled_at,
            last_seen_at=station.last_seen_at,
        )


class StationsPublic(SQLModel):
    """A list of stations."""

    data: list[StationPublic]
    count: int
