"""'trainyard train init' and 'train build' (bundle only; the image needs Docker)."""

from pathlib import Path

from typer.testing import CliRunner

from client.cli import app
from protocol import content_address


def test_init_then_build_prints_the_bundle_digest(tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["train", "init", "my-train", "--kind", "federated", "--dir", str(tmp_path / "t")])
    assert created.exit_code == 0, created.output
    assert (tmp_path / "t" / "train.toml").is_file()

    built = runner.invoke(app, ["train", "build", str(tmp_path / "t"), "--out", str(tmp_path / "dist")])

    assert built.exit_code == 0, built.output
    bundle = (tmp_path / "dist" / "my-train-0.1.0.tar.gz").read_bytes()
    assert content_address(bundle) in built.output.replace("\n", "")


def test_init_refuses_bad_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "init", "x", "--kind", "magic", "--dir", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "no template" in result.output
