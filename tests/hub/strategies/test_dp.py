"""Differential privacy at aggregation: clipping, noise, and the accounting."""

from __future__ import annotations

import math

import pytest
import torch

from hub.strategies import FedAvg, FitResult, StrategyOptions
from hub.strategies.dp import DifferentialPrivacy, epsilon_for, noise_for_epsilon

BASE = {"w": torch.zeros(4), "n": torch.tensor(0)}


def _result(name: str, change: list[float], examples: int = 10) -> FitResult:
    return FitResult(station=name, state={"w": torch.tensor(change), "n": torch.tensor(7)}, num_examples=examples)


def test_changes_are_clipped_and_averaged_with_equal_weights() -> None:
    dp = DifferentialPrivacy(FedAvg(StrategyOptions()), base=BASE, clip_norm=1.0, noise_multiplier=0.0)

    state, metrics = dp.aggregate_round(1, [_result("a", [3.0, 4.0, 0, 0], 1000), _result("b", [0, 0, 0.1, 0])], [])

    # a's change (norm 5) is scaled to norm 1: [0.6, 0.8]; b's is kept; equal weights despite 1000 vs 10 examples
    assert torch.allclose(state["w"], torch.tensor([0.3, 0.4, 0.05, 0.0]))
    assert state["n"].item() == 7
    assert metrics["dp_noise_std"] == 0.0


def test_noise_has_the_promised_scale() -> None:
    generator = torch.Generator().manual_seed(0)
    dp = DifferentialPrivacy(
        FedAvg(StrategyOptions()), base={"w": torch.zeros(20_000)}, clip_norm=2.0, noise_multiplier=1.5,
        generator=generator,
    )  # fmt: skip
    results = [FitResult(station=s, state={"w": torch.zeros(20_000)}, num_examples=5) for s in "abcd"]

    state, metrics = dp.aggregate_round(1, results, [])

    assert metrics["dp_noise_std"] == pytest.approx(1.5 * 2.0 / 4)
    assert float(state["w"].std()) == pytest.approx(0.75, rel=0.05)


def test_accounting_is_monotone_and_invertible() -> None:
    assert epsilon_for(noise_multiplier=2.0, rounds=10) < epsilon_for(noise_multiplier=2.0, rounds=20)
    assert epsilon_for(noise_multiplier=4.0, rounds=20) < epsilon_for(noise_multiplier=2.0, rounds=20)
    for target in (1.0, 3.0, 8.0):
        sigma = noise_for_epsilon(target, rounds=20)
        assert epsilon_for(noise_multiplier=sigma, rounds=20) == pytest.approx(target, rel=1e-3)
    assert noise_for_epsilon(math.inf, rounds=20) == 0.0


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="clip norm"):
        DifferentialPrivacy(FedAvg(), base=BASE, clip_norm=0, noise_multiplier=1)
    with pytest.raises(ValueError, match="noise multiplier"):
        DifferentialPrivacy(FedAvg(), base=BASE, clip_norm=1, noise_multiplier=-1)
