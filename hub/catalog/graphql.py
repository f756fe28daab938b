"""The catalog as GraphQL: faceted ``search``, ``collection(id)`` details, ``stations``.

Guests (no token) may search and read details: every count they see — hits, breakdowns,
subject-range filters and sorting — is rounded down to a multiple of ``GUEST_STEP``; published
counts are already 0 or at least k, so nothing ever shows a count between 1 and k-1. Members see
the published counts. ``collections`` is the older members-only list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from enum import Enum

import anyio
import strawberry
from graphql import SelectionSetNode
from sqlmodel import Session
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.fastapi import BaseContext
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from hub import crud
from hub.catalog.filters import summary_matches
from hub.catalog.index import FACETS, GUEST_STEP, CollectionRecord, SearchIndex, SearchQuery
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
    disease: list[str] | None = strawberry.field(
        default=None, description="disease codes: ICD-10:C34.1, C34.1, or an ICD-10 category such as C34"
    )
    annotation: list[str] | None = strawberry.field(default=None, description="annotation types, e.g. Segmentation")
    data_use: list[str] | None = strawberry.field(default=None, description="DUO data-use conditions, e.g. DUO:0000042")
    min_subjects: int | None = None
    max_subjects: int | None = None
    min_age: int | None = strawberry.field(default=None, description="typical age range overlapping [minAge, maxAge]")
    max_age: int | None = None
    purpose: str | None = strawberry.field(
        default=None, description="my research purpose as a DUO code; keeps collections whose conditions permit it"
    )
    purpose_diseases: list[str] | None = strawberry.field(
        default=None, description="the diseases of a disease-specific purpose (DUO:0000007)"
    )
    text: str | None = strawberry.field(default=None, description="words of the title, description or keywords")


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
    disease: list[FacetValue]
    annotation: list[FacetValue]
    data_use: list[FacetValue]
    subjects: list[FacetValue] = strawberry.field(description="subject-count ranges: 0-49, 50-99, ... 1000+")
    age: list[FacetValue] = strawberry.field(description="age decades the collections' typical ages overlap")
    purpose: list[FacetValue] = strawberry.field(description="research purposes (DUO) the collections permit")


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
    diseases: list[str]
    annotations: list[str]
    data_use: list[str]
    min_age: int | None
    max_age: int | None


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


def _for_guests(value: int | None) -> int | None:
    """Guests see counts rounded down to a multiple of 10 (published counts are 0 or at least k)."""
    return None if value is None else value - value % GUEST_STEP


def _exact(value: int | None) -> int | None:
    return value


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
    for name, low, high in (
        ("subjects", chosen.min_subjects, chosen.max_subjects),
        ("age", chosen.min_age, chosen.max_age),
    ):
        if (low is not None and low < 0) or (high is not None and high < 0):
            raise ValueError(f"{name} bounds cannot be negative")
        if low is not None and high is not None and low > high:
            raise ValueError(f"min {name} ({low}) is above max {name} ({high})")
    if chosen.purpose is not None and not re.fullmatch(r"DUO:[0-9]{7}", chosen.purpose):
        raise ValueError(f"purpose must be a DUO code such as DUO:0000006, not {chosen.purpose!r}")
    member = info.context.username is not None
    query = SearchQuery(
        modality=tuple(chosen.modality or ()),
        body_part=tuple(chosen.body_part or ()),
        manufacturer=tuple(chosen.manufacturer or ()),
        station=tuple(chosen.station or ()),
        disease=tuple(chosen.disease or ()),
        annotation=tuple(chosen.annotation or ()),
        data_use=tuple(chosen.data_use or ()),
        min_subjects=chosen.min_subjects,
        max_subjects=chosen.max_subjects,
        min_age=chosen.min_age,
        max_age=chosen.max_age,
        purpose=chosen.purpose,
        purpose_diseases=tuple(chosen.purpose_diseases or ()),
        text=chosen.text or "",
        sort=sort.value,
        first=first,
        after=after,
        facet_limit=facet_limit,
        guest=not member,
    )
    result = info.context.index.search(replace(query, facets=_requested_facets(info)))
    shown = _exact if member else _for_guests
    nodes = [_hit(record, shown) for record in result.records]
    facets = Facets(
        **{facet: [FacetValue(value=value, count=count) for value, count in result.facets[facet]] for facet in FACETS}
    )
    return SearchConnection(
        total_count=result.total,
        nodes=nodes,
        facets=facets,
        page_info=PageInfo(end_cursor=result.end_cursor, has_next_page=result.has_next_page),
    )


_FACET_FIELDS = {
    "modality": "modality",
    "bodyPart": "body_part",
    "manufacturer": "manufacturer",
    "station": "station",
    "disease": "disease",
    "annotation": "annotation",
    "dataUse": "data_use",
    "subjects": "subjects",
    "age": "age",
    "purpose": "purpose",
}


def _requested_facets(info: Info[CatalogContext, None]) -> tuple[str, ...] | None:
    """The facets the query selects, so only those are counted (``None``: count all, e.g. with fragments)."""
    for field in info.selected_fields:
        for selection in field.selections:
            if not isinstance(selection, SelectedField):
                return None
            if selection.name == "facets":
                names = []
                for inner in selection.selections:
                    if not isinstance(inner, SelectedField) or inner.name not in _FACET_FIELDS:
                        return None
                    names.append(_FACET_FIELDS[inner.name])
                return tuple(names)
    return ()


def _hit(record: CollectionRecord, shown: Callable[[int | None], int | None]) -> SearchHit:
    return SearchHit(
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
        diseases=list(record.disease),
        annotations=list(record.annotation),
        data_use=list(record.data_use),
        min_age=record.min_age,
        max_age=record.max_age,
    )


@strawberry.type(description="A disease the collection is about, as a code of a coding system.")
class Disease:
    """One disease code."""

    code: str = strawberry.field(description="SYSTEM:CODE, e.g. ICD-10:C34.1")
    system: str
    notation: str
    label: str


@strawberry.type(description="An acquisition parameter's 5th, 50th and 95th percentiles over the subjects.")
class AcquisitionRange:
    """A disclosure-safe range of one parameter (slice thickness, kVp, field strength)."""

    parameter: str
    low: float
    median: float
    high: float
    unit: str
    subjects: int | None


@strawberry.type(description="The share of series carrying one header field.")
class FieldCoverage:
    """How complete one field is."""

    field: str
    percent: float


@strawberry.type(description="Everything the catalog knows about one collection (counts rounded for guests).")
class CollectionDetail:
    """A collection's details page."""

    id: str
    iri: str
    station: str
    collection: str
    title: str
    description: str
    published_at: str
    disclosure_threshold: int
    subjects: int | None
    studies: int | None
    series: int | None
    instances: int | None
    modalities: list[ValueCount]
    body_parts: list[ValueCount]
    manufacturers: list[ValueCount]
    sexes: list[ValueCount]
    age_bands: list[ValueCount]
    min_age: int | None
    max_age: int | None
    quality_flags: list[ValueCount] = strawberry.field(description="series per quality flag")
    coverage: list[FieldCoverage]
    acquisition_ranges: list[AcquisitionRange]
    diseases: list[Disease]
    annotations: list[str]
    data_use: list[str]
    keywords: list[str]


def _shown_counts(counts: dict[str, int | None], shown: Callable[[int | None], int | None]) -> list[ValueCount]:
    return [ValueCount(value=value, count=shown(count)) for value, count in sorted(counts.items())]


def _detail(row: CollectionRow, record: CollectionRecord | None, member: bool) -> CollectionDetail:
    summary = CollectionSummary.model_validate(row.summary)
    shown = _exact if member else _for_guests
    diseases = []
    if record is not None:
        for code, label in zip(record.disease, record.disease_labels or ("",) * len(record.disease), strict=False):
            system, _, notation = code.rpartition(":")
            diseases.append(Disease(code=code, system=system, notation=notation, label=label))
    return CollectionDetail(
        id=row.id,
        iri=row.graph_iri,
        station=row.station_id,
        collection=row.collection,
        title=row.title,
        description=row.description,
        published_at=row.published_at.isoformat(),
        disclosure_threshold=summary.k,
        subjects=shown(summary.subjects),
        studies=shown(summary.studies),
        series=shown(summary.series),
        instances=shown(summary.instances),
        modalities=_shown_counts(summary.modalities, shown),
        body_parts=_shown_counts(summary.body_parts, shown),
        manufacturers=_shown_counts(summary.manufacturers, shown),
        sexes=_shown_counts(summary.sexes, shown),
        age_bands=_shown_counts(summary.age_bands, shown),
        min_age=summary.min_typical_age,
        max_age=summary.max_typical_age,
        quality_flags=_shown_counts(summary.quality, shown),
        coverage=[FieldCoverage(field=name, percent=value) for name, value in sorted(summary.coverage.items())],
        acquisition_ranges=[
            AcquisitionRange(
                parameter=name,
                low=value.low,
                median=value.median,
                high=value.high,
                unit=value.unit,
                subjects=shown(value.subjects),
            )
            for name, value in sorted(summary.ranges.items())
        ],
        diseases=diseases,
        annotations=list(record.annotation) if record else [],
        data_use=list(record.data_use) if record else [],
        keywords=list(record.keywords) if record else [],
    )


def _load_detail(context: CatalogContext, collection_id: str) -> CollectionDetail | None:
    with context.open_session() as session:
        row = crud.get_collection(session=session, collection_id=collection_id)
        if row is None:
            return None
        return _detail(row, context.index.get(row.graph_iri), context.username is not None)


async def resolve_collection(info: Info[CatalogContext, None], id: str) -> CollectionDetail | None:
    """One collection's details by id (``station/collection``); null when there is none."""
    _check_limits(info)
    return await anyio.to_thread.run_sync(_load_detail, info.context, id)


@strawberry.type(description="A station of the federation and what it publishes.")
class StationInfo:
    """One station (counts rounded for guests)."""

    id: str
    enrolled_at: str
    last_seen_at: str | None = strawberry.field(description="members only; null for guests")
    collections: int
    subjects: int = strawberry.field(description="the sum of its collections' published subject counts")
    modalities: list[str]


def _load_stations(context: CatalogContext) -> list[StationInfo]:
    member = context.username is not None
    per_station: dict[str, list[CollectionRecord]] = {}
    for record in context.index.records():
        per_station.setdefault(record.station, []).append(record)
    with context.open_session() as session:
        rows = crud.list_stations(session=session)
    found = []
    for row in rows:
        records = per_station.get(row.id, [])
        subjects = sum(record.subjects or 0 for record in records)
        found.append(
            StationInfo(
                id=row.id,
                enrolled_at=row.enrolled_at.isoformat(),
                last_seen_at=row.last_seen_at.isoformat() if member and row.last_seen_at else None,
                collections=len(records),
                subjects=subjects if member else subjects - subjects % GUEST_STEP,
                modalities=sorted({value for record in records for value in record.modality}),
            )
        )
    return found


async def resolve_stations(info: Info[CatalogContext, None]) -> list[StationInfo]:
    """Every enrolled station with its collection count and (rounded for guests) subjects."""
    _check_limits(info)
    return await anyio.to_thread.run_sync(_load_stations, info.context)


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
    collection: CollectionDetail | None = strawberry.field(
        resolver=resolve_collection, description="One collection's details by id (station/collection)."
    )
    stations: list[StationInfo] = strawberry.field(
        resolver=resolve_stations, description="The federation's stations and what they publish."
    )


schema = strawberry.Schema(
    query=Query,
    # The same queries come again and again: parse and validate once. (strawberry's depth, alias and
    # token limiters add validation rules that defeat the validation cache, so the limits are
    # checked on the operation instead: see _check_limits.)
    extensions=[lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)],
)
