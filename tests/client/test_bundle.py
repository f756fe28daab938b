import io
import os
import tarfile
from pathlib import Path

import pytest

from client import build_bundle, read_train_config
from protocol import ProtocolError, TrainKind, content_address

TRAIN_TOML = """
name = "tiny"
kind = "analysis"
entrypoint = "main.py"
outputs = [{ name = "out.json", type = "json" }]

[parameters]
k = { default = 5 }
"""


@pytest.fixture()
def train_dir(tmp_path: Path) -> Path:
    (tmp_path / "train.toml").write_text(TRAIN_TOML)
    (tmp_path / "main.py").write_text("print('hi')\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper.py").write_text("X = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"junk")
    return tmp_path


def test_read_train_config(train_dir: Path) -> None:
    config = read_train_config(train_dir)

    assert (config.name, config.kind, config.entrypoint) == ("tiny", TrainKind.ANALYSIS, "main.py")
    assert [output.name for output in config.outputs] == ["out.json"]
    assert config.parameters == {"k": 5}


def test_build_bundle_is_reproducible(train_dir: Path) -> None:
    first = build_bundle(train_dir)
    os.utime(train_dir / "main.py", (1, 1))

    assert content_address(build_bundle(train_dir)) == content_address(first)


def test_build_bundle_skips_caches(train_dir: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(build_bundle(train_dir))) as tar:
        names = tar.getnames()

    assert names == ["lib/helper.py", "main.py", "train.toml"]


def test_build_bundle_refuses_symlink(train_dir: Path) -> None:
    (train_dir / "escape").symlink_to("/etc/passwd")

    with pytest.raises(ProtocolError, match="symbolic link"):
        build_bundle(train_dir)


def test_read_train_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match=r"no train\.toml"):
        read_train_config(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "not valid TOML"),
        ('name = "tiny"\nentrypoint = "main.py"\n', "misses the key 'outputs'"),
        ('name = "Tiny Train"\nentrypoint = "main.py"\noutputs = [{name = "a.json"}]\n', "lower-case"),
        ('name = "tiny"\nentrypoint = "nope.py"\noutputs = [{name = "a.json"}]\n', "does not exist"),
        ('name = "tiny"\nentrypoint = "main.py"\noutputs = [{name = "../a.json"}]\n', "plain file names"),
        ('name = "tiny"\nkind = "magic"\nentrypoint = "main.py"\noutputs = [{name = "a.json"}]\n', "magic"),
    ],
)
def test_read_train_config_bad_input(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "train.toml").write_text(text)
    (tmp_path / "main.py").write_text("")

    with pytest.raises(ProtocolError, match=message):
        read_train_config(tmp_path)


_FEDERATED = """
name = "fed"
kind = "federated"
entrypoint = "main.py"
outputs = [{ name = "update.safetensors", type = "safetensors" }, { name = "update.json", type = "json" }]
"""


def _federated_dir(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "main.py").write_text("print('hi')\n")
    (tmp_path / "train.toml").write_text(_FEDERATED + extra)
    return tmp_path


def test_read_train_config_federated_plan(tmp_path: Path) -> None:
    config = read_train_config(_federated_dir(tmp_path, '[federated]\nstrategy = "fedprox"\nrounds = 5\n'))

    assert config.federated is not None
    assert (config.federated.strategy, config.federated.rounds, config.federated.compression) == ("fedprox", 5, "fp16")


def test_read_train_config_dp_sgd_keys(tmp_path: Path) -> None:
    extra = "[federated]\ndp_sgd_noise_multiplier = 1.1\ndp_sgd_clip = 0.5\ndp_delta = 1e-6\n"
    config = read_train_config(_federated_dir(tmp_path, extra))

    assert config.federated is not None
    assert (config.federated.dp_sgd_noise_multiplier, config.federated.dp_sgd_clip) == (1.1, 0.5)
    assert config.federated.dp_delta == 1e-6


def test_read_train_config_federated_defaults(tmp_path: Path) -> None:
    config = read_train_config(_federated_dir(tmp_path, ""))

    assert config.federated is not None
    assert config.federated.strategy == "fedavg"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[federated]\nstrategy = "fedmagic"\n', "federated.strategy"),
        ("[federated]\nrounds = 0\n", "federated.rounds"),
        ("[federated]\ncolour = 1\n", "federated.colour"),
        ("[federated]\ndp_sgd_noise_multiplier = 0\n", "federated.dp_sgd_noise_multiplier"),
        ("[federated]\ndp_delta = 1\n", "federated.dp_delta"),
        ('[federated]\nupdate_output = "weights.safetensors"\n', 'name = "weights.safetensors"'),
    ],
)
def test_read_train_config_bad_federated_plan(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        read_train_config(_federated_dir(tmp_path, extra))


def test_read_train_config_federated_table_needs_federated_kind(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("print('hi')\n")
    (tmp_path / "train.toml").write_text(
        'name = "a"\nentrypoint = "main.py"\noutputs = [{ name = "r.json" }]\n[federated]\nrounds = 2\n'
    )

    with pytest.raises(ProtocolError, match='kind = "federated"'):
        read_train_config(tmp_path)
