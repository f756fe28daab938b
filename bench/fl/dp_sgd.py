"""Station-level DP-SGD on the benchmark's digits task: accuracy against ε, and its time against plain SGD.

Each of the 4 IID stations trains with ``trainkit.fl.DPSGD`` (the code a train runs at a station:
Poisson samples at q = batch / N, each example's gradient clipped to C = 1, Gaussian noise sigma·C on
the sum); the hub averages with FedAvg. sigma is the smallest that keeps every station within ε
(δ = 1e-5) after all its steps, by ``trainkit.privacy``. The MLP is ``bench.fl.task``'s without
its batch norm (DP-SGD needs each example's own gradient, which batch norm mixes), for the DP rows
and for their ε = ∞ row (plain SGD, the same model), which is the time baseline too.

    .venv/bin/python -m bench.fl.dp_sgd             # 3 seeds, 20 rounds, merged into bench/results/fl.json
    .venv/bin/python -m bench.fl.dp_sgd --quick     # 1 seed, 5 rounds, printed only
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from typing import Any

import torch
from torch import nn

from bench.fl.task import Split, Task, make_task
from hub.strategies import FedAvg, FitResult, StrategyOptions
from trainkit.fl import DPSGD
from trainkit.privacy import noise_for_epsilon

__all__ = ["dp_sgd_rows"]

SEEDS, ROUNDS, EPOCHS, LR, BATCH, CLIP, DELTA = (0, 1, 2), 20, 1, 0.05, 32, 1.0, 1e-5
EPSILONS = (1.0, 3.0, 8.0, math.inf)
State = dict[str, torch.Tensor]


def build_model() -> nn.Module:
    """``bench.fl.task``'s 64-64-10 MLP without batch norm."""
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _accuracy(state: State, data: Split) -> float:
    model = build_model()
    model.load_state_dict(state)
    with torch.no_grad():
        return float((model(data.x).argmax(1) == data.y).float().mean())


def _local(state: State, data: Split, *, sigma: float | None, seed: int) -> State:
    """One station's local epochs: DP-SGD when ``sigma`` is given, plain minibatch SGD otherwise."""
    torch.manual_seed(seed)
    model = build_model()
    model.load_state_dict(state)
    optimiser = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    dp = None
    if sigma is not None:
        dp = DPSGD(noise_multiplier=sigma, clip=CLIP, batch_size=BATCH, generator=torch.Generator().manual_seed(seed))
    for _ in range(EPOCHS):
        if dp is not None:
            dp.epoch(model, loss_fn, optimiser, data.x, data.y)
            continue
        order = torch.randperm(len(data))
        for start in range(0, len(order), BATCH):
            index = order[start : start + BATCH]
            optimiser.zero_grad()
            loss_fn(model(data.x[index]), data.y[index]).backward()
            optimiser.step()
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def sigma_for(task: Task, epsilon: float, rounds: int) -> float | None:
    """The smallest sigma that keeps every station within ``epsilon`` after ``rounds`` rounds (None: no DP)."""
    if math.isinf(epsilon):
        return None
    needed = []
    for station in task.stations:
        dp = DPSGD(noise_multiplier=1.0, clip=CLIP, batch_size=BATCH)
        steps = rounds * EPOCHS * dp.steps_per_epoch(len(station))
        needed.append(
            noise_for_epsilon(epsilon, sampling_rate=dp.sampling_rate(len(station)), steps=steps, delta=DELTA)
        )
    return max(needed)


def run(task: Task, *, seed: int, rounds: int, sigma: float | None) -> tuple[float, float]:
    """Final test accuracy and training seconds of ``rounds`` FedAvg rounds over the stations."""
    torch.manual_seed(seed)
    state = {key: value.clone() for key, value in build_model().state_dict().items()}
    names = [f"s{i}" for i in range(len(task.stations))]
    spent = 0.0
    for number in range(1, rounds + 1):
        strategy = FedAvg(StrategyOptions(local_epochs=EPOCHS, learning_rate=LR, batch_size=BATCH))
        started = time.perf_counter()
        results = [
            FitResult(
                station=name,
                state=_local(state, task.stations[i], sigma=sigma, seed=seed * 1000 + number * 10 + i),
                num_examples=len(task.stations[i]),
            )
            for i, name in enumerate(strategy.configure_round(number, names, state))
        ]
        spent += time.perf_counter() - started
        aggregated, _metrics = strategy.aggregate_round(number, results, [])
        state = {**state, **aggregated}
    return _accuracy(state, task.test), spent


def dp_sgd_rows(seeds: tuple[int, ...] = SEEDS, rounds: int = ROUNDS) -> dict[str, Any]:
    """Accuracy against ε (1, 3, 8, ∞; δ = 1e-5) of station DP-SGD on IID digits, and its time factor."""
    curve: dict[str, float] = {}
    seconds: dict[str, float] = {}
    sigmas: dict[str, float] = {}
    run(make_task(alpha=None, seed=0), seed=0, rounds=1, sigma=1.0)  # warm-up: torch.func's first vmap
    for epsilon in EPSILONS:
        label = "inf" if math.isinf(epsilon) else f"{epsilon:g}"
        runs = []
        for seed in seeds:
            task = make_task(alpha=None, seed=seed)
            sigma = sigma_for(task, epsilon, rounds)
            if sigma is not None:
                sigmas[label] = sigma
            runs.append(run(task, seed=seed, rounds=rounds, sigma=sigma))
        curve[label] = statistics.fmean(acc for acc, _ in runs)
        seconds[label] = statistics.fmean(spent for _, spent in runs)
        print("dp-sgd", label, round(curve[label], 4), round(seconds[label], 2), "s", flush=True)
    finite = [label for label in curve if label != "inf"]
    return {
        "dp_sgd_accuracy_by_epsilon": curve,
        "dp_sgd_noise_multiplier_by_epsilon": sigmas,
        "dp_sgd_time_factor": statistics.fmean(seconds[label] for label in finite) / seconds["inf"],
        "dp_sgd_clip": CLIP,
        "dp_sgd_delta": DELTA,
        "dp_sgd_batch_size": BATCH,
        "dp_sgd_model": "the 64-64-10 MLP without batch norm (DP rows and their eps = inf row)",
        "dp_sgd_seeds": len(seeds),
        "dp_sgd_rounds": rounds,
        "dp_sgd_command": "python -m bench.fl.dp_sgd",
    }


def main(argv: list[str] | None = None) -> int:
    """Run the rows; merge them into ``bench/results/fl.json`` (read right before writing)."""
    from bench.fl.run import RESULTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 rounds, printed only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = dp_sgd_rows(seeds=(0,), rounds=5) if args.quick else dp_sgd_rows()
    print(json.dumps(rows, indent=2))
    if args.quick:
        return 0
    summary = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    summary.update(rows)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
