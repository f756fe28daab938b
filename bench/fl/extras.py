"""Rows of the FL benchmark beyond the strategy table: update compression, differential privacy, secure aggregation.

Update compression has its own module (``bench.fl.compression``: every variant, IID and alpha =
0.5, bytes per round and the top-k curve); differential privacy is measured here.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.fl.task import Task, accuracy, fit, initial_state, make_task
from hub.strategies import FedAvg, FitResult, StrategyOptions
from hub.strategies.dp import DifferentialPrivacy, noise_for_epsilon

__all__ = ["HOOKS"]

SEEDS, ROUNDS, EPOCHS, LR, BATCH = (0, 1, 2), 20, 1, 0.05, 32


def compression_rows() -> dict[str, Any]:
    """The communication rows (``bench.fl.compression``)."""
    from bench.fl.compression import compression_rows as rows

    return rows()


def dp_fedavg(task: Task, *, seed: int, rounds: int, epsilon: float, clip_norm: float = 1.0) -> tuple[float, float]:
    """Final accuracy and seconds of DP-FedAvg whose noise keeps ``rounds`` rounds within ``epsilon``."""
    sigma = noise_for_epsilon(epsilon, rounds=rounds)
    names = [f"s{i}" for i in range(len(task.stations))]
    state = initial_state(seed)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for number in range(1, rounds + 1):
        inner = FedAvg(StrategyOptions(local_epochs=EPOCHS, learning_rate=LR, batch_size=BATCH))
        strategy = DifferentialPrivacy(
            inner, base=state, clip_norm=clip_norm, noise_multiplier=sigma, generator=generator
        )
        results = [
            FitResult(
                station=name,
                state=fit(state, task.stations[i], epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=seed * 1000 + number),
                num_examples=len(task.stations[i]),
            )
            for i, name in enumerate(strategy.configure_round(number, names, state))
        ]
        aggregated, _metrics = strategy.aggregate_round(number, results, [])
        state = {**state, **aggregated}
    return accuracy(state, task.test), time.perf_counter() - started


def dp_rows(seeds: tuple[int, ...] = SEEDS, rounds: int = ROUNDS) -> dict[str, Any]:
    """Accuracy against ε (1, 3, 8, ∞; δ = 1e-5) of DP-FedAvg on IID data, and its time against no DP."""
    curve: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for epsilon in (1.0, 3.0, 8.0, math.inf):
        runs = [
            dp_fedavg(make_task(alpha=None, seed=seed), seed=seed, rounds=rounds, epsilon=epsilon) for seed in seeds
        ]
        label = "inf" if math.isinf(epsilon) else f"{epsilon:g}"
        curve[label] = statistics.fmean(acc for acc, _ in runs)
        seconds[label] = statistics.fmean(spent for _, spent in runs)
        print("dp", label, round(curve[label], 4), flush=True)
    return {"dp_accuracy_by_epsilon": curve, "dp_time_factor": seconds["1"] / seconds["inf"], "dp_clip_norm": 1.0}


def _secagg_rows() -> dict[str, Any]:
    from bench.fl.secagg import secagg_rows

    return secagg_rows()


def _dp_sgd_rows() -> dict[str, Any]:
    from bench.fl.dp_sgd import dp_sgd_rows

    return dp_sgd_rows()


HOOKS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("compression", compression_rows),
    ("dp", dp_rows),
    ("dp_sgd", _dp_sgd_rows),
    ("secagg", _secagg_rows),
]
