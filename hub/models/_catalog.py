"""Published collections: the SQL side of the catalog (the RDF lives in the store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from hub.models._types import UTCDateTime
from protocol import CollectionSummary, utc_now

__all__ = ["Collection", "CollectionPublic", "CollectionsPublic"]


class Collection(SQLModel, table=True):
    """One collection of one station; ``id`` is ``"<station>/<collection>"``."""

    id: str = Field(primary_key=True)
    station_id: str = Field(foreign_key="station.id", index=True)
    collection: str
    title: str
    description: str = ""
    summary: dict[str, Any] = Field(sa_type=JSON)
    metadata_: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # CollectionMetadata (collection.toml)
    graph_iri: str
    published_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class CollectionPublic(SQLModel):
    """A collection as the catalog shows it."""

    id: str
    iri: str
    station: str
    collection: str
    title: str
    description: str
    summary: CollectionSummary
    published_at: datetime

    @classmethod
    def from_collection(cls, row: Collection) -> CollectionPublic:
        """Build the public shape of a collection row."""
        return cls(
            id=row.id,
            iri=row.graph_iri,
            station=row.station_id,
            collection=row.collection,
            title=row.title,
            description=row.description,
            summary=CollectionSummary.model_validate(row.summary),
            published_at=row.published_at,
        )


class CollectionsPublic(SQLModel):
    """A list of collections."""

    data: list[CollectionPublic]
    count: int
