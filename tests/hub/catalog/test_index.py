"""The columnar search index: filters, facets with the other filters applied, sorting, paging, updates."""

from datetime import UTC, datetime

import pytest

from hub.catalog.index import CollectionRecord, SearchIndex, SearchQuery, records_from_store
from hub.catalog.records import dataset_iri, distribution_triples
from hub.catalog.store import CatalogStore
from protocol import CollectionSummary
from station.catalog import collection_to_turtle


def rec(
    name: str, station: str, subjects: int | None, modality: tuple[str, ...], part: tuple[str, ...] = ()
) -> CollectionRecord:
    return CollectionRecord(
        iri=f"http://hub.test/dataset/{station}/{name}",
        id=f"{station}/{name}",
        station=station,
        title=f"{name} collection",
        description=f"{' '.join(modality)} of the {' '.join(part).lower()}",
        subjects=subjects,
        modified=f"2026-01-{subjects or 1:02d}",
        modality=modality,
        body_part=part,
        manufacturer=("ACME",),
    )


@pytest.fixture
def index() -> SearchIndex:
    return SearchIndex(
        [
            rec("a", "north", 10, ("CT",), ("CHEST",)),
            rec("b", "north", 25, ("MR",), ("HEAD",)),
            rec("c", "south", 7, ("CT", "MR"), ("CHEST", "ABDOMEN")),
            rec("d", "south", None, ("PT",), ("CHEST",)),
        ]
    )


def ids(result: object) -> list[str]:
    return [record.id for record in result.records]  # type: ignore[attr-defined]


def test_filters_and_and_or(index: SearchIndex) -> None:
    assert ids(index.search(SearchQuery(modality=("CT",)))) == ["north/a", "south/c"]
    assert ids(index.search(SearchQuery(modality=("CT", "PT"), station=("south",)))) == ["south/c", "south/d"]
    assert ids(index.search(SearchQuery(min_subjects=8))) == ["north/b", "north/a"]
    assert ids(index.search(SearchQuery(max_subjects=9))) == ["south/c"]  # suppressed counts are unknown
    assert ids(index.search(SearchQuery(modality=("ct",), body_part=("abdomen",)))) == ["south/c"]
    assert ids(index.search(SearchQuery(text="head MR"))) == ["north/b"]


def test_facets_count_with_the_other_filters_applied(index: SearchIndex) -> None:
    result = index.search(SearchQuery(modality=("CT",), station=("south",)))

    assert dict(result.facets["modality"]) == {"CT": 1, "MR": 1, "PT": 1}  # the station filter only
    assert dict(result.facets["station"]) == {"north": 1, "south": 1}  # the modality filter only
    assert dict(result.facets["body_part"]) == {"CHEST": 1, "ABDOMEN": 1}  # both filters
    assert result.total == 1


def test_sorting_and_cursor_pagination(index: SearchIndex) -> None:
    first = index.search(SearchQuery(first=2))
    second = index.search(SearchQuery(first=2, after=first.end_cursor))
    by_title = index.search(SearchQuery(sort="title"))

    assert ids(first) == ["north/b", "north/a"] and first.has_next_page
    assert ids(second) == ["south/c", "south/d"] and not second.has_next_page
    assert ids(by_title) == ["north/a", "north/b", "south/c", "south/d"]
    with pytest.raises(ValueError, match="cursor"):
        index.search(SearchQuery(after="not-a-cursor"))
    with pytest.raises(ValueError, match="sort"):
        index.search(SearchQuery(sort="random"))


def test_upsert_is_visible_at_once(index: SearchIndex) -> None:
    index.upsert(rec("a", "north", 99, ("US",)))
    index.upsert(rec("e", "east", 12, ("CT",)))

    assert ids(index.search(SearchQuery(first=1))) == ["north/a"]
    assert len(index) == 5
    assert dict(index.search(SearchQuery()).facets["modality"])["US"] == 1


def test_records_come_from_the_store() -> None:
    store = CatalogStore()
    summary = CollectionSummary(
        k=5,
        subjects=12,
        studies=20,
        series=30,
        instances=300,
        modalities={"CT": 12, "MR": None},
        body_parts={"CHEST": 12, "LEFTTOE": 6},
        manufacturers={"SIEMENS": 12},
    )
    turtle = collection_to_turtle(
        station="site-a",
        collection="chest-ct",
        title="Chest CT",
        description="Thorax",
        summary=summary,
        issued=datetime(2026, 1, 1, tzinfo=UTC),
    )
    iri = dataset_iri("http://hub.test", "site-a", "chest-ct")
    store.replace_collection(
        iri,
        turtle,
        station="site-a",
        collection="chest-ct",
        extra=distribution_triples("http://hub.test", "site-a", "chest-ct", station_name="site-a"),
    )

    [record] = records_from_store(store.store)

    assert (record.id, record.station, record.title, record.subjects) == ("site-a/chest-ct", "site-a", "Chest CT", 12)
    assert record.modality == ("CT",)
    assert record.body_part == ("CHEST", "LEFTTOE")
    assert record.manufacturer == ("SIEMENS",)


def test_incremental_republication_equals_a_full_rebuild() -> None:
    import random

    rng = random.Random(3)
    modalities, parts = ("CT", "MR", "PT", "US"), ("CHEST", "HEAD", "KNEE")
    records = [
        rec(
            f"c{n}",
            f"s{n % 4}",
            rng.choice([None, *range(5, 60)]),
            tuple(rng.sample(modalities, 2)),
            (rng.choice(parts),),
        )
        for n in range(40)
    ]
    index = SearchIndex(records)
    queries = [
        SearchQuery(),
        SearchQuery(modality=("CT",)),
        SearchQuery(body_part=("HEAD",), sort="title"),
        SearchQuery(text="collection", sort="modified_desc"),
        SearchQuery(station=("s1",), min_subjects=10),
    ]

    for _ in range(25):
        old = rng.choice(records)
        new = rec(
            old.iri.rsplit("/", 1)[-1],
            old.station,
            rng.choice([None, *range(5, 60)]),
            tuple(rng.sample(modalities, rng.randint(1, 3))),
            (rng.choice(parts),),
        )
        records = [new if record.iri == old.iri else record for record in records]
        index.upsert(new)
        rebuilt = SearchIndex(records)
        for query in queries:
            assert index.search(query) == rebuilt.search(query)


def test_search_text_matches_keywords() -> None:
    from hub.catalog.index import CollectionRecord, SearchIndex, SearchQuery

    index = SearchIndex(
        [
            CollectionRecord(iri="urn:a", id="s/a", station="s", title="Chest CT", keywords=("screening",)),
            CollectionRecord(iri="urn:b", id="s/b", station="s", title="Head MR"),
        ]
    )

    actual = index.search(SearchQuery(text="screening"))

    assert [record.id for record in actual.records] == ["s/a"]
