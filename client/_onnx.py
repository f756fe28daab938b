"""ONNX export of a registered model, on the researcher's own machine.

The hub stores weights only (safetensors) and never runs a researcher's code; a station could run
it, but the model registry's weights are the *aggregated* ones, which no station sees at the end.
So the export happens where both meet: here, after the download, with the train's own model
definition (its entrypoint's ``build_model()``, as in ``examples/trains/fed-bodypart``). The
weights load strictly into that model, ``torch.onnx.export`` writes the graph, and ONNX Runtime
runs it on a few random inputs that must agree with torch within a tolerance before the file is
kept. Needs the ``onnx`` extra (``pip install 'trainyard[onnx]'``).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import tomllib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import TrainyardError

__all__ = ["OnnxExport", "OnnxExportError", "export_onnx", "load_model_builder"]

_EXTERNAL_DATA_BYTES = 1 << 30  # larger weights go beside the graph (ONNX's protobuf stops at 2 GiB)


class OnnxExportError(TrainyardError):
    """The model could not be rebuilt, exported or checked (the message says which and why)."""


@dataclass(frozen=True)
class OnnxExport:
    """What was written and how closely ONNX Runtime matched torch."""

    path: Path
    inputs_checked: int
    max_abs_diff: float
    opset: int


def load_model_builder(train_dir: Path, builder: str = "build_model") -> Callable[[], Any]:
    """Import the train's entrypoint (from its ``train.toml``) and return its model builder.

    Raises
    ------
    OnnxExportError
        When the folder has no ``train.toml`` or entrypoint, or the entrypoint defines no ``builder``.
    """
    toml = train_dir / "train.toml"
    if not toml.is_file():
        raise OnnxExportError(f"{train_dir} is not a train folder: it has no train.toml")
    entrypoint = train_dir / str(tomllib.loads(toml.read_text("utf-8")).get("entrypoint", "main.py"))
    if not entrypoint.is_file():
        raise OnnxExportError(f"the train's entrypoint {entrypoint} is missing")
    spec = importlib.util.spec_from_file_location(f"_trainyard_export_{abs(hash(str(entrypoint)))}", entrypoint)
    if spec is None or spec.loader is None:
        raise OnnxExportError(f"cannot import {entrypoint}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(train_dir))  # the train's own helper modules
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the researcher's own code, on their own machine: say what broke
        raise OnnxExportError(f"importing {entrypoint} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(train_dir))
    found = getattr(module, builder, None)
    if not callable(found):
        raise OnnxExportError(f"{entrypoint} defines no function {builder}() that builds the model")
    return found  # type: ignore[no-any-return]


def export_onnx(
    weights: Path,
    train_dir: Path,
    out: Path,
    *,
    input_shape: Sequence[int],
    builder: str = "build_model",
    checks: int = 3,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> OnnxExport:
    """Rebuild the train's model with ``weights``, export it to ``out`` and check it in ONNX Runtime.

    The first dimension of ``input_shape`` is the batch and stays dynamic in the graph; the checks
    use batches of 1 and of ``input_shape[0]``.

    Raises
    ------
    OnnxExportError
        When the extra is not installed, the weights do not fit the model, the export fails, or ONNX
        Runtime's outputs differ from torch's by more than ``tolerance`` (the file is then removed).
    """
    try:
        import numpy as np
        import onnxruntime  # type: ignore[import-untyped]
        import torch
        from safetensors.torch import load_file
    except ImportError as exc:
        raise OnnxExportError(
            f"ONNX export needs torch, onnx, onnxscript and onnxruntime: pip install 'trainyard[onnx]' ({exc})"
        ) from exc
    if len(input_shape) < 1 or any(size < 1 for size in input_shape):
        raise OnnxExportError(f"the input shape {tuple(input_shape)} must be positive sizes, batch first")
    model = load_model_builder(train_dir, builder)()
    try:
        state = load_file(weights)
    except Exception as exc:  # safetensors raises its own error types
        raise OnnxExportError(f"{weights} is not a safetensors file: {exc}") from exc
    try:
        model.load_state_dict(state, strict=True)  # fp16 weights are cast to the model's dtypes
    except RuntimeError as exc:
        raise OnnxExportError(f"the weights do not fit the train's model: {exc}") from exc
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(*input_shape, generator=generator)
    out.parent.mkdir(parents=True, exist_ok=True)
    external = weights.stat().st_size > _EXTERNAL_DATA_BYTES
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" and the like are torch's notes
    try:
        with warnings.catch_warnings():  # so are its deprecation warnings
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
        assert program is not None
        program.save(str(out), external_data=external)
        opset = next(
            int(entry.version) for entry in program.model_proto.opset_import if entry.domain in ("", "ai.onnx")
        )
    except Exception as exc:  # torch.export / onnxscript raise many kinds
        out.unlink(missing_ok=True)
        raise OnnxExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
    finally:
        exporter_log.setLevel(level)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    worst = 0.0
    sizes = [1, input_shape[0], *([input_shape[0]] * max(0, checks - 2))][:checks]
    with torch.no_grad():
        for size in sizes:
            sample = torch.randn(size, *input_shape[1:], generator=generator)
            expected = model(sample).numpy()
            (got,) = session.run(["output"], {"input": sample.numpy()})
            worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= tolerance:
        out.unlink(missing_ok=True)
        raise OnnxExportError(
            f"ONNX Runtime's outputs differ from torch's by up to {worst:.3g} (more than {tolerance:g}): nothing kept"
        )
    return OnnxExport(path=out, inputs_checked=len(sizes), max_abs_diff=worst, opset=opset)
