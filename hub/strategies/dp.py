"""Differential privacy at aggregation: each station's change clipped, Gaussian noise on the mean.

Client-level DP-FedAvg (McMahan et al. 2018): every station's update is turned into its change
from the round's global model, scaled down to an L2 norm of at most ``clip_norm`` (over all its
floating-point tensors together), the changes are averaged with equal weights (a station's
example count would leak through the weights), and Gaussian noise of standard deviation
``noise_multiplier * clip_norm / stations`` is added to the mean. One station's whole
contribution then changes the sum by at most ``clip_norm``: the Gaussian mechanism, composed
over the rounds with Rényi DP (:func:`epsilon_for`).

The hub sees each station's update before the noise (central DP: the hub is trusted with
them); with secure aggregation the noise would have to be added at the stations.

Examples
--------
>>> round(epsilon_for(noise_multiplier=1.0, rounds=20), 1)
31.5
>>> epsilon_for(noise_multiplier=0.0, rounds=20)
inf
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from trainkit import privacy

from .strategy import FitResult, RoundFailure, Strategy

__all__ = ["DifferentialPrivacy", "epsilon_for", "noise_for_epsilon"]

State = dict[str, torch.Tensor]


def epsilon_for(*, noise_multiplier: float, rounds: int, delta: float = 1e-5) -> float:
    """The ε after ``rounds`` Gaussian mechanisms with this noise multiplier (every station each round).

    :mod:`trainkit.privacy`'s accountant with a sampling rate of 1, as the stations' DP-SGD uses it.
    """
    return privacy.epsilon(noise_multiplier=noise_multiplier, sampling_rate=1.0, steps=rounds, delta=delta)


def noise_for_epsilon(epsilon: float, *, rounds: int, delta: float = 1e-5) -> float:
    """The smallest noise multiplier (to 0.1 %) that keeps ``rounds`` rounds within ``epsilon``."""
    return privacy.noise_for_epsilon(epsilon, sampling_rate=1.0, steps=rounds, delta=delta)


class DifferentialPrivacy(Strategy):
    """Wraps a strategy's round with clipping and noise; the wrapped strategy configures the rounds."""

    name = "dp"

    def __init__(
        self,
        inner: Strategy,
        *,
        base: State,
        clip_norm: float,
        noise_multiplier: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(inner.options)
        if clip_norm <= 0:
            raise ValueError("the clip norm must be positive")
        if noise_multiplier < 0:
            raise ValueError("the noise multiplier cannot be negative")
        self.inner = inner
        self.base = base
        self.clip_norm = clip_norm
        self.noise_multiplier = noise_multiplier
        self.generator = generator

    def configure_round(self, server_round: int, stations: Sequence[str], state: State) -> dict[str, dict[str, Any]]:
        """As the wrapped strategy does."""
        return self.inner.configure_round(server_round, stations, state)

    def aggregate_round(
        self, server_round: int, results: Sequence[FitResult], failures: Sequence[RoundFailure]
    ) -> tuple[State, dict[str, float]]:
        """The noisy mean of the clipped changes, added to the global model; metrics as the wrapped strategy's."""
        state, metrics = super().aggregate_round(server_round, results, failures)
        return state, metrics | {"dp_noise_std": self.noise_multiplier * self.clip_norm / len(results)}

    def _aggregate(self, server_round: int, results: Sequence[FitResult]) -> State:
        floats = [key for key, value in self.base.items() if value.is_floating_point()]
        total = {key: torch.zeros_like(self.base[key], dtype=torch.float32) for key in floats}
        for result in results:
            change = {key: result.state[key].float() - self.base[key].float() for key in floats}
            norm = math.sqrt(sum(float((value**2).sum()) for value in change.values()))
            scale = min(1.0, self.clip_norm / norm) if norm > 0 else 1.0
            for key in floats:
                total[key] += change[key] * scale
        count = len(results)
        std = self.noise_multiplier * self.clip_norm / count
        state: State = {}
        for key, value in self.base.items():
            if key not in total:
                state[key] = results[-1].state.get(key, value)  # integers (batch-norm counters): the latest
                continue
            noise = torch.randn(value.shape, generator=self.generator) * std if std > 0 else 0
            state[key] = (value.float() + total[key] / count + noise).to(value.dtype)
        return state
