"""``trainyard search`` against a real hub served on loopback (the catalog filled through its store)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from client_hub import PASSWORD, ServedHub
from typer.testing import CliRunner

from client.cli import app
from hub.catalog.index import records_from_store
from hub.catalog.records import dataset_iri
from protocol import CollectionMetadata, CollectionSummary, DiseaseCode
from station.catalog import collection_to_turtle


def _publish(hub: ServedHub, name: str, subjects: int, code: str, ages: tuple[int, int]) -> None:
    summary = CollectionSummary(
        k=5,
        subjects=subjects,
        studies=subjects,
        series=subjects,
        instances=subjects,
        modalities={"CT": subjects},
        body_parts={"CHEST": subjects},
        manufacturers={},
        min_typical_age=ages[0],
        max_typical_age=ages[1],
    )
    metadata = CollectionMetadata(disease_codes=(DiseaseCode(system="ICD-10", code=code),), data_use=("DUO:0000006",))
    turtle = collection_to_turtle(
        station="site-a",
        collection=name,
        title=f"{name} collection",
        description="",
        summary=summary,
        issued=datetime(2026, 1, 1, tzinfo=UTC),
        metadata=metadata,
    )
    iri = dataset_iri(hub.url, "site-a", name)
    hub.app.state.catalog.replace_collection(iri, turtle, station="site-a", collection=name)
    for record in records_from_store(hub.app.state.catalog.store, [iri]):
        hub.app.state.search_index.upsert(record)


def _trainyard(home: Path, *args: str) -> tuple[int, str]:
    env = {"TRAINYARD_CONFIG_DIR": str(home), "TRAINYARD_PASSWORD": PASSWORD, "COLUMNS": "250"}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_search_with_filters_and_facets(served_hub: ServedHub, tmp_path: Path) -> None:
    _publish(served_hub, "lung", 120, "C34.1", (45, 80))
    _publish(served_hub, "breast", 30, "C50.9", (30, 60))
    home = tmp_path / "rosa"
    assert _trainyard(home, "login", "--hub", served_hub.url, "--user", "rosa")[0] == 0

    code, lung = _trainyard(home, "search", "--disease", "C34", "--min-age", "50")
    code_all, everything = _trainyard(home, "search", "--facets", "--purpose", "DUO:0000006")
    code_bad, bad = _trainyard(home, "search", "--purpose", "health")

    assert code == 0, lung
    assert "site-a/lung" in lung and "site-a/breast" not in lung and "ICD-10:C34.1" in lung and "45-80" in lung
    assert "1 collection(s) found" in lung
    assert code_all == 0, everything
    assert "2 collection(s) found" in everything
    assert "disease: ICD-10:C34.1 (1), ICD-10:C50.9 (1)" in everything
    assert "subjects: 0-49 (1), 100-499 (1)" in everything
    assert code_bad == 1 and "DUO code" in bad
