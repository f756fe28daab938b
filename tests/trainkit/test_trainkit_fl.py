"""trainkit.fl: one federated round from a model and local data (FedAvg, FedProx, FedBN, compression)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import trainkit
from trainkit.compression import decompress_update, read_safetensors, write_safetensors
from trainkit.fl import is_batch_norm, run_round

OUTPUTS = [{"name": "update.safetensors", "type": "safetensors"}, {"name": "update.json", "type": "json"}]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=generator)
    return x, (x[:, 0] > 0).long()


def _job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int, config: dict[str, Any], **files: bytes) -> Any:
    folder = tmp_path / f"round-{number}"
    for name in ("job", "out", "data", "train"):
        (folder / name).mkdir(parents=True)
    section: dict[str, Any] = {"number": number, "config": config}
    for key, data in files.items():
        (folder / "job" / f"{key}.safetensors").write_bytes(data)
        section[key] = f"{key}.safetensors"
    (folder / "job" / "job.json").write_text(json.dumps({"job_id": "j", "outputs": OUTPUTS, "round": section}))
    for variable, name in (("JOB", "job/job.json"), ("OUT", "out"), ("DATA", "data"), ("TRAIN", "train")):
        monkeypatch.setenv(f"TRAINYARD_{variable}", str(folder / name))
    return trainkit.job()


def _update(job: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    return read_safetensors((job.out.out_dir / "update.safetensors").read_bytes())


def test_a_round_writes_fp16_weights_and_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job(tmp_path, monkeypatch, 1, {"local_epochs": 2, "learning_rate": 0.1, "batch_size": 16})

    metrics = run_round(job, _model(), _data(), validate=lambda model: {"val_accuracy": 0.5})

    tensors, meta = _update(job)
    assert meta["compression"] == "fp16"
    assert tensors["0.weight"].dtype == np.float16
    info = json.loads((job.out.out_dir / "update.json").read_text())
    assert info["num_examples"] == 64 and info["metrics"] == metrics and metrics["val_accuracy"] == 0.5
    assert not (job.out.out_dir / "station_state.safetensors").exists()


def test_fedbn_keeps_batch_norm_at_the_station(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"local_parameters": "batch_norm", "learning_rate": 0.1}
    first = _job(tmp_path, monkeypatch, 1, config)
    run_round(first, _model(), _data())
    kept = (first.out.out_dir / "station_state.safetensors").read_bytes()
    sent, _ = _update(first)
    bn = is_batch_norm(_model())
    assert bn == {"1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert not bn & set(sent)  # batch norm never leaves

    global_model = write_safetensors({name: value.astype(np.float32) for name, value in sent.items()})
    second = _job(tmp_path, monkeypatch, 2, config, global_model=global_model, station_state=kept)
    model = _model()
    run_round(second, model, _data())
    station_bn, _ = read_safetensors(kept)
    assert not torch.equal(model.state_dict()["1.running_mean"], torch.zeros(16))  # started from its own statistics
    assert "bn::1.running_mean" in station_bn


def test_compressed_round_sends_a_decodable_change_and_keeps_the_residual(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {name: value.numpy() for name, value in _model().state_dict().items()}
    global_model = write_safetensors(base)
    job = _job(tmp_path, monkeypatch, 2, {"compression": "topk", "topk_fraction": 0.1}, global_model=global_model)

    run_round(job, _model(), _data())

    _tensors, meta = _update(job)
    assert meta["compression"] == "topk" and meta["update_kind"] == "delta"
    change = decompress_update((job.out.out_dir / "update.safetensors").read_bytes())
    assert set(change) == set(base)
    residual, _ = read_safetensors((job.out.out_dir / "station_state.safetensors").read_bytes())
    assert any(name.startswith("residual::") for name in residual)


def test_fedprox_pulls_towards_the_global_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = write_safetensors({name: value.numpy() for name, value in _model().state_dict().items()})
    drift = {}
    for mu in (0.0, 10.0):
        job = _job(
            tmp_path / f"mu{mu}",
            monkeypatch,
            2,
            {"proximal_mu": mu, "learning_rate": 0.2, "local_epochs": 5},
            global_model=base,
        )
        model = _model()
        run_round(job, model, _data())
        drift[mu] = float((model.state_dict()["0.weight"] - _model().state_dict()["0.weight"]).norm())

    assert drift[10.0] < drift[0.0]


def test_errors_say_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = write_safetensors({"0.weight": np.zeros((3, 3), dtype=np.float32)})
    job = _job(tmp_path, monkeypatch, 2, {}, global_model=wrong)

    with pytest.raises(trainkit.TrainkitError, match="does not fit this model"):
        run_round(job, _model(), _data())
