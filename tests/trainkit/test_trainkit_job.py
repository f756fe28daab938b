"""Reading the job: environment variables, job file shapes, train.toml defaults, clear errors."""

import json
from pathlib import Path

import pytest

import trainkit
from trainkit import TrainkitError


@pytest.fixture()
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("data", "out", "train", "job")}
    for path in paths.values():
        path.mkdir()
    monkeypatch.setenv("TRAINYARD_DATA", str(paths["data"]))
    monkeypatch.setenv("TRAINYARD_OUT", str(paths["out"]))
    monkeypatch.setenv("TRAINYARD_TRAIN", str(paths["train"]))
    monkeypatch.setenv("TRAINYARD_JOB", str(paths["job"] / "job.json"))
    return paths


def write_job(folders: dict[str, Path], document: object) -> None:
    (folders["job"] / "job.json").write_text(json.dumps(document))


def test_job_reads_fields_and_folders(folders: dict[str, Path]) -> None:
    # Prepare
    write_job(
        folders,
        {
            "job_id": "job-1",
            "station": "site-a",
            "collection": "chest-ct",
            "parameters": {"k": 7},
            "outputs": [{"name": "cohort.json", "type": "json"}, "log.txt"],
        },
    )
    # Execute
    actual = trainkit.job()
    # Assert
    assert (actual.job_id, actual.station, actual.collection) == ("job-1", "site-a", "chest-ct")
    assert actual.data_dir == folders["data"]
    assert actual.train_dir == folders["train"]
    assert actual.parameters == {"k": 7}
    assert actual.declared_outputs == {"cohort.json": "json", "log.txt": "text"}
    assert actual.out.out_dir == folders["out"]


def test_job_parameters_default_from_train_toml(folders: dict[str, Path]) -> None:
    (folders["train"] / "train.toml").write_text('name = "t"\n[parameters]\nk = 5\nbins = 10\n')
    write_job(folders, {"job_id": "j", "parameters": {"k": 11}, "outputs": ["a.json"]})
    assert trainkit.job().parameters == {"k": 11, "bins": 10}


def test_job_outputs_from_protocol_job_document(folders: dict[str, Path]) -> None:
    write_job(
        folders,
        {
            "job_id": "j",
            "station": "s",
            "collection": "c",
            "signed_manifest": {
                "manifest": {"parameters": {"k": 6}, "outputs": [{"name": "cohort.json", "type": "json"}]},
                "signature": "x",
            },
        },
    )
    actual = trainkit.job()
    assert actual.parameters == {"k": 6}
    assert actual.declared_outputs == {"cohort.json": "json"}


def test_job_default_paths_when_variables_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRAINYARD_JOB", "TRAINYARD_DATA", "TRAINYARD_OUT", "TRAINYARD_TRAIN"):
        monkeypatch.delenv(name, raising=False)
    if Path("/job/job.json").exists():
        pytest.skip("this machine has a real /job/job.json")
    with pytest.raises(TrainkitError, match=r"/job/job\.json"):
        trainkit.job()


def test_job_missing_file(folders: dict[str, Path]) -> None:
    with pytest.raises(TrainkitError, match="no job file at"):
        trainkit.job()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"outputs": ["a.json"]}', "'job_id' must be a non-empty string"),
        ('{"job_id": "j"}', "no 'outputs' declared"),
        ('{"job_id": "j", "outputs": "a.json"}', "'outputs' must be a list"),
        ('{"job_id": "j", "outputs": [{"type": "json"}]}', "each output is a name"),
        ('{"job_id": "j", "outputs": ["../escape"]}', "not a plain file name"),
        ('{"job_id": "j", "outputs": ["a.json"], "parameters": [1]}', "'parameters' must be an object"),
        ('{"job_id": "j", "outputs": ["a.json"], "signed_manifest": 3}', "signed_manifest"),
    ],
)
def test_job_malformed_file(folders: dict[str, Path], content: str, message: str) -> None:
    (folders["job"] / "job.json").write_text(content)
    with pytest.raises(TrainkitError, match=message):
        trainkit.job()


def test_job_broken_train_toml(folders: dict[str, Path]) -> None:
    (folders["train"] / "train.toml").write_text("name = \n")
    write_job(folders, {"job_id": "j", "outputs": ["a.json"]})
    with pytest.raises(TrainkitError, match=r"train\.toml"):
        trainkit.job()


def test_job_reads_a_federated_round(folders: dict[str, Path]) -> None:
    round_section = {
        "number": 3,
        "config": {"local_epochs": 2},
        "global_model": "global.safetensors",
        "station_state": None,
    }
    write_job(folders, {"job_id": "j", "outputs": ["update.json"], "round": round_section})

    current = trainkit.job()

    assert current.round == trainkit.Round(
        number=3, config={"local_epochs": 2}, global_model=folders["job"] / "global.safetensors"
    )


def test_analysis_job_has_no_round(folders: dict[str, Path]) -> None:
    write_job(folders, {"job_id": "j", "outputs": ["result.json"]})

    assert trainkit.job().round is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ([], "'round' must be an object"),
        ({"number": 0}, "whole number from 1"),
        ({"number": 1, "config": []}, "'round.config' must be an object"),
        ({"number": 1, "global_model": "../../etc/passwd"}, "plain file name"),
    ],
)
def test_job_malformed_round(folders: dict[str, Path], section: object, message: str) -> None:
    write_job(folders, {"job_id": "j", "outputs": ["update.json"], "round": section})

    with pytest.raises(TrainkitError, match=message):
        trainkit.job()


def test_job_parameter_defaults_from_train_toml_specs(folders: dict[str, Path]) -> None:
    (folders["train"] / "train.toml").write_text(
        '[parameters]\nshare = { type = "number", default = 0.25 }\nk = 5\nbare = { type = "integer" }\n'
    )
    write_job(folders, {"job_id": "j", "outputs": ["r.json"]})

    assert trainkit.job().parameters == {"share": 0.25, "k": 5}
