"""Every strategy and update option, end to end through a hub and three real station agents (sandbox executor).

The fed-bodypart example train runs with a different ``[federated]`` table per case; each run must
finish, register a model whose provenance names its plan, and show what the option changes.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from client._demo import default_fl_train_dir
from client._federation import LocalFederation
from client._granted import GrantedProject, set_up_granted_project

pytestmark = pytest.mark.slow

STATIONS = ("north", "east", "south")
PASSWORD = "strategies-through-stations"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalFederation, GrantedProject]]:
    state = tmp_path_factory.mktemp("strategies") / "state"
    with LocalFederation(state) as running:
        granted = set_up_granted_project(running, stations=STATIONS, password=PASSWORD, collection="ct", patients=10)
        yield running, granted


def _train_with(tmp_path: Path, federated: str) -> Path:
    """fed-bodypart with its ``[federated]`` table replaced."""
    folder = tmp_path / "train"
    shutil.copytree(default_fl_train_dir(), folder)
    toml = (folder / "train.toml").read_text(encoding="utf-8")
    toml = re.sub(r"\[federated\].*?(?=\n\[resources\])", "[federated]\n" + federated.strip() + "\n", toml, flags=re.S)
    (folder / "train.toml").write_text(toml, encoding="utf-8")
    return folder


def _initial_model_bytes() -> bytes:
    """fed-bodypart's model as the train builds it with seed 0 (the DP plan starts from it)."""
    spec = importlib.util.spec_from_file_location("fed_bodypart_main", default_fl_train_dir() / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return save_safetensors(module.build_model().state_dict())


def _run(federation: tuple[LocalFederation, GrantedProject], train_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit the train, wait for its run; return the run and its registered model."""
    running, granted = federation
    with granted.client() as researcher:
        train = researcher.submit_train(
            train_dir,
            keys=granted.keys,
            researcher=granted.researcher,
            project_id=granted.project_id,
            collections=list(granted.collections),
        )
        deadline = time.monotonic() + 600
        while (run := researcher.read_train_rounds(train["id"]))["status"] == "running":
            assert time.monotonic() < deadline, f"the run did not finish: {run}"
            running.check_alive()
            time.sleep(0.3)
        assert run["status"] == "finished", (run["status"], run.get("reason"), running.log_tail("hub"))
        assert run["model_id"], "a finished run registers its model"
        model = researcher.read_model(run["model_id"])
        model["weights"] = load_safetensors(researcher.fetch_model_weights(run["model_id"]))
    return run, model


def _contributors(run: dict[str, Any]) -> list[list[str]]:
    return [sorted(row["contributed"]) for row in run["rounds"]]


ONE_PASS = "min_stations = 1\nlocal_epochs = 1\nlearning_rate = 0.05\nbatch_size = 16\n"
COMMON = "rounds = 2\n" + ONE_PASS


@pytest.mark.parametrize("strategy", ["fedprox", "fedbn"])
def test_averaging_strategies_use_every_station_each_round(
    federation: tuple[LocalFederation, GrantedProject], tmp_path: Path, strategy: str
) -> None:
    extra = "proximal_mu = 0.01\n" if strategy == "fedprox" else ""
    run, model = _run(federation, _train_with(tmp_path, f'strategy = "{strategy}"\n{COMMON}{extra}'))

    assert _contributors(run) == [sorted(federation[1].collections)] * 2
    assert model["provenance"]["strategy"] == strategy
    assert all(torch.isfinite(value.float()).all() for value in model["weights"].values())


def test_single_weight_transfer_visits_each_station_once(
    federation: tuple[LocalFederation, GrantedProject], tmp_path: Path
) -> None:
    run, _ = _run(federation, _train_with(tmp_path, 'strategy = "swt"\n' + ONE_PASS))

    visited = [names[0] for names in _contributors(run)]
    assert sorted(visited) == sorted(federation[1].collections)
    assert all(len(names) == 1 for names in _contributors(run))


def test_cyclic_weight_transfer_goes_round_the_stations_twice(
    federation: tuple[LocalFederation, GrantedProject], tmp_path: Path
) -> None:
    run, _ = _run(federation, _train_with(tmp_path, 'strategy = "cwt"\ncycles = 2\n' + ONE_PASS))

    visited = [names[0] for names in _contributors(run)]
    assert len(visited) == 2 * len(STATIONS)
    assert visited[: len(STATIONS)] == visited[len(STATIONS) :]


def test_ensemble_packages_one_member_per_station(
    federation: tuple[LocalFederation, GrantedProject], tmp_path: Path
) -> None:
    _, model = _run(federation, _train_with(tmp_path, 'strategy = "ensemble"\n' + ONE_PASS))

    members = {key.partition("::")[0] for key in model["weights"]}
    assert members == set(federation[1].collections)


@pytest.mark.parametrize("method", ["topk", "sign"])
def test_compressed_updates_shrink_the_upload_from_round_two(
    federation: tuple[LocalFederation, GrantedProject], tmp_path: Path, method: str
) -> None:
    plan = f'strategy = "fedavg"\n{COMMON}compression = "{method}"\ntopk_fraction = 0.05\n'
    run, _ = _run(federation, _train_with(tmp_path, plan))

    first, second = (row["bytes_up"] for row in run["rounds"])
    # round 1: fp16 weights (no initial model); round 2: the packed change, ~1/11 (topk) and ~1/8 (sign) of that
    assert second < first / 6, (method, first, second)


def test_differential_privacy_reports_its_budget_with_the_model(
    federation: tuple[LocalFederation, GrantedProject], tmp_path: Path
) -> None:
    with federation[1].client() as researcher:
        initial = researcher.upload_artifact(_initial_model_bytes())
    plan = f'strategy = "fedavg"\n{COMMON}dp_clip_norm = 1.0\ndp_noise_multiplier = 1.1\ninitial_model = "{initial}"\n'
    _, model = _run(federation, _train_with(tmp_path, plan))

    budget = model["provenance"]["dp"]
    assert budget["noise_multiplier"] == 1.1 and budget["delta"] == 1e-5
    assert budget["epsilon"] is not None and budget["epsilon"] > 0


def test_dp_sgd_at_the_stations_reports_each_stations_epsilon(
    federation: tuple[LocalFederation, GrantedProject], tmp_path: Path
) -> None:
    plan = f'strategy = "fedavg"\n{COMMON}dp_sgd_noise_multiplier = 1.0\ndp_sgd_clip = 1.0\n'
    run, model = _run(federation, _train_with(tmp_path, plan))

    spent = [row["station_metrics"][name]["dp_sgd_epsilon"] for row in run["rounds"] for name in row["contributed"]]
    assert len(spent) == 2 * len(STATIONS) and all(value > 0 for value in spent)
    budget = model["provenance"]["dp"]
    assert budget["mechanism"] == "DP-SGD at each station (local DP on each station's data)"
    assert budget["epsilon"] == max(spent) and budget["delta"] == 1e-5 and budget["rounds"] == 2
    assert set(budget["stations"]) == set(federation[1].collections)
    assert all(torch.isfinite(value.float()).all() for value in model["weights"].values())
