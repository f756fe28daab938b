"""trainkit.fl's DP-SGD: per-example clipping, the noise's scale, a whole round, batch norm refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import trainkit
from trainkit import TrainkitError, privacy
from trainkit.compression import read_safetensors
from trainkit.fl import DPSGD, clipped_gradient_sum, run_round

OUTPUTS = [{"name": "update.safetensors", "type": "safetensors"}, {"name": "update.json", "type": "json"}]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GroupNorm(4, 16), nn.ReLU(), nn.Linear(16, 2))


def _data(count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(count, 8, generator=generator)
    return x, (x[:, 0] > 0).long()


def _job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int, config: dict[str, Any]) -> Any:
    folder = tmp_path / f"round-{number}"
    for name in ("job", "out", "data", "train"):
        (folder / name).mkdir(parents=True)
    section = {"number": number, "config": config}
    (folder / "job" / "job.json").write_text(json.dumps({"job_id": "j", "outputs": OUTPUTS, "round": section}))
    for variable, name in (("JOB", "job/job.json"), ("OUT", "out"), ("DATA", "data"), ("TRAIN", "train")):
        monkeypatch.setenv(f"TRAINYARD_{variable}", str(folder / name))
    return trainkit.job()


def _one_by_one(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Each example's gradient from its own backward pass, flattened."""
    out = []
    for i in range(len(x)):
        model.zero_grad()
        nn.CrossEntropyLoss()(model(x[i : i + 1]), y[i : i + 1]).backward()
        out.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return out


def test_per_example_gradients_are_each_examples_own_and_clipping_bounds_each_contribution() -> None:
    model, (x, y) = _model(), _data(12)
    expected = _one_by_one(model, x, y)
    summed, norms, losses = clipped_gradient_sum(model, nn.CrossEntropyLoss(), x, y, clip=1e6)
    assert torch.allclose(norms, torch.stack([g.norm() for g in expected]), rtol=1e-4)
    flat = torch.cat([value.reshape(-1) for value in summed.values()])
    assert torch.allclose(flat, torch.stack(expected).sum(0), rtol=1e-4, atol=1e-6)
    assert losses.shape == (12,)

    clip = 0.05
    assert bool((norms > clip).all())  # every example is clipped here
    whole = torch.cat(
        [v.reshape(-1) for v in clipped_gradient_sum(model, nn.CrossEntropyLoss(), x, y, clip=clip)[0].values()]
    )
    for i in range(len(x)):
        keep = torch.tensor([j for j in range(len(x)) if j != i])
        rest, _, _ = clipped_gradient_sum(model, nn.CrossEntropyLoss(), x[keep], y[keep], clip=clip)
        contribution = whole - torch.cat([v.reshape(-1) for v in rest.values()])
        assert float(contribution.norm()) == pytest.approx(clip, rel=1e-4)  # clipped to C, in C's direction
        assert torch.allclose(contribution, expected[i] * clip / expected[i].norm(), rtol=1e-3, atol=1e-7)


def test_the_noise_on_the_summed_gradients_has_std_sigma_times_clip() -> None:
    model = nn.Linear(100, 100)
    x, y = torch.randn(400, 100), torch.zeros(400, dtype=torch.long)
    sigma, clip, batch = 3.0, 0.5, 40
    dp = DPSGD(noise_multiplier=sigma, clip=clip, batch_size=batch, generator=torch.Generator().manual_seed(0))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.0)
    dp.epoch(model, lambda out, target: (out * 0).sum(), optimiser, x, y)  # data gradient 0: noise only
    noise = torch.cat([p.grad.reshape(-1) for p in model.parameters()]) * (dp.sampling_rate(400) * 400)
    assert dp.sampling_rate(400) == 0.1 and dp.steps_per_epoch(400) == 10
    assert float(noise.std()) == pytest.approx(sigma * clip, rel=0.03)
    assert abs(float(noise.mean())) < 0.05


def test_a_dp_sgd_round_reports_its_epsilon_and_learns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {
        "local_epochs": 3,
        "learning_rate": 0.1,
        "batch_size": 16,
        "dp_sgd_noise_multiplier": 0.8,
        "dp_sgd_clip": 1.0,
        "dp_delta": 1e-5,
    }
    job = _job(tmp_path, monkeypatch, 2, config)
    before = {k: v.clone() for k, v in _model().state_dict().items()}
    metrics = run_round(job, _model(), _data(), dp_generator=torch.Generator().manual_seed(3))

    steps = 2 * 3 * 4  # round 2 counts round 1 too; 64 examples, q = 1/4: four steps an epoch
    assert metrics["dp_sgd_steps"] == steps and metrics["dp_sgd_sampling_rate"] == 0.25
    expected = privacy.epsilon(noise_multiplier=0.8, sampling_rate=0.25, steps=steps, delta=1e-5)
    assert metrics["dp_sgd_epsilon"] == pytest.approx(expected)
    info = json.loads((job.out.out_dir / "update.json").read_text())
    assert info["metrics"]["dp_sgd_epsilon"] == pytest.approx(expected)
    tensors, _ = read_safetensors((job.out.out_dir / "update.safetensors").read_bytes())
    assert not np.allclose(tensors["0.weight"].astype(np.float32), before["0.weight"].numpy(), atol=1e-3)


def test_the_noise_is_not_the_plans_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"learning_rate": 0.1, "batch_size": 16, "dp_sgd_noise_multiplier": 1.0, "seed": 7}
    updates = []
    for attempt in (1, 2):
        job = _job(tmp_path / str(attempt), monkeypatch, 1, config)
        run_round(job, _model(), _data())
        updates.append(read_safetensors((job.out.out_dir / "update.safetensors").read_bytes())[0]["0.weight"])
    assert not np.array_equal(updates[0], updates[1])


def test_batch_norm_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job(tmp_path, monkeypatch, 1, {"dp_sgd_noise_multiplier": 1.0})
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    with pytest.raises(TrainkitError, match=r"batch-norm layer '1' \(BatchNorm1d\).*GroupNorm"):
        run_round(job, model, _data())
    assert not (job.out.out_dir / "update.safetensors").exists()
