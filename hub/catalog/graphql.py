"""The catalog as GraphQL: ``collections(modality, bodyPart, minSubjects)``."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import anyio
import strawberry
from graphql import SelectionSetNode
from sqlmodel import Session
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from hub import crud
from hub.catalog.filters import summary_matches
from hub.catalog.index import FACETS, SearchIndex, SearchQuery
from hub.models import Collection as CollectionRow
from protocol import CollectionSummary

__all__ = ["CatalogContext", "Collection", "ValueCount", "resolve_collections", "schema"]


class CatalogContext(BaseContext):
    """What a resolver needs: a way to open a session, the search index, and who is logged in (if anyone)."""

    def __init__(
        self, *, open_session: Callable[[], Session], username: str | None, index: SearchIndex | None = None
    ) -> None:
        super().__init__()
        self.open_session = open_session
        self.username = username
        self.index = index if index is not None else SearchIndex()

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


@strawberry.input(description="Search filters: values within one filter are OR-ed, filters are AND-ed.")
class CollectionFilter:
    """What to look for."""

    modality: list[str] | None = None
    body_part: list[str] | None = None
    manufacturer: list[str] | None = None
    station: list[str] | None = None
    min_subjects: int | None = None
    max_subjects: int | None = None
    text: str | None = strawberry.field(default=None, description="words of the title or description")


@strawberry.enum(description="How hits are ordered.")
class CollectionSort(Enum):
    """Sort orders of a search."""

    SUBJECTS_DESC = "subjects_desc"
    SUBJECTS_ASC = "subjects_asc"
    TITLE = "title"
    MODIFIED_DESC = "modified_desc"


@strawberry.type(description="A facet value and how many collections (with the other filters) have it.")
class FacetValue:
    """One bar of a facet."""

    value: str
    count: int


@strawberry.type(description="Counts for every filter, each computed with all the other filters applied.")
class Facets:
    """The facets of a search."""

    modality: list[FacetValue]
    body_part: list[FacetValue]
    manufacturer: list[FacetValue]
    station: list[FacetValue]


@strawberry.type(description="One collection found; counts are null when suppressed, rounded down for guests.")
class SearchHit:
    """A hit of a search."""

    id: str
    iri: str
    station: str
    title: str
    description: str
    subjects: int | None
    studies: int | None
    series: int | None
    instances: int | None
    modalities: list[str]
    body_parts: list[str]
    manufacturers: list[str]


@strawberry.type
class PageInfo:
    """Where the page ends; pass ``endCursor`` as ``after`` for the next one."""

    end_cursor: str | None
    has_next_page: bool


@strawberry.type(description="A page of a faceted search.")
class SearchConnection:
    """Hits, total, facets and paging."""

    total_count: int
    nodes: list[SearchHit]
    facets: Facets
    page_info: PageInfo


_GUEST_STEP = 10


def _for_guests(value: int | None) -> int | None:
    """Guests see counts rounded down to a multiple of 10 (published counts are 0 or at least k)."""
    return None if value is None else value - value % _GUEST_STEP


MAX_DEPTH = 6
MAX_ROOT_FIELDS = 10
MAX_SELECTIONS = 200


def _depth_and_size(selection_set: SelectionSetNode | None, depth: int = 1) -> tuple[int, int]:
    if selection_set is None:
        return depth - 1, 0
    deepest, size = depth, 0
    for selection in selection_set.selections:
        size += 1
        inner = getattr(selection, "selection_set", None)
        inner_depth, inner_size = _depth_and_size(inner, depth + 1)
        deepest, size = max(deepest, inner_depth), size + inner_size
    return deepest, size


def _check_limits(info: Info[CatalogContext, None]) -> None:
    """Refuse queries too deep, too wide or asking for too many searches at once (aliases)."""
    operation = info.operation
    roots = len(operation.selection_set.selections)
    depth, size = _depth_and_size(operation.selection_set)
    if roots > MAX_ROOT_FIELDS:
        raise ValueError(f"at most {MAX_ROOT_FIELDS} top-level fields (aliases included) per query, not {roots}")
    if depth > MAX_DEPTH:
        raise ValueError(f"the query is {depth} levels deep; the limit is {MAX_DEPTH}")
    if size > MAX_SELECTIONS:
        raise ValueError(f"the query selects {size} fields; the limit is {MAX_SELECTIONS}")


def resolve_search(
    info: Info[CatalogContext, None],
    filter: CollectionFilter | None = None,
    sort: CollectionSort = CollectionSort.SUBJECTS_DESC,
    first: int = 20,
    after: str | None = None,
    facet_limit: int = 50,
) -> SearchConnection:
    """Faceted search over the catalog's index (guests see rounded counts); each facet lists its top values."""
    _check_limits(info)
    if not 1 <= first <= 100:
        raise ValueError("first must be between 1 and 100")
    if not 1 <= facet_limit <= 1000:
        raise ValueError("facetLimit must be between 1 and 1000")
    chosen = filter or CollectionFilter()
    query = SearchQuery(
        modality=tuple(chosen.modality or ()),
        body_part=tuple(chosen.body_part or ()),
        manufacturer=tuple(chosen.manufacturer or ()),
        station=tuple(chosen.station or ()),
        min_subjects=chosen.min_subjects,
        max_subjects=chosen.max_subjects,
        text=chosen.text or "",
        sort=sort.value,
        first=first,
        after=after,
        facet_limit=facet_limit,
    )
    result = info.context.index.search(query)
    member = info.context.username is not None
    shown = (lambda value: value) if member else _for_guests
    nodes = [
        SearchHit(
            id=record.id,
            iri=record.iri,
            station=record.station,
            title=record.title,
            description=record.description,
            subjects=shown(record.subjects),
            studies=shown(record.studies),
            series=shown(record.series),
            instances=shown(record.instances),
            modalities=list(record.modality),
            body_parts=list(record.body_part),
            manufacturers=list(record.manufacturer),
        )
        for record in result.records
    ]
    facets = Facets(
        **{facet: [FacetValue(value=value, count=count) for value, count in result.facets[facet]] for facet in FACETS}
    )
    return SearchConnection(
        total_count=result.total,
        nodes=nodes,
        facets=facets,
        page_info=PageInfo(end_cursor=result.end_cursor, has_next_page=result.has_next_page),
    )


@strawberry.type
class Query:
    """The catalog's queries."""

    collections: list[Collection] = strawberry.field(
        resolver=resolve_collections,
        description="Collections matching every given filter (modality and body part case-insensitively).",
    )
    search: SearchConnection = strawberry.field(
        resolver=resolve_search, description="Faceted search with counts per filter, sorting and cursor paging."
    )


schema = strawberry.Schema(
    query=Query,
    # The same queries come again and again: parse and validate once. (strawberry's depth, alias and
    # token limiters add validation rules that defeat the validation cache, so the limits are
    # checked on the operation instead: see _check_limits.)
    extensions=[lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)],
)
