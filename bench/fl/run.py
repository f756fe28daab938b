"""Federated learning benchmark: Trainyard's strategies vs centralized training and vs Flower.

Same model, data, partitions (IID, Dirichlet alpha = 0.5 and 0.1 over 4 stations), seeds, rounds and
local epochs for every row. Trainyard's rounds run in process through ``hub.strategies`` with every
update serialised as the stations send it (safetensors, fp16) and read back by ``hub.fl``. Flower
(``flwr[simulation]``) runs in its own virtual environment (``.venv-flower``, so its pins never
touch the product's) through ``bench/fl/flower_side.py`` on the same ``bench/fl/task.py``.

    .venv/bin/python -m bench.fl.run                # full table, 3 seeds, 20 rounds
    .venv/bin/python -m bench.fl.run --quick        # 1 seed, 5 rounds (a smoke run)
    .venv/bin/python -m bench.fl.compression        # only the communication rows, merged into fl.json

Writes ``bench/results/fl.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.fl.task import Task, accuracy, ensemble_accuracy, fit, initial_state, make_task
from hub.fl import decode_state, encode_state
from hub.strategies import (
    CyclicWeightTransfer,
    FedAvg,
    FedBN,
    FedProx,
    FitResult,
    SingleWeightTransfer,
    StrategyOptions,
    StreamingAverage,
)
from hub.strategies.fedbn import is_batch_norm_parameter
from hub.strategies.strategy import Strategy

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "fl.json"
FLOWER_PYTHON = REPO / ".venv-flower" / "bin" / "python"
PARTITIONS: dict[str, float | None] = {"iid": None, "alpha0.5": 0.5, "alpha0.1": 0.1}
LR, BATCH, EPOCHS, MU = 0.05, 32, 1, 0.01
State = dict[str, torch.Tensor]


def _wire(state: State) -> tuple[State, int]:
    """What the hub gets from a station: fp16 safetensors, decoded to float32; and its size."""
    data = encode_state(
        {k: v.half() if v.is_floating_point() else v for k, v in state.items()}, metadata={"compression": "fp16"}
    )
    return decode_state(data), len(data)


def run_rounds(
    task: Task, strategy: Strategy, *, rounds: int, seed: int, mu: float = 0.0
) -> tuple[State, list[float], list[State], int]:
    """Rounds of ``strategy``; return the global state, each round's seconds, the last local states, bytes/round."""
    state = initial_state(seed)
    names = [f"s{i}" for i in range(len(task.stations))]
    local: dict[str, State] = {}
    times: list[float] = []
    sent = 0
    for number in range(1, rounds + 1):
        started = time.perf_counter()
        chosen = strategy.configure_round(number, names, state)
        results, sent = [], 0
        for name in chosen:
            start = dict(state)
            if isinstance(strategy, FedBN) and name in local:  # batch norm stays at the station
                start.update(_batch_norm(local[name]))
            trained = fit(
                start,
                task.stations[names.index(name)],
                epochs=EPOCHS,
                lr=LR,
                batch_size=BATCH,
                seed=seed * 1000 + number,
                proximal_mu=mu,
            )
            local[name] = trained
            wire, size = _wire(trained)
            sent += size
            results.append(FitResult(station=name, state=wire, num_examples=len(task.stations[names.index(name)])))
        aggregated, _metrics = strategy.aggregate_round(number, results, [])
        state = {**state, **aggregated}
        times.append(time.perf_counter() - started)
    return state, times, [local[name] for name in names if name in local], sent


def _batch_norm(state: State) -> State:
    return {k: v for k, v in state.items() if is_batch_norm_parameter(k)}


def _options() -> StrategyOptions:
    return StrategyOptions(local_epochs=EPOCHS, learning_rate=LR, batch_size=BATCH)


def row_results(task: Task, *, rounds: int, seed: int) -> dict[str, float]:
    """Every strategy's final test accuracy for one task and seed."""
    out: dict[str, float] = {}
    out["centralized"] = accuracy(
        fit(initial_state(seed), task.train, epochs=rounds * EPOCHS, lr=LR, batch_size=BATCH, seed=seed), task.test
    )
    state, _, _, _ = run_rounds(task, FedAvg(_options()), rounds=rounds, seed=seed)
    out["fedavg"] = accuracy(state, task.test)
    state, _, _, _ = run_rounds(task, FedProx(_options(), proximal_mu=MU), rounds=rounds, seed=seed, mu=MU)
    out["fedprox"] = accuracy(state, task.test)
    state, _, locals_, _ = run_rounds(task, FedBN(_options()), rounds=rounds, seed=seed)
    # each station's model: the shared layers plus its own batch norm
    out["fedbn"] = statistics.fmean(accuracy({**state, **_batch_norm(s)}, task.test) for s in locals_)
    names = [f"s{i}" for i in range(len(task.stations))]
    cycles = max(1, rounds // len(names))
    cwt = CyclicWeightTransfer(_options(), cycles=cycles, order=names)
    state, _, _, _ = run_rounds(task, cwt, rounds=cycles * len(names), seed=seed)
    out["cwt"] = accuracy(state, task.test)
    swt = SingleWeightTransfer(_options(), order=names)
    state, _, _, _ = run_rounds(task, swt, rounds=len(names), seed=seed)
    out["swt"] = accuracy(state, task.test)
    singles = [
        fit(initial_state(seed), part, epochs=rounds * EPOCHS, lr=LR, batch_size=BATCH, seed=seed)
        for part in task.stations
    ]
    out["ensemble"] = ensemble_accuracy(singles, task.test)
    out["best_single_station"] = max(accuracy(s, task.test) for s in singles)
    return out


def run_flower(alpha: float | None, seeds: list[int], rounds: int) -> dict[str, Any] | None:
    """Flower's FedAvg on the same task in its own venv; None (with a printed reason) when unavailable."""
    if not FLOWER_PYTHON.exists():
        print("flower: .venv-flower is missing (make bench-fl-flower creates it); Flower rows skipped")
        return None
    command = [
        str(FLOWER_PYTHON),
        str(REPO / "bench" / "fl" / "flower_side.py"),
        "--rounds",
        str(rounds),
        "--seeds",
        ",".join(map(str, seeds)),
        "--alpha",
        "iid" if alpha is None else str(alpha),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench" / "fl"), "RAY_DEDUP_LOGS": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        print("flower failed:", done.stderr[-2000:])
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def aggregate_many(updates: int, parameters: int) -> tuple[float, float]:
    """Seconds to decode and fold ``updates`` fp16 updates of ``parameters`` floats; peak RSS in MB after."""
    base = torch.randn(parameters // 4, 4)
    acc = StreamingAverage()
    spent = 0.0
    for i in range(updates):
        data = encode_state({"w": (base + i).half()}, metadata={"compression": "fp16"})
        started = time.perf_counter()
        acc.add(decode_state(data), 10)
        spent += time.perf_counter() - started
    acc.result()
    return spent, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 rounds, a small aggregation")
    parser.add_argument("--no-flower", action="store_true")
    args = parser.parse_args(argv)
    seeds = list(range(1 if args.quick else args.seeds))
    rounds = 5 if args.quick else args.rounds
    torch.set_num_threads(1)

    table: dict[str, dict[str, float]] = {}
    round_times: list[float] = []
    bytes_per_round = 0
    for label, alpha in PARTITIONS.items():
        per_seed = []
        for seed in seeds:
            task = make_task(alpha=alpha, seed=seed)
            per_seed.append(row_results(task, rounds=rounds, seed=seed))
            if label == "iid":
                _, times, _, bytes_per_round = run_rounds(task, FedAvg(_options()), rounds=rounds, seed=seed)
                round_times.extend(times[1:])
        table[label] = {key: _mean([row[key] for row in per_seed]) for key in per_seed[0]}
        print(label, {key: round(value, 4) for key, value in table[label].items()}, flush=True)

    flower = None if args.no_flower else run_flower(None, seeds, rounds)
    updates, parameters = (10, 1_000_000) if args.quick else (100, 11_000_000)
    aggregate_s, peak_mb = aggregate_many(updates, parameters)

    ours_round = _mean(round_times)
    iid = table["iid"]
    summary: dict[str, Any] = {
        "seeds": len(seeds),
        "rounds": rounds,
        "local_epochs": EPOCHS,
        "stations": 4,
        "table_acc": table,
        "centralized_acc": iid["centralized"],
        "fedavg_iid_gap_pp": 100 * (iid["centralized"] - iid["fedavg"]),
        "fedavg_alpha05_gap_pp": 100 * (table["alpha0.5"]["centralized"] - table["alpha0.5"]["fedavg"]),
        "cwt_iid_gap_pp": 100 * (iid["centralized"] - iid["cwt"]),
        "trainyard_round_s": ours_round,
        "bytes_per_round_fp16": bytes_per_round,
        "aggregate_updates": updates,
        "aggregate_parameters": parameters,
        f"aggregate_{updates}x{parameters // 1_000_000}M_s": aggregate_s,
        "aggregate_peak_rss_mb": peak_mb,
    }
    if flower is not None:
        summary["flower_acc"] = flower["accuracy"]
        summary["flower_acc_delta_pp"] = 100 * (iid["fedavg"] - flower["accuracy"])
        summary["flower_round_s"] = flower["round_s"]
        summary["flower_cold_start_s"] = flower["cold_start_s"]
        summary["round_time_vs_flower"] = ours_round / flower["round_s"] if flower["round_s"] else None
    for name, value in _extra_rows().items():
        summary[name] = value
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "table_acc"}, indent=2))
    return 0


def _extra_rows() -> dict[str, Any]:
    """Compression, secure aggregation and DP rows: measured by their own modules when present."""
    rows: dict[str, Any] = {}
    try:
        from bench.fl import extras
    except ImportError:
        return rows
    hooks: list[tuple[str, Callable[[], dict[str, Any]]]] = extras.HOOKS
    for name, hook in hooks:
        try:
            rows.update(hook())
        except Exception as exc:  # a missing module is reported, not fatal
            rows[f"{name}_error"] = str(exc)
    return rows


if __name__ == "__main__":
    sys.exit(main())
