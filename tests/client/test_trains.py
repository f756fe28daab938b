import io
import json
import tarfile
from pathlib import Path

import pytest

from client import read_train_config
from client._trains import image_id_of_archive, parse_resources, write_template
from protocol import ProtocolError

SCHEMA_TOML = """
name = "tiny"
entrypoint = "main.py"
outputs = [{ name = "out.json", type = "json" }]

[parameters]
k = { type = "integer", default = 5, minimum = 2, maximum = 50 }
modality = { type = "string", default = "CT", enum = ["CT", "MR"] }

[resources]
cpu = 2
memory = "1g"
time = "10m"
gpu = 0
"""


def _train(tmp_path: Path, text: str) -> Path:
    (tmp_path / "train.toml").write_text(text)
    (tmp_path / "main.py").write_text("")
    return tmp_path


def test_parameters_schema_and_resources(tmp_path: Path) -> None:
    config = read_train_config(_train(tmp_path, SCHEMA_TOML))

    assert config.parameters == {"k": 5, "modality": "CT"}
    assert config.resources == {"cpu": 2.0, "memory_mb": 1024.0, "time_s": 600.0, "gpu": 0.0}
    assert config.parameters_with({"k": 7}) == {"k": 7, "modality": "CT"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"k": 1}, "below its minimum"),
        ({"k": 99}, "above its maximum"),
        ({"k": "5"}, "must be of type integer"),
        ({"k": True}, "must be of type integer"),
        ({"modality": "PET"}, "allowed"),
        ({"nope": 1}, "unknown parameters"),
    ],
)
def test_parameters_validated_at_submit(tmp_path: Path, given: dict[str, object], message: str) -> None:
    config = read_train_config(_train(tmp_path, SCHEMA_TOML))

    with pytest.raises(ProtocolError, match=message):
        config.parameters_with(given)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[parameters]\nk = { type = "integer", default = 1, minimum = 2 }\n', r"train\.toml \(default\)"),
        ('[parameters]\nk = { type = "complex", default = 1 }\n', r"parameters\.k\.type"),
        ('[parameters]\nk = { type = "integer" }\n', "no default"),
        ('[resources]\ncpu = "lots"\n', r"resources\.cpu"),
        ("[resources]\ndisk = 1\n", r"resources\.disk is unknown"),
        ('[resources]\nmemory = "2 parsecs"\n', "not a size"),
    ],
)
def test_bad_schema_names_file_and_field(tmp_path: Path, extra: str, message: str) -> None:
    base = 'name = "tiny"\nentrypoint = "main.py"\noutputs = [{ name = "a.json" }]\n'
    with pytest.raises(ProtocolError, match=message):
        read_train_config(_train(tmp_path, base + extra))


def test_legacy_resource_names(tmp_path: Path) -> None:
    assert parse_resources({"cpus": 1.0, "memory_mb": 512, "timeout_s": 60, "gpu": False}, path=tmp_path) == {
        "cpu": 1.0,
        "memory_mb": 512.0,
        "time_s": 60.0,
        "gpu": 0.0,
    }


def test_example_train_reads() -> None:
    config = read_train_config(Path(__file__).parents[2] / "examples" / "trains" / "cohort-stats")
    assert config.resources["time_s"] == 600.0


@pytest.mark.parametrize("kind", ["analysis", "federated"])
def test_templates_are_valid_trains(tmp_path: Path, kind: str) -> None:
    write_template(tmp_path / "t", name="my-train", kind=kind)
    config = read_train_config(tmp_path / "t")
    assert (config.name, config.kind.value) == ("my-train", kind)
    compile((tmp_path / "t" / "main.py").read_text(), "main.py", "exec")
    with pytest.raises(ProtocolError, match="not empty"):
        write_template(tmp_path / "t", name="my-train", kind=kind)


def test_image_id_of_archive() -> None:
    digest = "ab" * 32
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = json.dumps([{"Config": f"blobs/sha256/{digest}", "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert image_id_of_archive(raw.getvalue()) == f"sha256:{digest}"
    with pytest.raises(ProtocolError, match="docker save"):
        image_id_of_archive(b"not a tar")
