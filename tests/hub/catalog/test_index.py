"""The columnar search index: filters, facets with the other filters applied, sorting, paging, updates."""

from datetime import UTC, datetime

import pytest

from hub.catalog.index import CollectionRecord, SearchIndex, SearchQuery, records_from_store
from hub.catalog.records import dataset_iri, distribution_triples
from hub.catalog.store import CatalogStore
from protocol import CollectionMetadata, CollectionSummary, DiseaseCode
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
        min_typical_age=41,
        max_typical_age=78,
    )
    metadata = CollectionMetadata(
        disease_codes=(DiseaseCode(system="ICD-10", code="C34.1", label="Upper lobe lung cancer"),),
        data_use=("DUO:0000006", "DUO:0000015"),
        annotations=("segmentation", "bounding-box"),
    )
    turtle = collection_to_turtle(
        station="site-a",
        collection="chest-ct",
        title="Chest CT",
        description="Thorax",
        summary=summary,
        issued=datetime(2026, 1, 1, tzinfo=UTC),
        metadata=metadata,
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
    assert record.disease == ("ICD-10:C34.1",)
    assert record.disease_labels == ("Upper lobe lung cancer",)
    assert record.data_use == ("DUO:0000006", "DUO:0000015")
    assert record.annotation == ("BoundingBox", "Segmentation")
    assert (record.min_age, record.max_age) == (41, 78)


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


def test_appending_new_collections_equals_a_full_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from hub.catalog import index as module

    rng = random.Random(5)
    modalities, parts = ("CT", "MR", "PT"), ("CHEST", "HEAD")

    def random_record(n: int) -> CollectionRecord:
        return rec(
            f"c{n:03d}",
            f"s{n % 3}",
            rng.choice([None, *range(5, 60)]),
            tuple(rng.sample(modalities, 2)),
            (rng.choice(parts),),
        )

    records = [random_record(n) for n in range(0, 60, 2)]  # even names first: new ones sort in between
    index = SearchIndex(records)
    builds: list[int] = []
    original = module._Snapshot.build
    monkeypatch.setattr(
        module._Snapshot, "build", classmethod(lambda cls, rows: builds.append(len(rows)) or original(rows))
    )
    queries = [
        SearchQuery(),
        SearchQuery(modality=("CT",), sort="title"),
        SearchQuery(body_part=("HEAD",), sort="subjects_asc"),
        SearchQuery(text="collection", sort="modified_desc"),
        SearchQuery(station=("s1",), min_subjects=10),
    ]

    for n in range(1, 40, 2):
        new = random_record(n)
        records.append(new)
        index.upsert(new)
        assert builds == []  # known vocabulary: appended, not rebuilt
        rebuilt = SearchIndex(records)
        builds.clear()
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


def rich(
    name: str,
    subjects: int | None,
    *,
    disease: tuple[str, ...] = (),
    ages: tuple[int, int] | None = None,
    data_use: tuple[str, ...] = (),
    annotation: tuple[str, ...] = (),
) -> CollectionRecord:
    return CollectionRecord(
        iri=f"http://hub.test/dataset/s/{name}",
        id=f"s/{name}",
        station="s",
        title=name,
        subjects=subjects,
        disease=disease,
        data_use=data_use,
        annotation=annotation,
        min_age=ages[0] if ages else None,
        max_age=ages[1] if ages else None,
    )


@pytest.fixture
def clinical() -> SearchIndex:
    return SearchIndex(
        [
            rich(
                "lung",
                120,
                disease=("ICD-10:C34.1",),
                ages=(45, 80),
                data_use=("DUO:0000006",),
                annotation=("Segmentation",),
            ),
            rich("lung2", 60, disease=("ICD-10:C34.9",), ages=(30, 49), data_use=("DUO:0000007",)),
            rich(
                "breast",
                15,
                disease=("ICD-10:C50", "SNOMED-CT:254837009"),
                ages=(18, 35),
                data_use=("DUO:0000042", "DUO:0000015"),
            ),
            rich("nothing", 1000, data_use=()),
        ]
    )


def test_disease_filter_matches_code_bare_code_and_icd10_category(clinical: SearchIndex) -> None:
    assert ids(clinical.search(SearchQuery(disease=("ICD-10:C34.1",)))) == ["s/lung"]
    assert ids(clinical.search(SearchQuery(disease=("c34.9",)))) == ["s/lung2"]
    assert ids(clinical.search(SearchQuery(disease=("C34",)))) == ["s/lung", "s/lung2"]
    assert ids(clinical.search(SearchQuery(disease=("254837009",)))) == ["s/breast"]
    assert ids(clinical.search(SearchQuery(disease=("C3",)))) == []  # not a category: no prefix matching


def test_age_range_overlaps_and_unknown_ages_are_left_out(clinical: SearchIndex) -> None:
    assert ids(clinical.search(SearchQuery(min_age=50))) == ["s/lung"]
    assert ids(clinical.search(SearchQuery(max_age=29))) == ["s/breast"]
    assert ids(clinical.search(SearchQuery(min_age=40, max_age=46))) == ["s/lung", "s/lung2"]
    facets = dict(clinical.search(SearchQuery()).facets["age"])
    assert facets["40-49"] == 2 and facets["10-19"] == 1 and "90+" not in facets


def test_purpose_filter_follows_duo(clinical: SearchIndex) -> None:
    assert ids(clinical.search(SearchQuery(purpose="DUO:0000006"))) == ["s/lung", "s/breast"]  # HMB: HMB or GRU
    assert ids(clinical.search(SearchQuery(purpose="DUO:0000031"))) == []  # MDS: NMDS forbids it at breast
    assert ids(clinical.search(SearchQuery(purpose="DUO:0000007", purpose_diseases=("C34",)))) == [
        "s/lung",
        "s/lung2",
        "s/breast",
    ]
    assert ids(clinical.search(SearchQuery(purpose="DUO:0000007", purpose_diseases=("C61",)))) == ["s/lung", "s/breast"]
    facets = dict(clinical.search(SearchQuery(purpose_diseases=("C34",))).facets["purpose"])
    assert facets == {"DUO:0000042": 1, "DUO:0000006": 2, "DUO:0000007": 3}


def test_every_facet_is_counted_with_the_other_filters(clinical: SearchIndex) -> None:
    result = clinical.search(SearchQuery(disease=("C34",), min_subjects=100, annotation=("segmentation",)))

    assert ids(result) == ["s/lung"]
    assert dict(result.facets["disease"]) == {"ICD-10:C34.1": 1}  # subjects and annotation filters
    assert dict(result.facets["subjects"]) == {"100-499": 1}  # disease and annotation: lung only
    assert dict(result.facets["annotation"]) == {"Segmentation": 1}
    assert dict(result.facets["data_use"]) == {"DUO:0000006": 1}
    assert dict(clinical.search(SearchQuery()).facets["subjects"]) == {"0-49": 1, "50-99": 1, "100-499": 1, "1000+": 1}


def test_guest_subject_ranges_use_rounded_counts() -> None:
    index = SearchIndex([rich(f"c{n}", n) for n in (5, 7, 12, 19, 23)])

    # a member sweeping exact ranges learns exact counts; a guest only the rounded ones
    assert ids(index.search(SearchQuery(min_subjects=7, max_subjects=7))) == ["s/c7"]
    assert ids(index.search(SearchQuery(min_subjects=7, max_subjects=7, guest=True))) == []
    assert sorted(ids(index.search(SearchQuery(min_subjects=10, max_subjects=19, guest=True)))) == ["s/c12", "s/c19"]
    # and guests' subject sorting cannot order collections inside one rounding step
    assert ids(index.search(SearchQuery(sort="subjects_desc", guest=True))) == [
        "s/c23",
        "s/c12",
        "s/c19",
        "s/c5",
        "s/c7",
    ]


def test_upsert_with_new_policy_and_lookup_by_id(clinical: SearchIndex) -> None:
    clinical.upsert(rich("nothing", 1000, data_use=("DUO:0000042",), disease=("ICD-10:C61",)))

    assert ids(clinical.search(SearchQuery(purpose="DUO:0000031"))) == ["s/nothing"]
    assert ids(clinical.search(SearchQuery(disease=("C61",)))) == ["s/nothing"]
    record = clinical.get("s/lung")
    assert record is not None and record.disease == ("ICD-10:C34.1",)
    assert clinical.get("s/missing") is None


def test_titles_dates_and_counts_of_new_and_republished_collections_keep_every_order() -> None:
    import random
    from dataclasses import replace

    rng = random.Random(11)

    def random_record(n: int) -> CollectionRecord:
        base = rec(f"c{n:02d}", f"s{n % 2}", rng.choice([None, 5, 12, 17, 30]), ("CT",), ("CHEST",))
        title = rng.choice(["Alpha", "beta", "Gamma", "alpha"])  # ties: broken by IRI, as SPARQL does
        return replace(base, title=title, modified=f"2026-0{rng.randint(1, 3)}-01")

    records = {record.iri: record for record in (random_record(n) for n in range(0, 30, 2))}
    index = SearchIndex(records.values())
    queries = [
        SearchQuery(sort=sort, guest=guest, first=100)
        for sort in ("subjects_desc", "subjects_asc", "title", "modified_desc")
        for guest in (False, True)
    ]

    for step in range(40):
        new = random_record(rng.randrange(0, 30, 2) if step % 2 else rng.randrange(1, 60, 2))  # republished, new
        records[new.iri] = new
        index.upsert(new)
        rebuilt = SearchIndex(records.values())
        for query in queries:
            assert ids(index.search(query)) == ids(rebuilt.search(query)), (step, query.sort, query.guest)
