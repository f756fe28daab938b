"""The benchmark's FedAvg through real stations: a hub and 4 station agents on loopback, real executors.

The same task, seeds, local epochs, learning rate and batch size as ``bench.fl.run``'s in-process
FedAvg row, but every round is a real round: the hub opens one job per station, each station
agent long-polls it, verifies the signed train, runs it in its executor (the bubblewrap sandbox by
default), checks and uploads the fp16 update with a signed envelope, and the hub aggregates. The
train (written here into a temporary folder together with a copy of ``bench/fl/task.py``) takes
its partition of scikit-learn's digits by the station's index — in a real federation the data
would be the station's collection; for timing and accuracy the partition is what matters.

    .venv/bin/python -m bench.fl.stations --rounds 6 --executor sandbox

merges ``stations_*`` keys into ``bench/results/fl.json``: the steady-state round time (median of
rounds 2..n), the cold start (submission to the end of round 1), the final accuracy of the
registered model and the in-process FedAvg's accuracy for the same seed and rounds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from safetensors.torch import load as load_safetensors

from bench.fl.run import BATCH, EPOCHS, LR, _options, run_rounds
from bench.fl.task import accuracy, make_task
from client._federation import LocalFederation
from client._granted import set_up_granted_project
from hub.strategies import FedAvg

RESULTS = Path(__file__).resolve().parents[1] / "results" / "fl.json"
PASSWORD = "bench-fl-stations-password"
STATIONS = 4

TRAIN_TOML = """name = "digits-fedavg"
version = "0.1.0"
kind = "federated"
entrypoint = "main.py"
outputs = [{{ name = "update.safetensors", type = "safetensors" }}, {{ name = "update.json", type = "json" }}]

[federated]
strategy = "fedavg"
rounds = {rounds}
min_stations = {stations}
local_epochs = {epochs}
learning_rate = {lr}
batch_size = {batch}
round_deadline_s = 900

[resources]
cpu = 1
memory = "2g"
time = "10m"
"""

TRAIN_MAIN = """import json
import sys

import torch
from safetensors.torch import load_file, save

import trainkit

job = trainkit.job()
sys.path.insert(0, str(job.train_dir))
from task import accuracy, fit, initial_state, make_task  # noqa: E402

SEED = {seed}
task = make_task(alpha=None, seed=SEED, stations={stations})
part = task.stations[int(job.station.rsplit("-", 1)[1])]
if job.round.global_model is not None:
    start = {{k: v.float() if v.is_floating_point() else v for k, v in load_file(job.round.global_model).items()}}
else:
    start = initial_state(SEED)
trained = fit(start, part, epochs={epochs}, lr={lr}, batch_size={batch}, seed=SEED * 1000 + job.round.number)
wire = {{k: v.half() if v.is_floating_point() else v for k, v in trained.items()}}
job.out.write_bytes("update.safetensors", save(wire, metadata={{"compression": "fp16"}}))
info = {{"num_examples": len(part), "metrics": {{"test_accuracy": accuracy(trained, task.test)}}}}
job.out.write_text("update.json", json.dumps(info))
"""


def _write_train(folder: Path, *, rounds: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    values = {"rounds": rounds, "stations": STATIONS, "epochs": EPOCHS, "lr": LR, "batch": BATCH, "seed": seed}
    (folder / "train.toml").write_text(TRAIN_TOML.format(**values))
    (folder / "main.py").write_text(TRAIN_MAIN.format(**values))
    shutil.copyfile(Path(__file__).with_name("task.py"), folder / "task.py")
    return folder


def _finished(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def measure(*, rounds: int, seed: int, executor: str, workdir: Path) -> dict[str, Any]:
    """Run the federation and one FedAvg run; return the figures."""
    train_dir = _write_train(workdir / "train", rounds=rounds, seed=seed)
    names = [f"site-{index}" for index in range(STATIONS)]
    with LocalFederation(workdir / "state") as federation:
        granted = set_up_granted_project(
            federation, stations=names, password=PASSWORD, executor=executor, collection="digits", patients=5
        )
        with granted.client() as researcher:
            submitted = time.time()
            train = researcher.submit_train(
                train_dir,
                keys=granted.keys,
                researcher=granted.researcher,
                project_id=granted.project_id,
                collections=list(granted.collections),
            )
            deadline = time.monotonic() + 1800
            while (run := researcher.read_train_rounds(train["id"]))["status"] == "running":
                if time.monotonic() > deadline:
                    raise RuntimeError("the federated run did not finish within 30 minutes")
                federation.check_alive()
                time.sleep(0.2)
            if run["status"] != "finished":
                raise RuntimeError(f"the run ended {run['status']}: {run.get('reason')}")
            weights = researcher.fetch_model_weights(run["model_id"])
    ends = [_finished(row["finished_at"]) for row in run["rounds"]]
    steady = [later - earlier for earlier, later in itertools.pairwise(ends)]
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_safetensors(weights).items()}
    task = make_task(alpha=None, seed=seed, stations=STATIONS)
    in_process, _, _, _ = run_rounds(task, FedAvg(_options()), rounds=rounds, seed=seed)
    return {
        "stations_executor": executor,
        "stations_rounds": rounds,
        "stations_round_s": statistics.median(steady),
        "stations_cold_start_s": ends[0] - submitted,
        "stations_acc": accuracy(state, task.test),
        "stations_in_process_acc": accuracy(in_process, task.test),
        "stations_command": f"python -m bench.fl.stations --rounds {rounds} --executor {executor}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--executor", choices=["sandbox", "docker"], default="sandbox")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainyard-fl-stations-") as tmp:
        figures = measure(rounds=args.rounds, seed=args.seed, executor=args.executor, workdir=Path(tmp))
    print(json.dumps(figures, indent=2))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(figures)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
