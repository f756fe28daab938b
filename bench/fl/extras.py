"""Rows of the FL benchmark beyond the strategy table: update compression and differential privacy.

Each compressed run is FedAvg with the same task, seeds, rounds and local epochs as the table;
round 1 sends whole fp16 weights (there is no global model to change yet), later rounds send
their change compressed by ``trainkit.compression`` with error feedback kept per station, and
the hub side decodes it with ``hub.fl.decode_state`` exactly as in production. Bytes are the
update files' sizes.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.fl.task import Task, accuracy, fit, initial_state, make_task
from hub.fl import decode_state, encode_state
from hub.strategies import FedAvg, FitResult, StrategyOptions
from hub.strategies.dp import DifferentialPrivacy, noise_for_epsilon
from trainkit.compression import compress_update

__all__ = ["HOOKS", "compressed_fedavg"]

SEEDS, ROUNDS, EPOCHS, LR, BATCH = (0, 1, 2), 20, 1, 0.05, 32


def compressed_fedavg(
    task: Task, method: str, *, seed: int, rounds: int, fraction: float = 0.01
) -> tuple[float, float]:
    """Final accuracy and mean bytes per station per round (after round 1) of compressed FedAvg."""
    strategy = FedAvg(StrategyOptions(local_epochs=EPOCHS, learning_rate=LR, batch_size=BATCH))
    names = [f"s{i}" for i in range(len(task.stations))]
    state = initial_state(seed)
    residuals: dict[str, dict[str, np.ndarray] | None] = dict.fromkeys(names)
    sizes: list[int] = []
    for number in range(1, rounds + 1):
        results = []
        for index, name in enumerate(strategy.configure_round(number, names, state)):
            trained = fit(
                state, task.stations[index], epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=seed * 1000 + number
            )
            if number == 1 or method == "fp16":
                data = encode_state(
                    {k: v.half() if v.is_floating_point() else v for k, v in trained.items()},
                    metadata={"compression": "fp16"},
                )
                received = decode_state(data)
            else:
                delta = {k: (v - state[k]).numpy() if v.is_floating_point() else v.numpy() for k, v in trained.items()}
                data, residuals[name] = compress_update(
                    delta, method=method, fraction=fraction, residual=residuals[name]
                )
                received = decode_state(data, base=state)
            if number > 1:
                sizes.append(len(data))
            results.append(FitResult(station=name, state=received, num_examples=len(task.stations[index])))
        aggregated, _metrics = strategy.aggregate_round(number, results, [])
        state = {**state, **aggregated}
    return accuracy(state, task.test), statistics.fmean(sizes) if sizes else 0.0


def compression_rows(seeds: tuple[int, ...] = SEEDS, rounds: int = ROUNDS) -> dict[str, Any]:
    """Accuracy and bytes per round of fp16, top-k (1 %) and sign updates, IID and alpha = 0.5."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for label, alpha in (("iid", None), ("alpha0.5", 0.5)):
        table[label] = {}
        for method in ("fp16", "topk", "sign"):
            runs = [
                compressed_fedavg(make_task(alpha=alpha, seed=seed), method, seed=seed, rounds=rounds) for seed in seeds
            ]
            table[label][method] = {
                "acc": statistics.fmean(acc for acc, _ in runs),
                "bytes_per_update": statistics.fmean(size for _, size in runs),
            }
        print("compression", label, table[label], flush=True)
    fp16, topk = table["iid"]["fp16"], table["iid"]["topk"]
    loss = max(100 * (table[p]["fp16"]["acc"] - table[p]["topk"]["acc"]) for p in table)
    return {
        "compression_table": table,
        "compression_ratio": fp16["bytes_per_update"] / topk["bytes_per_update"],
        "compression_loss_pp": loss,
        "sign_ratio": fp16["bytes_per_update"] / table["iid"]["sign"]["bytes_per_update"],
        "sign_loss_pp": max(100 * (table[p]["fp16"]["acc"] - table[p]["sign"]["acc"]) for p in table),
    }


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


HOOKS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("compression", compression_rows),
    ("dp", dp_rows),
    ("secagg", _secagg_rows),
]
