"""collection.toml: rule and metadata, every mistake named, the rule applied at harvest, metadata published."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import Graph, URIRef
from typer.testing import CliRunner

from protocol import ProtocolError
from station.cli import app
from station.collections import read_collection_config
from station.state import StationState
from station.synthetic import write_synthetic_collection

GOOD = """
title = "Chest CT, lung screening"
description = "Baseline rounds."
keywords = ["screening", "lung"]
data_use = ["DUO:0000006"]
license = "https://creativecommons.org/licenses/by-nc/4.0/"
annotations = ["segmentation"]
contact = { name = "Imaging biobank", email = "biobank@hospital.example" }

[[disease]]
system = "ICD-10"
code = "C34.1"
label = "Malignant neoplasm of upper lobe, bronchus or lung"

[rule]
modality = ["ct"]
"""


def test_a_good_file_parses(tmp_path: Path) -> None:
    (tmp_path / "collection.toml").write_text(GOOD)

    config = read_collection_config(tmp_path / "collection.toml")

    assert config.title == "Chest CT, lung screening"
    assert config.rule.folder == tmp_path.resolve() and config.rule.modality == ("CT",)
    assert config.metadata.disease_codes[0].code == "C34.1"
    assert config.metadata.data_use == ("DUO:0000006",)
    assert config.metadata.contact_email == "biobank@hospital.example"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title = ", "not valid TOML"),
        ('colour = "red"', "unknown key 'colour'"),
        ('data_use = ["HMB"]', "data_use.0"),
        ('[[disease]]\nsystem = "ICD-9"\ncode = "162"', "disease.0.system"),
        ('[rule]\nfolder = "nowhere"', "rule.folder 'nowhere' is not a folder"),
        ("[rule]\nmodality = [1]", "rule.modality must be a list"),
        ('[rule]\nseries = "x"', "unknown key rule.series"),
        ("title = 3", "title must be text"),
        ('contact = "me"', "contact must be a table"),
    ],
)
def test_mistakes_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "collection.toml"
    path.write_text(text)

    with pytest.raises(ProtocolError, match=r"collection\.toml") as raised:
        read_collection_config(path)

    assert message in str(raised.value)


def test_harvest_applies_the_rule_and_publishes_the_metadata(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic_collection(data, site_index=0, seed=3, patients=6, slices=3)
    (data / "collection.toml").write_text(GOOD)
    state = tmp_path / "state"
    runner = CliRunner()

    harvested = runner.invoke(app, ["harvest", str(data), "--state", str(state), "--collection", "chest"])
    record = StationState(state).read_collection("chest")
    changed = GOOD.replace('modality = ["ct"]', 'modality = ["MR"]')
    (data / "collection.toml").write_text(changed)
    again = runner.invoke(app, ["harvest", str(data), "--state", str(state), "--collection", "chest"])
    (data / "collection.toml").write_text("title = 3")
    broken = runner.invoke(app, ["harvest", str(data), "--state", str(state), "--collection", "chest"])

    assert harvested.exit_code == 0, harvested.output
    assert "outside the collection's rule (modality MR, not CT)" in harvested.output
    assert "modality: CT" in harvested.output and "modality: MR" not in harvested.output
    assert record is not None and record.title == "Chest CT, lung screening"
    assert record.metadata["disease_codes"][0]["code"] == "C34.1"
    assert again.exit_code == 0 and "modality: MR" in again.output and "modality: CT" not in again.output
    assert broken.exit_code == 1 and "title must be text" in broken.output


def test_published_turtle_carries_the_metadata(tmp_path: Path) -> None:
    import protocol
    from station.catalog import build_publication
    from station.collections import read_collection_config as read
    from station.summary import suppress_count  # noqa: F401

    (tmp_path / "collection.toml").write_text(GOOD)
    config = read(tmp_path / "collection.toml")
    summary = protocol.CollectionSummary(
        k=5, subjects=6, studies=6, series=6, instances=6, modalities={"CT": 6}, body_parts={}, manufacturers={}
    )
    publication = build_publication(
        station="site-a",
        collection="chest",
        title="T",
        description="",
        summary=summary,
        keys=protocol.generate_key_pair(),
        metadata=config.metadata,
    )
    graph = Graph().parse(data=publication.turtle, format="turtle")

    assert (None, None, URIRef("http://purl.obolibrary.org/obo/DUO_0000006")) in graph
    assert "C34.1" in publication.turtle and "screening" in publication.turtle
