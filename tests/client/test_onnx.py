"""ONNX export of a model's weights with the train's own model code, checked in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from client._onnx import OnnxExportError, export_onnx, load_model_builder
from client.cli import app

FED_BODYPART = Path(__file__).resolve().parents[2] / "examples" / "trains" / "fed-bodypart"
runner = CliRunner()


def _weights(tmp_path: Path, *, dtype: torch.dtype = torch.float32) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(3)
    model = load_model_builder(FED_BODYPART)().eval()
    path = tmp_path / "fed-bodypart-v1.safetensors"
    save_file({key: value.to(dtype).contiguous() for key, value in model.state_dict().items()}, path)
    if dtype != torch.float32:
        model.load_state_dict({key: value.to(dtype).float() for key, value in model.state_dict().items()})
    return path, model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_the_exported_model_runs_in_onnxruntime_like_torch(tmp_path: Path, dtype: torch.dtype) -> None:
    weights, model = _weights(tmp_path, dtype=dtype)

    report = export_onnx(weights, FED_BODYPART, tmp_path / "model.onnx", input_shape=(2, 1, 64, 64))

    onnx.checker.check_model(str(report.path))
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(11)
    for batch in (1, 3, 8):  # the batch dimension is dynamic
        sample = torch.randn(batch, 1, 64, 64, generator=generator)
        (got,) = session.run(None, {session.get_inputs()[0].name: sample.numpy()})
        with torch.no_grad():
            expected = model(sample).numpy()
        assert got.shape == (batch, 2)
        assert np.abs(got - expected).max() < 1e-4
    assert report.max_abs_diff < 1e-4 and report.inputs_checked == 3


def test_weights_that_do_not_fit_the_train_s_model_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, weights)

    with pytest.raises(OnnxExportError, match="do not fit the train's model"):
        export_onnx(weights, FED_BODYPART, tmp_path / "model.onnx", input_shape=(1, 1, 64, 64))
    assert not (tmp_path / "model.onnx").exists()


def test_a_folder_without_a_model_builder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train.toml").write_text('entrypoint = "main.py"\n')
    (tmp_path / "main.py").write_text("VALUE = 1\n")

    with pytest.raises(OnnxExportError, match=r"no function build_model\(\)"):
        load_model_builder(tmp_path)
    with pytest.raises(OnnxExportError, match=r"no train\.toml"):
        load_model_builder(tmp_path / "missing")


def test_the_export_command_writes_the_onnx_file_beside_the_weights(tmp_path: Path) -> None:
    weights, _model = _weights(tmp_path)

    answer = runner.invoke(
        app,
        [
            "models",
            "export-onnx",
            str(weights),
            "--train",
            str(FED_BODYPART),
            "--input-shape",
            "4,1,64,64",
            "--out",
            str(tmp_path / "out"),
        ],
    )

    assert answer.exit_code == 0, answer.output
    assert (tmp_path / "out" / "fed-bodypart-v1.onnx").is_file()
    assert "ONNX Runtime matches torch on 3 inputs" in answer.output
    bad = runner.invoke(
        app, ["models", "export-onnx", str(weights), "--train", str(FED_BODYPART), "--input-shape", "0,x"]
    )
    assert bad.exit_code != 0
