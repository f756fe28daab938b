"""The catalog as GraphQL: ``collections(modality, bodyPart, minSubjects)``."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import strawberry
from sqlmodel import Session
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from hub import crud
from hub.catalog.filters import summary_matches
from hub.models import Collection as CollectionRow
from protocol import CollectionSummary

__all__ = ["CatalogContext", "Collection", "ValueCount", "resolve_collections", "schema"]


class CatalogContext(BaseContext):
    """What a resolver needs: a way to open a session, and who is logged in (if anyone)."""

    def __init__(self, *, open_session: Callable[[], Session], username: str | None) -> None:
        super().__init__()
        self.open_session = open_session
        self.username = username

    def __repr__(self) -> str:
        return f"CatalogContext(username={self.username!r})"


@strawberry.type(description="How many subjects show one value; null when the count is suppressed.")
class ValueCount:
    """One value of a facet and its (possibly suppressed) count."""

    value: str
    count: int | None


def _counts(counts: dict[str, int | None]) -> list[ValueCount]:
    return [ValueCount(value=value, count=count) for value, count in sorted(counts.items())]


@strawberry.type(description="An imaging collection held by one station.")
class Collection:
    """A collection in the catalog; counts are null when suppressed."""

    id: str
    iri: str
    station: str
    collection: str
    title: str
    description: str
    subjects: int | None
    studies: int | None
    series: int | None
    instances: int | None
    modalities: list[ValueCount]
    body_parts: list[ValueCount]
    manufacturers: list[ValueCount]

    @classmethod
    def from_row(cls, row: CollectionRow, summary: CollectionSummary) -> Collection:
        """Build the GraphQL shape of a collection row."""
        return cls(
            id=row.id,
            iri=row.graph_iri,
            station=row.station_id,
            collection=row.collection,
            title=row.title,
            description=row.description,
            subjects=summary.subjects,
            studies=summary.studies,
            series=summary.series,
            instances=summary.instances,
            modalities=_counts(summary.modalities),
            body_parts=_counts(summary.body_parts),
            manufacturers=_counts(summary.manufacturers),
        )


def _search(
    open_session: Callable[[], Session], modality: str | None, body_part: str | None, min_subjects: int | None
) -> list[Collection]:
    with open_session() as session:
        found: list[Collection] = []
        for row in crud.list_collections(session=session):
            summary = CollectionSummary.model_validate(row.summary)
            if summary_matches(summary, modality=modality, body_part=body_part, min_subjects=min_subjects):
                found.append(Collection.from_row(row, summary))
        return found


async def resolve_collections(
    info: Info[CatalogContext, None],
    modality: str | None = None,
    body_part: str | None = None,
    min_subjects: int | None = None,
) -> list[Collection]:
    """Search the catalog (logged-in users only)."""
    context = info.context
    if context.username is None:
        raise PermissionError("log in first: send 'Authorization: Bearer <token>' from POST /auth/login")
    return await anyio.to_thread.run_sync(_search, context.open_session, modality, body_part, min_subjects)


@strawberry.type
class Query:
    """The catalog's queries."""

    collections: list[Collection] = strawberry.field(
        resolver=resolve_collections,
        description="Collections matching every given filter (modality and body part case-insensitively).",
    )


schema = strawberry.Schema(query=Query)
