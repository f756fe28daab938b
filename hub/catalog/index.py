"""The catalog's search index: a columnar projection of the RDF store, held in memory.

SPARQL on the store answers a faceted search in hundreds of milliseconds at 100,000 collections;
this index answers it in milliseconds. The store stays the source of truth: the index is built
from it at start-up (:meth:`SearchIndex.from_store`) and every publication replaces one record
(:meth:`SearchIndex.upsert`), which swaps in a new immutable snapshot under a lock, so readers
never see half an update.

A snapshot holds numeric columns (subjects, studies, series, instances, typical ages; ``-1`` when
unknown or suppressed), and for each list facet (modality, body part, manufacturer, station,
disease, annotation type, data use) the values' codes in CSR form (``codes`` with the row of each
code in ``owners``), so filtering is a boolean mask and each facet's counts — with every *other*
filter applied, as a faceted interface expects — are one ``np.bincount``. Three more facets are
buckets of columns: subject-count ranges, age decades (a collection counts in every decade its
typical age range overlaps) and research purposes its DUO conditions permit (decided once per
distinct policy, not per row). Free text is an inverted index of title, description, keyword and
disease-label tokens.

Guests (``SearchQuery.guest``) filter, bucket and sort on subject counts rounded down to a
multiple of :data:`GUEST_STEP`, the same numbers they are shown, so a sweep of narrow
``min_subjects``/``max_subjects`` ranges learns nothing finer than the rounding.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyoxigraph as ox

from hub.catalog.duo import DUO_DS, DUO_GRU, DUO_HMB, DUO_MDS, is_purpose_permitted
from hub.catalog.guest import GUEST_STEP
from ontology import HEALTHDCATAP

__all__ = [
    "AGE_BANDS",
    "FACETS",
    "GUEST_STEP",
    "LIST_FACETS",
    "PURPOSES",
    "SUBJECT_BUCKETS",
    "CollectionRecord",
    "SearchIndex",
    "SearchQuery",
    "SearchResult",
    "disease_matches",
]

LIST_FACETS = ("modality", "body_part", "manufacturer", "station", "disease", "annotation", "data_use")
"""Facets whose values a collection lists (several per collection)."""
SUBJECT_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-49", 0, 49),
    ("50-99", 50, 99),
    ("100-499", 100, 499),
    ("500-999", 500, 999),
    ("1000+", 1000, None),
)
"""Subject-count ranges of the ``subjects`` facet (label, lowest, highest)."""
AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    *((f"{low}-{low + 9}", low, low + 9) for low in range(0, 90, 10)),
    ("90+", 90, None),
)
"""Decades of the ``age`` facet: a collection counts in each one its typical age range overlaps."""
PURPOSES = (DUO_GRU, DUO_HMB, DUO_MDS)
"""Research purposes of the ``purpose`` facet (plus DS, DUO:0000007, when the query names diseases)."""
FACETS = (*LIST_FACETS, "subjects", "age", "purpose")
_TY = "https://w3id.org/trainyard/ontology#"
_DCM = "http://dicom.nema.org/resources/ontology/DCM/"
_OBO = "http://purl.obolibrary.org/obo/"
_TOKEN = re.compile(r"[a-z0-9]+")
_SORTS = ("subjects_desc", "subjects_asc", "title", "modified_desc")


@dataclass(frozen=True)
class CollectionRecord:
    """What search needs of one collection (counts are ``None`` when suppressed)."""

    iri: str
    id: str
    station: str
    title: str
    description: str = ""
    subjects: int | None = None
    studies: int | None = None
    series: int | None = None
    instances: int | None = None
    modified: str = ""
    modality: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    manufacturer: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    disease: tuple[str, ...] = ()
    """Disease codes as ``SYSTEM:CODE`` (``ICD-10:C34.1``, ``SNOMED-CT:254637007``)."""
    disease_labels: tuple[str, ...] = ()
    """The label of each disease code, in the same order (``""`` when the station gave none)."""
    annotation: tuple[str, ...] = ()
    """Annotation types (the ty: concept's name: ``Segmentation``, ``BoundingBox``)."""
    data_use: tuple[str, ...] = ()
    """GA4GH DUO data-use conditions (``DUO:0000042``)."""
    min_age: int | None = None
    max_age: int | None = None


@dataclass(frozen=True)
class SearchQuery:
    """Filters (values within a facet are OR-ed, facets AND-ed), text, sort and page.

    ``disease`` matches a code exactly, without its system (``C34.1``) or as an ICD-10 category
    (``C34`` finds ``C34.1``). ``min_age``/``max_age`` keep collections whose typical age range
    overlaps the given one (collections without ages are left out). ``purpose`` keeps collections
    whose DUO conditions permit that research purpose (with ``purpose_diseases`` for disease-specific
    research, DUO:0000007). ``guest`` applies the anonymous view's rounding to subject counts.
    """

    modality: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    manufacturer: tuple[str, ...] = ()
    station: tuple[str, ...] = ()
    disease: tuple[str, ...] = ()
    annotation: tuple[str, ...] = ()
    data_use: tuple[str, ...] = ()
    min_subjects: int | None = None
    max_subjects: int | None = None
    min_age: int | None = None
    max_age: int | None = None
    purpose: str | None = None
    purpose_diseases: tuple[str, ...] = ()
    text: str = ""
    sort: str = "subjects_desc"
    first: int = 20
    after: str | None = None
    facet_limit: int = 50
    guest: bool = False
    facets: tuple[str, ...] | None = None
    """Which facets to count (``None``: all of :data:`FACETS`); the others come back empty."""


@dataclass(frozen=True)
class SearchResult:
    """One page of hits, the total, the facet counts and the cursor of the next page."""

    total: int
    records: list[CollectionRecord]
    facets: dict[str, list[tuple[str, int]]]
    end_cursor: str | None
    has_next_page: bool


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower()))


def _record_text(record: CollectionRecord) -> str:
    """What free text searches: title, description, id, keywords and disease labels."""
    return " ".join((record.title, record.description, record.id, *record.keywords, *record.disease_labels))


def _values(record: CollectionRecord, facet: str) -> tuple[str, ...]:
    return (record.station,) if facet == "station" else getattr(record, facet)


def _fold(facet: str, value: str) -> str:
    """How a facet's filter values compare: stations exactly, everything else case-insensitively."""
    return value if facet == "station" else value.upper()


def _disease_keys(code: str) -> set[str]:
    """What a collection's disease code answers to: ``ICD-10:C34.1`` → itself, ``C34.1``, ``ICD-10:C34``, ``C34``."""
    code = code.upper()
    system, _, notation = code.rpartition(":")
    keys = {code, notation}
    if system == "ICD-10" and "." in notation:
        category = notation.split(".", 1)[0]
        keys |= {category, f"{system}:{category}"}
    return keys


def disease_matches(wanted: str, code: str) -> bool:
    """Whether a disease filter value finds a collection's code (exact, without system, or ICD-10 category)."""
    return wanted.strip().upper() in _disease_keys(code)


@dataclass(frozen=True)
class _SortKeys:
    """What the sort orders are made of, one entry per row (kept so a publication patches them)."""

    iris: np.ndarray
    titles: np.ndarray
    modified: np.ndarray
    rank: np.ndarray
    """Each row's rank in IRI order (rows are in IRI order but for the collections appended since
    the last rebuild)."""

    @classmethod
    def build(cls, records: Sequence[CollectionRecord]) -> _SortKeys:
        iris = np.array([record.iri for record in records], dtype=object)
        return cls(
            iris=iris,
            titles=np.array([record.title.lower() for record in records], dtype=object),
            modified=np.array([record.modified for record in records], dtype=object),
            rank=np.argsort(np.argsort(iris, kind="stable"), kind="stable").astype(np.int64),
        )

    def appended(self, record: CollectionRecord) -> _SortKeys:
        place = int((self.iris < record.iri).sum())  # its rank; the ranks from there on move up one
        rank = np.where(self.rank >= place, self.rank + 1, self.rank)
        return _SortKeys(
            iris=np.append(self.iris, np.array([record.iri], dtype=object)),
            titles=np.append(self.titles, np.array([record.title.lower()], dtype=object)),
            modified=np.append(self.modified, np.array([record.modified], dtype=object)),
            rank=np.append(rank, np.int64(place)),
        )

    def replaced(self, row: int, record: CollectionRecord) -> _SortKeys:
        titles, modified = self.titles.copy(), self.modified.copy()
        titles[row], modified[row] = record.title.lower(), record.modified
        return _SortKeys(iris=self.iris, titles=titles, modified=modified, rank=self.rank)


def _subject_orders(keys: _SortKeys, subjects: np.ndarray) -> dict[str, np.ndarray]:
    return {"subjects_desc": np.lexsort((keys.rank, -subjects)), "subjects_asc": np.lexsort((keys.rank, subjects))}


def _orders(keys: _SortKeys, subjects: np.ndarray) -> dict[str, np.ndarray]:
    """Every sort order; ties go by IRI, as SPARQL's ``ORDER BY ?d``."""
    return {
        **_subject_orders(keys, subjects),
        "title": np.lexsort((keys.rank, keys.titles)),
        "modified_desc": np.lexsort((-keys.rank, keys.modified))[::-1],
    }


def _moved(order: np.ndarray, keys: _SortKeys, row: int, column: np.ndarray, descending: bool) -> np.ndarray:
    """``order`` (sorted on ``column``, ties by IRI) with ``row`` put where its current value belongs.

    Counting the rows that sort before it is one vectorised comparison; re-sorting 100,000 titles
    or dates at each publication took half a second.
    """
    others = order[order != row]
    values, value = column[others], column[row]
    before = (values > value) if descending else (values < value)
    before |= (values == value) & (keys.rank[others] < keys.rank[row])
    return np.insert(others, int(before.sum()), row)


def _patched_orders(
    old: dict[str, np.ndarray], keys: _SortKeys, subjects: np.ndarray, row: int
) -> dict[str, np.ndarray]:
    """The orders after ``row`` was added or changed: subject counts re-sorted (integers: milliseconds),
    titles and dates patched."""
    return {
        **_subject_orders(keys, subjects),
        "title": _moved(old["title"], keys, row, keys.titles, descending=False),
        "modified_desc": _moved(old["modified_desc"], keys, row, keys.modified, descending=True),
    }


def _with_row(rows: np.ndarray, row: int) -> np.ndarray:
    """A sorted posting list with ``row`` in it (a binary search and one insertion, not a set union)."""
    place = int(np.searchsorted(rows, row))
    if place < len(rows) and rows[place] == row:
        return rows
    return np.insert(rows, place, np.int32(row)).astype(np.int32, copy=False)


def _guest_subjects(subjects: np.ndarray) -> np.ndarray:
    return np.where(subjects >= 0, subjects - subjects % GUEST_STEP, -1)


def _policy_key(record: CollectionRecord) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (record.data_use, record.disease)


@dataclass
class _Snapshot:
    records: list[CollectionRecord]
    numbers: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    owners: dict[str, np.ndarray] = field(default_factory=dict)
    postings: dict[str, list[np.ndarray]] = field(default_factory=dict)
    lookup: dict[str, dict[str, int]] = field(default_factory=dict)
    text: dict[str, np.ndarray] = field(default_factory=dict)
    order: dict[str, np.ndarray] = field(default_factory=dict)
    keys: _SortKeys | None = None
    policies: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    policy: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    _exact: dict[str, dict[str, int]] = field(default_factory=dict)
    _cache: dict[object, np.ndarray] = field(default_factory=dict)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, records: Sequence[CollectionRecord]) -> _Snapshot:
        snapshot = cls(records=list(records))
        for name in _NUMBERS:
            snapshot.numbers[name] = np.array(
                [getattr(record, name) if getattr(record, name) is not None else -1 for record in records],
                dtype=np.int64,
            )
        keys = [_policy_key(record) for record in records]
        snapshot.policies = sorted(set(keys))
        where = {key: code for code, key in enumerate(snapshot.policies)}
        snapshot.policy = np.fromiter((where[key] for key in keys), dtype=np.int32, count=len(keys))
        for facet in LIST_FACETS:
            lists = [_values(record, facet) for record in records]
            vocabulary = sorted({value for values in lists for value in values})
            position = {value: code for code, value in enumerate(vocabulary)}
            snapshot.values[facet] = vocabulary
            snapshot.codes[facet] = np.fromiter(
                (position[value] for values in lists for value in values), dtype=np.int32
            )
            snapshot.owners[facet] = np.fromiter(
                (row for row, values in enumerate(lists) for _ in values), dtype=np.int32
            )
            by_code = np.argsort(snapshot.codes[facet], kind="stable")
            bounds = np.searchsorted(snapshot.codes[facet][by_code], np.arange(len(vocabulary) + 1))
            rows = snapshot.owners[facet][by_code]
            snapshot.postings[facet] = [rows[bounds[code] : bounds[code + 1]] for code in range(len(vocabulary))]
            snapshot.lookup[facet] = {_fold(facet, value): code for code, value in enumerate(vocabulary)}
        postings: dict[str, list[int]] = {}
        for row, record in enumerate(records):
            for token in _tokens(_record_text(record)):
                postings.setdefault(token, []).append(row)
        snapshot.text = {token: np.array(rows, dtype=np.int32) for token, rows in postings.items()}
        snapshot.keys = _SortKeys.build(snapshot.records)
        snapshot.order = _orders(snapshot.keys, snapshot.numbers["subjects"])
        return snapshot

    def replaced(self, record: CollectionRecord) -> _Snapshot | None:
        """A copy with one existing record replaced, or ``None`` when a full rebuild is needed."""
        found = np.flatnonzero(self.sort_keys.iris == record.iri)
        if not len(found):
            return None
        row = int(found[0])
        old = self.records[row]
        new_values = {facet: _values(record, facet) for facet in LIST_FACETS}
        if any(value not in self.lookup_exact(facet) for facet, values in new_values.items() for value in values):
            return None  # a value the vocabulary lacks: codes would shift
        key = _policy_key(record)
        if key not in self.policies:
            return None
        copy = _Snapshot(records=list(self.records))
        copy.records[row] = record
        copy.values, copy.lookup, copy.policies = self.values, self.lookup, self.policies
        copy.policy = self.policy.copy()
        copy.policy[row] = self.policies.index(key)
        for name, column in self.numbers.items():
            copy.numbers[name] = column.copy()
            value = getattr(record, name)
            copy.numbers[name][row] = value if value is not None else -1
        for facet in LIST_FACETS:
            keep = self.owners[facet] != row
            codes = np.array([self.lookup_exact(facet)[value] for value in new_values[facet]], dtype=np.int32)
            copy.codes[facet] = np.concatenate([self.codes[facet][keep], codes])
            copy.owners[facet] = np.concatenate([self.owners[facet][keep], np.full(len(codes), row, dtype=np.int32)])
            postings = list(self.postings[facet])
            for value in _values(old, facet):
                code = self.lookup_exact(facet)[value]
                postings[code] = postings[code][postings[code] != row]
            for code in codes:
                postings[code] = _with_row(postings[code], row)
            copy.postings[facet] = postings
        copy.text = dict(self.text)
        for token in _tokens(_record_text(old)):
            copy.text[token] = copy.text[token][copy.text[token] != row]
        for token in _tokens(_record_text(record)):
            copy.text[token] = _with_row(copy.text.get(token, np.empty(0, dtype=np.int32)), row)
        copy.order, copy.keys = dict(self.order), self.keys
        if (old.subjects, old.title, old.modified) != (record.subjects, record.title, record.modified):
            copy.keys = self.sort_keys.replaced(row, record)
            copy.order = _patched_orders(self.order, copy.keys, copy.numbers["subjects"], row)
        return copy

    def appended(self, record: CollectionRecord) -> _Snapshot | None:
        """A copy with one new record added as the last row, or ``None`` when a full rebuild is needed
        (a facet value or data-use policy the vocabulary lacks: codes would shift)."""
        new_values = {facet: _values(record, facet) for facet in LIST_FACETS}
        if any(value not in self.lookup_exact(facet) for facet, values in new_values.items() for value in values):
            return None
        key = _policy_key(record)
        if key not in self.policies:
            return None
        row = len(self.records)
        copy = _Snapshot(records=[*self.records, record])
        copy.values, copy.lookup, copy.policies = self.values, self.lookup, self.policies
        copy.policy = np.append(self.policy, np.int32(self.policies.index(key))).astype(np.int32)
        for name, column in self.numbers.items():
            value = getattr(record, name)
            copy.numbers[name] = np.append(column, value if value is not None else -1).astype(np.int64)
        for facet in LIST_FACETS:
            codes = np.array([self.lookup_exact(facet)[value] for value in new_values[facet]], dtype=np.int32)
            copy.codes[facet] = np.concatenate([self.codes[facet], codes])
            copy.owners[facet] = np.concatenate([self.owners[facet], np.full(len(codes), row, dtype=np.int32)])
            postings = list(self.postings[facet])
            for code in codes:
                postings[code] = np.append(postings[code], np.int32(row)).astype(np.int32)  # the largest row: sorted
            copy.postings[facet] = postings
        copy.text = dict(self.text)
        for token in _tokens(_record_text(record)):
            copy.text[token] = np.append(copy.text.get(token, np.empty(0, dtype=np.int32)), np.int32(row)).astype(
                np.int32
            )
        copy.keys = self.sort_keys.appended(record)
        order = {name: np.append(rows, np.int32(row)) for name, rows in self.order.items()}  # then moved
        copy.order = _patched_orders(order, copy.keys, copy.numbers["subjects"], row)
        return copy

    def lookup_exact(self, facet: str) -> dict[str, int]:
        """Value → code, exactly as spelt."""
        cached = self._exact.get(facet)
        if cached is None:
            cached = self._exact[facet] = {value: code for code, value in enumerate(self.values[facet])}
        return cached

    def cached(self, key: object, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """A derived array of this (immutable) snapshot, computed once."""
        found = self._cache.get(key)
        if found is None:
            found = compute()
            with self._cache_lock:
                self._cache[key] = found
        return found

    def subjects(self, guest: bool) -> np.ndarray:
        """Subject counts as this caller may filter on them (guests: rounded)."""
        exact = self.numbers["subjects"]
        return self.cached("guest-subjects", lambda: _guest_subjects(exact)) if guest else exact

    @property
    def sort_keys(self) -> _SortKeys:
        if self.keys is None:
            raise RuntimeError("a snapshot is built before it is searched")
        return self.keys

    def sort_order(self, sort: str, guest: bool) -> np.ndarray:
        if guest and sort in ("subjects_desc", "subjects_asc"):
            return self.cached(
                ("guest-order", sort), lambda: _subject_orders(self.sort_keys, self.subjects(True))[sort]
            )
        return self.order[sort]

    def facet_mask(self, facet: str, wanted: Sequence[str]) -> np.ndarray | None:
        if not wanted:
            return None
        mask = np.zeros(len(self.records), dtype=bool)
        for value in wanted:
            if facet == "disease":
                codes = [code for code, known in enumerate(self.values[facet]) if disease_matches(value, known)]
            else:
                code = self.lookup[facet].get(_fold(facet, value))
                codes = [] if code is None else [code]
            for code in codes:
                mask[self.postings[facet][code]] = True
        return mask

    def purpose_mask(self, purpose: str, diseases: Sequence[str]) -> np.ndarray:
        """Rows whose DUO conditions permit ``purpose`` (one decision per distinct policy)."""

        def compute() -> np.ndarray:
            wanted = [code.strip().upper() for code in diseases]
            permitted = np.fromiter(
                (
                    is_purpose_permitted(
                        conditions,
                        purpose,
                        purpose_diseases=wanted,
                        collection_diseases={key for code in codes for key in _disease_keys(code)},
                    )
                    for conditions, codes in self.policies
                ),
                dtype=bool,
                count=len(self.policies),
            )
            return permitted[self.policy] if len(self.policy) else np.zeros(0, dtype=bool)

        return self.cached(("purpose", purpose, tuple(sorted(diseases))), compute)


_NUMBERS = ("subjects", "studies", "series", "instances", "min_age", "max_age")


def _range_mask(values: np.ndarray, low: int | None, high: int | None) -> np.ndarray | None:
    """Rows whose known value lies in [low, high] (either end open); ``None`` without bounds."""
    if low is None and high is None:
        return None
    mask = values >= (low if low is not None else 0)
    if high is not None:
        mask &= values <= high
    return mask


def _age_mask(snapshot: _Snapshot, low: int | None, high: int | None) -> np.ndarray | None:
    """Rows whose typical age range [min_age, max_age] overlaps [low, high]; unknown ages are left out."""
    if low is None and high is None:
        return None
    lowest, highest = snapshot.numbers["min_age"], snapshot.numbers["max_age"]
    mask = (lowest >= 0) & (highest >= 0)
    if low is not None:
        mask &= highest >= low
    if high is not None:
        mask &= lowest <= high
    return mask


def _top(values: Sequence[str], counts: np.ndarray, limit: int) -> list[tuple[str, int]]:
    """Most frequent first, ties by value (vocabularies are sorted, so by code); the top values only."""
    present = np.flatnonzero(counts)
    top = present[np.lexsort((present, -counts[present]))][:limit]
    return [(values[code], int(counts[code])) for code in top]


def _bucket_counts(
    selected: np.ndarray, values: np.ndarray, buckets: Sequence[tuple[str, int, int | None]]
) -> list[tuple[str, int]]:
    """How many selected rows fall in each bucket (in bucket order, empty ones left out)."""
    chosen = values[selected]
    counts = []
    for label, low, high in buckets:
        inside = chosen >= low
        if high is not None:
            inside &= chosen <= high
        count = int(inside.sum())
        if count:
            counts.append((label, count))
    return counts


def _age_counts(snapshot: _Snapshot, selected: np.ndarray) -> list[tuple[str, int]]:
    lowest, highest = snapshot.numbers["min_age"][selected], snapshot.numbers["max_age"][selected]
    known = (lowest >= 0) & (highest >= 0)
    counts = []
    for label, low, high in AGE_BANDS:
        overlap = known & (highest >= low)
        if high is not None:
            overlap &= lowest <= high
        count = int(overlap.sum())
        if count:
            counts.append((label, count))
    return counts


class SearchIndex:
    """The searchable projection of the catalog (thread-safe; readers use immutable snapshots)."""

    def __init__(self, records: Iterable[CollectionRecord] = ()) -> None:
        self._records: dict[str, CollectionRecord] = {record.iri: record for record in records}
        self._lock = threading.Lock()
        self._snapshot = _Snapshot.build(sorted(self._records.values(), key=lambda record: record.iri))

    def __repr__(self) -> str:
        return f"SearchIndex(collections={len(self)})"

    def __len__(self) -> int:
        return len(self._snapshot.records)

    @classmethod
    def from_store(cls, store: ox.Store) -> SearchIndex:
        """Build the index from every collection graph in the store."""
        return cls(records_from_store(store))

    def upsert(self, record: CollectionRecord) -> None:
        """Add or replace one collection; searches see it as soon as this returns.

        A republished or new collection whose facet values the index already knows is patched into
        a copy of the snapshot (milliseconds at 100,000 collections); anything else rebuilds it.
        """
        with self._lock:
            known = record.iri in self._records
            self._records[record.iri] = record
            snapshot = self._snapshot.replaced(record) if known else self._snapshot.appended(record)
            if snapshot is None:
                snapshot = _Snapshot.build(sorted(self._records.values(), key=lambda item: item.iri))
            self._snapshot = snapshot

    def search(self, query: SearchQuery) -> SearchResult:
        """Run one faceted search on the current snapshot."""
        snapshot = self._snapshot
        if query.sort not in _SORTS:
            raise ValueError(f"sort must be one of {', '.join(_SORTS)}")
        size = len(snapshot.records)
        base = np.ones(size, dtype=bool)
        for token in _tokens(query.text):
            rows = snapshot.text.get(token)
            token_mask = np.zeros(size, dtype=bool)
            if rows is not None:
                token_mask[rows] = True
            base &= token_mask
        subjects = snapshot.subjects(query.guest)
        masks: dict[str, np.ndarray | None] = {
            facet: snapshot.facet_mask(facet, getattr(query, facet)) for facet in LIST_FACETS
        }
        masks["subjects"] = _range_mask(subjects, query.min_subjects, query.max_subjects)
        masks["age"] = _age_mask(snapshot, query.min_age, query.max_age)
        masks["purpose"] = snapshot.purpose_mask(query.purpose, query.purpose_diseases) if query.purpose else None
        selected = base.copy()
        for mask in masks.values():
            if mask is not None:
                selected &= mask
        facets: dict[str, list[tuple[str, int]]] = {facet: [] for facet in FACETS}
        wanted = FACETS if query.facets is None else query.facets
        unknown = set(wanted) - set(FACETS)
        if unknown:
            raise ValueError(f"no facet {sorted(unknown)[0]!r}; choose from {', '.join(FACETS)}")
        for facet in wanted:
            others = base.copy()
            for name, mask in masks.items():
                if name != facet and mask is not None:
                    others &= mask
            if facet == "subjects":
                facets[facet] = _bucket_counts(others, subjects, SUBJECT_BUCKETS)
            elif facet == "age":
                facets[facet] = _age_counts(snapshot, others)
            elif facet == "purpose":
                purposes = (*PURPOSES, DUO_DS) if query.purpose_diseases else PURPOSES
                counted = [
                    (purpose, int((others & snapshot.purpose_mask(purpose, query.purpose_diseases)).sum()))
                    for purpose in purposes
                ]
                facets[facet] = [(purpose, count) for purpose, count in counted if count]
            else:
                counts = np.bincount(
                    snapshot.codes[facet][others[snapshot.owners[facet]]], minlength=len(snapshot.values[facet])
                )
                facets[facet] = _top(snapshot.values[facet], counts, query.facet_limit)
        order = snapshot.sort_order(query.sort, query.guest)
        ranked = order[selected[order]]
        offset = _decode_cursor(query.after)
        page = ranked[offset : offset + query.first]
        end = offset + len(page)
        return SearchResult(
            total=int(selected.sum()),
            records=[snapshot.records[row] for row in page],
            facets=facets,
            end_cursor=_encode_cursor(end) if len(page) else query.after,
            has_next_page=end < len(ranked),
        )

    def get(self, collection_id: str) -> CollectionRecord | None:
        """The record of one collection by its id (``station/collection``) or IRI."""
        snapshot = self._snapshot
        found = self._records.get(collection_id)
        if found is not None:
            return found
        by_id = snapshot.cached("by-id", lambda: np.array([record.id for record in snapshot.records], dtype=object))
        rows = np.flatnonzero(by_id == collection_id)
        return snapshot.records[int(rows[0])] if len(rows) else None

    def records(self) -> list[CollectionRecord]:
        """Every record, in IRI order (the current snapshot)."""
        return list(self._snapshot.records)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = int(json.loads(base64.urlsafe_b64decode(padded))["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("the cursor is not one this catalog gave out") from exc
    if offset < 0:
        raise ValueError("the cursor is not one this catalog gave out")
    return offset


_RECORDS_QUERY = f"""
PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX dct: <http://purl.org/dc/terms/>
PREFIX ty: <{_TY}>
PREFIX health: <{HEALTHDCATAP}>
SELECT ?d ?station ?title ?description ?subjects ?studies ?series ?instances ?issued ?minAge ?maxAge WHERE {{
  GRAPH ?d {{
    ?d a dcat:Dataset ; ty:station ?station ; dct:title ?title .
    OPTIONAL {{ ?d health:minTypicalAge ?minAge }}
    OPTIONAL {{ ?d health:maxTypicalAge ?maxAge }}
    OPTIONAL {{ ?d dct:description ?description }}
    OPTIONAL {{ ?d ty:numberOfSubjects ?subjects }}
    OPTIONAL {{ ?d ty:numberOfStudies ?studies }}
    OPTIONAL {{ ?d ty:numberOfSeries ?series }}
    OPTIONAL {{ ?d ty:numberOfInstances ?instances }}
    OPTIONAL {{ ?d dct:issued ?issued }}
  }}
}}
"""
_VALUES_QUERY = "SELECT ?d ?value WHERE {{ GRAPH ?d {{ ?d <{predicate}> ?value }} }}"
"""One list facet's values: one query per property reads each from its index (a single query with
``?d ?p ?value`` and a filter on ``?p`` scans every triple of every graph)."""
_DISEASE_QUERY = f"""
PREFIX ty: <{_TY}>
PREFIX health: <{HEALTHDCATAP}>
SELECT ?d ?system ?notation ?label WHERE {{
  GRAPH ?d {{
    ?d health:hasCodeValues ?code . ?code ty:codingSystem ?system ; ty:notation ?notation .
    OPTIONAL {{ ?code ty:label ?label }}
  }}
}}
"""
_DATA_USE_QUERY = """
PREFIX odrl: <http://www.w3.org/ns/odrl/2/>
SELECT ?d ?condition WHERE {
  GRAPH ?d { ?d odrl:hasPolicy/odrl:permission/odrl:constraint/odrl:rightOperand ?condition }
}
"""


def _int(term: object) -> int | None:
    return int(term.value) if isinstance(term, ox.Literal) else None


def records_from_store(store: ox.Store, graphs: Sequence[str] | None = None) -> list[CollectionRecord]:
    """Project collection graphs (all, or ``graphs``) of the store into records."""
    from hub.catalog.codes import body_part_notation  # the code list: SNOMED CT IRI → defined term

    named: list[ox.NamedNode | ox.BlankNode] | None = (
        [ox.NamedNode(iri) for iri in graphs] if graphs is not None else None
    )
    facets: dict[str, dict[str, list[str]]] = {
        name: {} for name in ("modality", "body_part", "manufacturer", "keywords", "annotation", "data_use")
    }
    labels: dict[str, dict[str, str]] = {}
    for row in store.query(_DISEASE_QUERY, named_graphs=named):  # type: ignore[union-attr]
        code = f"{row['system'].value}:{row['notation'].value}"
        known = labels.setdefault(row["d"].value, {})
        known[code] = known.get(code) or (row["label"].value if row["label"] is not None else "")
    data_use = facets["data_use"]
    for row in store.query(_DATA_USE_QUERY, named_graphs=named):  # type: ignore[union-attr]
        condition = row["condition"].value
        if condition.startswith(_OBO + "DUO_"):
            data_use.setdefault(row["d"].value, []).append(condition.removeprefix(_OBO).replace("_", ":"))
    readers: tuple[tuple[str, str, Callable[[str], str]], ...] = (
        ("modality", _TY + "modality", lambda value: value.removeprefix(_DCM)),
        ("body_part", _TY + "bodyPart", body_part_notation),
        ("body_part", _TY + "bodyPartText", str),
        ("manufacturer", _TY + "manufacturer", str),
        ("keywords", "http://www.w3.org/ns/dcat#keyword", str),
        ("annotation", _TY + "annotationType", lambda value: value.removeprefix(_TY)),
    )
    for name, predicate, read in readers:
        found = facets[name]
        for row in store.query(_VALUES_QUERY.format(predicate=predicate), named_graphs=named):  # type: ignore[union-attr]
            found.setdefault(row[0].value, []).append(read(row[1].value))

    def values(name: str, iri: str) -> tuple[str, ...]:
        return tuple(sorted(set(facets[name].get(iri, ()))))

    records = []
    for row in store.query(_RECORDS_QUERY, named_graphs=named):  # type: ignore[union-attr]
        iri = row["d"].value
        station = row["station"].value
        records.append(
            CollectionRecord(
                iri=iri,
                id=f"{station}/{iri.rstrip('/').rsplit('/', 1)[-1]}",
                station=station,
                title=row["title"].value,
                description=row["description"].value if row["description"] is not None else "",
                subjects=_int(row["subjects"]),
                studies=_int(row["studies"]),
                series=_int(row["series"]),
                instances=_int(row["instances"]),
                modified=row["issued"].value if row["issued"] is not None else "",
                modality=values("modality", iri),
                body_part=values("body_part", iri),
                manufacturer=values("manufacturer", iri),
                keywords=values("keywords", iri),
                disease=tuple(sorted(labels.get(iri, {}))),
                disease_labels=tuple(label for _, label in sorted(labels.get(iri, {}).items())),
                annotation=values("annotation", iri),
                data_use=values("data_use", iri),
                min_age=_int(row["minAge"]),
                max_age=_int(row["maxAge"]),
            )
        )
    return records
