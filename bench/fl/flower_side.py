"""Flower's FedAvg on the benchmark's task, in Flower's own virtual environment (``.venv-flower``).

Same data, partitions, model, seeds, rounds, local epochs, learning rate and batch size as
``bench/fl/run.py``: each Flower client trains with ``task.fit`` (the very function Trainyard's
stations run in the benchmark), Flower's ``FedAvg`` weights by example counts, and the server
evaluates the global model on the shared test set after each round. Prints one JSON line:
``accuracy`` (mean over seeds), ``round_s`` (steady state: mean over rounds 2..R), ``cold_start_s``
(simulation start to the first round's end, Ray start-up included).

    PYTHONPATH=bench/fl .venv-flower/bin/python bench/fl/flower_side.py --rounds 20 --seeds 0,1,2 --alpha iid
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import time
from typing import Any

import flwr
import numpy as np
import torch
from flwr.client import NumPyClient
from flwr.common import ndarrays_to_parameters
from flwr.server import ServerConfig
from flwr.server.strategy import FedAvg
from task import accuracy, fit, initial_state, make_task  # bench/fl/task.py on PYTHONPATH

LR, BATCH, EPOCHS = 0.05, 32, 1


def _state_from(keys: list[str], arrays: list[np.ndarray]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.array(value)) for key, value in zip(keys, arrays, strict=True)}


def run(alpha: float | None, seed: int, rounds: int) -> tuple[float, list[float], float]:
    task = make_task(alpha=alpha, seed=seed)
    initial = initial_state(seed)
    keys = list(initial)

    class Station(NumPyClient):  # type: ignore[misc]
        def __init__(self, index: int) -> None:
            self.index = index

        def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
            return [value.numpy() for value in initial.values()]

        def fit(
            self, parameters: list[np.ndarray], config: dict[str, Any]
        ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
            number = int(config["server_round"])
            trained = fit(
                _state_from(keys, parameters),
                task.stations[self.index],
                epochs=EPOCHS,
                lr=LR,
                batch_size=BATCH,
                seed=seed * 1000 + number,
            )
            return [value.numpy() for value in trained.values()], len(task.stations[self.index]), {}

    def client_fn(context: Any) -> Any:
        if isinstance(context, str):
            index = int(context)
        else:
            index = int(context.node_config.get("partition-id", context.node_id % len(task.stations)))
        return Station(index).to_client()

    marks: list[float] = []
    final: dict[str, float] = {}

    def evaluate(
        server_round: int, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, dict[str, Any]]:
        marks.append(time.perf_counter())
        if server_round == rounds:
            final["accuracy"] = accuracy(_state_from(keys, parameters), task.test)
        return 0.0, {}

    strategy = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=len(task.stations),
        min_available_clients=len(task.stations),
        initial_parameters=ndarrays_to_parameters([value.numpy() for value in initial.values()]),
        on_fit_config_fn=lambda number: {"server_round": number},
        evaluate_fn=evaluate,
    )
    torch.set_num_threads(1)
    started = time.perf_counter()
    flwr.simulation.start_simulation(
        client_fn=client_fn,
        num_clients=len(task.stations),
        config=ServerConfig(num_rounds=rounds),
        strategy=strategy,
        client_resources={"num_cpus": 1},
        ray_init_args={"include_dashboard": False, "num_cpus": 2, "log_to_driver": False},
    )
    # evaluate_fn runs once before round 1 (round 0) and after each round
    round_ends = marks[1:]
    steady = [later - earlier for earlier, later in itertools.pairwise(round_ends)]
    return final["accuracy"], steady, round_ends[0] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--alpha", default="iid")
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.ERROR)
    alpha = None if args.alpha == "iid" else float(args.alpha)
    runs = [run(alpha, int(seed), args.rounds) for seed in args.seeds.split(",")]
    print(
        json.dumps(
            {
                "flower_version": flwr.__version__,
                "accuracy": statistics.fmean(acc for acc, _, _ in runs),
                "round_s": statistics.fmean(s for _, steady, _ in runs for s in steady),
                "cold_start_s": statistics.fmean(cold for _, _, cold in runs),
            }
        )
    )


if __name__ == "__main__":
    main()
