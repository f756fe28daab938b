"""The fed-bodypart federated example train, run as a subprocess on synthetic CT: two rounds at one station."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from station.synthetic import write_synthetic_collection

REPO = Path(__file__).resolve().parents[2]
TRAIN_DIR = REPO / "examples" / "trains" / "fed-bodypart"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fed-data")
    write_synthetic_collection(root, site_index=0, patients=10, seed=3)
    return root


def run_round(
    tmp_path: Path,
    data_dir: Path,
    number: int,
    global_model: Path | None,
    *,
    extra: dict[str, object] | None = None,
    station_state: Path | None = None,
) -> Path:
    job_dir, out_dir = tmp_path / f"job-{number}", tmp_path / f"out-{number}"
    job_dir.mkdir()
    out_dir.mkdir()
    config = {"local_epochs": 1, "learning_rate": 0.05, "seed": 0, **(extra or {})}
    section: dict[str, object] = {"number": number, "config": config}
    if global_model is not None:
        (job_dir / "global.safetensors").write_bytes(global_model.read_bytes())
        section["global_model"] = "global.safetensors"
    if station_state is not None:
        (job_dir / "station_state.safetensors").write_bytes(station_state.read_bytes())
        section["station_state"] = "station_state.safetensors"
    outputs = [{"name": "update.safetensors", "type": "safetensors"}, {"name": "update.json", "type": "json"}]
    (job_dir / "job.json").write_text(json.dumps({"job_id": "j", "outputs": outputs, "round": section}))
    env = {
        **os.environ,
        "TRAINYARD_JOB": str(job_dir / "job.json"),
        "TRAINYARD_DATA": str(data_dir),
        "TRAINYARD_OUT": str(out_dir),
        "TRAINYARD_TRAIN": str(TRAIN_DIR),
        "PYTHONPATH": str(REPO),
    }
    completed = subprocess.run(
        [sys.executable, str(TRAIN_DIR / "main.py")], env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    return out_dir


def test_round_writes_fp16_weights_and_metrics(tmp_path: Path, data_dir: Path) -> None:
    out = run_round(tmp_path, data_dir, 1, None)

    info = json.loads((out / "update.json").read_text())
    assert info["num_examples"] > 0
    assert 0.0 <= info["metrics"]["val_accuracy"] <= 1.0
    weights = load_file(str(out / "update.safetensors"))
    assert all(tensor.dtype == torch.float16 for tensor in weights.values())
    assert set(os.listdir(out)) == {"update.json", "update.safetensors"}


def test_next_round_starts_from_the_global_model(tmp_path: Path, data_dir: Path) -> None:
    first = run_round(tmp_path, data_dir, 1, None)
    zeroed = {
        key: torch.zeros_like(value.float()) for key, value in load_file(str(first / "update.safetensors")).items()
    }
    save_file(zeroed, str(tmp_path / "global.safetensors"))

    second = run_round(tmp_path, data_dir, 2, tmp_path / "global.safetensors")

    before = load_file(str(first / "update.safetensors"))
    after = load_file(str(second / "update.safetensors"))
    assert any(not torch.equal(before[key], after[key]) for key in before)


def test_refuses_to_run_outside_a_round(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "job.json").write_text(json.dumps({"job_id": "j", "outputs": ["update.json"]}))
    env = {
        **os.environ,
        "TRAINYARD_JOB": str(tmp_path / "job.json"),
        "TRAINYARD_DATA": str(data_dir),
        "TRAINYARD_OUT": str(tmp_path),
        "TRAINYARD_TRAIN": str(TRAIN_DIR),
        "PYTHONPATH": str(REPO),
    }
    completed = subprocess.run([sys.executable, str(TRAIN_DIR / "main.py")], env=env, capture_output=True, text=True)

    assert completed.returncode != 0
    assert "federated train" in completed.stderr


@pytest.mark.parametrize("method", ["topk", "sign"])
def test_compressed_rounds_send_small_deltas_the_hub_decodes_and_keep_the_residual(
    tmp_path: Path, data_dir: Path, method: str
) -> None:
    from hub.fl import decode_state

    first = run_round(tmp_path, data_dir, 1, None)  # fp16 weights: the next round's global model
    global_model = {key: value.float() for key, value in load_file(str(first / "update.safetensors")).items()}
    save_file(global_model, str(tmp_path / "global.safetensors"))
    extra = {"compression": method, "topk_fraction": 0.01}

    second = run_round(tmp_path, data_dir, 2, tmp_path / "global.safetensors", extra=extra)
    third = run_round(
        tmp_path, data_dir, 3, tmp_path / "global.safetensors", extra=extra,
        station_state=second / "station_state.safetensors",
    )  # fmt: skip

    sent = (second / "update.safetensors").stat().st_size
    dense = (first / "update.safetensors").stat().st_size
    assert dense / sent > 1.5  # a tiny CNN: most tensors are under dense_below and travel whole
    state = decode_state((second / "update.safetensors").read_bytes(), base=global_model)
    assert set(state) == set(global_model)
    assert any(not torch.equal(state[key], global_model[key]) for key in state)
    assert (third / "station_state.safetensors").is_file()  # the residual stays at the station
