"""The FL benchmark's communication rows: bytes per round and accuracy of each update compression.

Each run is FedAvg over the table's task (digits, 4 stations, IID and Dirichlet alpha = 0.5), seeds,
rounds and local epochs. The hub starts from the seed's initial model, which it holds (a plan
that names its initial model), so every round — the first too — sends a change: ``none`` as
float32 weights, ``fp16`` as float16 weights (the default), ``topk`` and ``sign`` compressed by
``trainkit.compression`` with error feedback kept per station, the running statistics whole
(``dense``, as ``trainkit.fl`` sends them). The hub side decodes every update with
``hub.fl.decode_state`` against the round's global model, as in production. Bytes are the update
files' sizes; a round's bytes are the four stations' together.

Ratios are against the uncompressed float32 update (``compression_ratio``, the usual convention,
and the one the issue's target, >= 30x with < 1 pp loss, is read against) and against the fp16
default (``..._vs_fp16``); losses are in percentage points of test accuracy against the float32
run of the same partition and seeds.

    .venv/bin/python -m bench.fl.compression            # these rows only, merged into fl.json
    .venv/bin/python -m bench.fl.compression --quick    # 1 seed, 5 rounds, printed only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import numpy as np
import torch

from bench.fl.task import Task, accuracy, build_model, fit, initial_state, make_task
from hub.fl import decode_state, encode_state
from hub.strategies import FedAvg, FitResult, StrategyOptions
from trainkit.compression import compress_update

__all__ = ["FRACTIONS", "compressed_fedavg", "compression_rows", "main"]

SEEDS, ROUNDS, EPOCHS, LR, BATCH = (0, 1, 2), 20, 1, 0.05, 32
PARTITIONS: dict[str, float | None] = {"iid": None, "alpha0.5": 0.5}
FRACTIONS = (0.01, 0.02, 0.05, 0.1)
DEFAULT_FRACTION = 0.05  # the plan's topk_fraction default: the smallest whose loss stays under 1 pp here
TARGET_RATIO, TARGET_LOSS_PP = 30.0, 1.0
STATES = {name for name, value in build_model().named_buffers() if value.is_floating_point()}


def _variants() -> dict[str, dict[str, Any]]:
    """Every row: its compress_update arguments (``none`` and ``fp16`` send weights)."""
    rows: dict[str, dict[str, Any]] = {"none": {"method": "none"}, "fp16": {"method": "fp16"}}
    for fraction in FRACTIONS:
        rows[f"topk_{fraction:g}"] = {"method": "topk", "fraction": fraction, "dense": STATES}
    rows["sign"] = {"method": "sign", "dense": STATES}
    # what the decisions were measured against: the running statistics compressed like weights, and
    # the earlier per-tensor layout (int32 positions, float16 values, tensors under 1,024 entries whole)
    rows[f"topk_{DEFAULT_FRACTION:g}_statistics_sparse"] = {"method": "topk", "fraction": DEFAULT_FRACTION}
    rows["topk_0.01_per_tensor_layout"] = {"method": "topk", "fraction": 0.01, "packed": False, "dense_below": 1024}
    return rows


def compressed_fedavg(task: Task, options: dict[str, Any], *, seed: int, rounds: int) -> tuple[float, float]:
    """Final accuracy and mean bytes per station per round of FedAvg with ``options``' updates."""
    strategy = FedAvg(StrategyOptions(local_epochs=EPOCHS, learning_rate=LR, batch_size=BATCH))
    names = [f"s{i}" for i in range(len(task.stations))]
    state = initial_state(seed)
    residuals: dict[str, dict[str, np.ndarray] | None] = dict.fromkeys(names)
    sizes: list[int] = []
    method = options["method"]
    for number in range(1, rounds + 1):
        results = []
        for index, name in enumerate(strategy.configure_round(number, names, state)):
            trained = fit(
                state, task.stations[index], epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=seed * 1000 + number
            )
            if method in {"none", "fp16"}:
                cast = torch.float32 if method == "none" else torch.float16
                sent = {k: v.to(cast) if v.is_floating_point() else v for k, v in trained.items()}
                data = encode_state(sent, metadata={"compression": method})
                received = decode_state(data)
            else:
                delta = {k: (v - state[k]).numpy() if v.is_floating_point() else v.numpy() for k, v in trained.items()}
                data, residuals[name] = compress_update(delta, residual=residuals[name], **options)
                received = decode_state(data, base=state)
            sizes.append(len(data))
            results.append(FitResult(station=name, state=received, num_examples=len(task.stations[index])))
        aggregated, _metrics = strategy.aggregate_round(number, results, [])
        state = {**state, **aggregated}
    return accuracy(state, task.test), statistics.fmean(sizes)


def _codec_ratio(fraction: float | None, entries: int = 1_000_000) -> float:
    """Float32 bytes over compressed bytes for one ``entries``-float tensor (no accuracy: the codec alone)."""
    delta = {"w": np.random.default_rng(0).normal(size=entries).astype(np.float32)}
    data, _ = compress_update(delta, method="sign") if fraction is None else compress_update(delta, **_topk(fraction))
    return 4 * entries / len(data)


def _topk(fraction: float) -> dict[str, Any]:
    return {"method": "topk", "fraction": fraction}


def compression_rows(seeds: tuple[int, ...] = SEEDS, rounds: int = ROUNDS) -> dict[str, Any]:
    """The communication table (every variant, IID and alpha = 0.5), the top-k curve and the summary keys."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for label, alpha in PARTITIONS.items():
        table[label] = {}
        for variant, options in _variants().items():
            runs = [compressed_fedavg(make_task(alpha=alpha, seed=s), options, seed=s, rounds=rounds) for s in seeds]
            table[label][variant] = {
                "acc": statistics.fmean(acc for acc, _ in runs),
                "bytes_per_update": statistics.fmean(size for _, size in runs),
            }
        reference = table[label]["none"]
        for row in table[label].values():
            row["bytes_per_round"] = len(make_task(alpha=alpha, seed=seeds[0]).stations) * row["bytes_per_update"]
            row["ratio_vs_float32"] = reference["bytes_per_update"] / row["bytes_per_update"]
            row["ratio_vs_fp16"] = table[label]["fp16"]["bytes_per_update"] / row["bytes_per_update"]
            row["loss_pp"] = 100 * (reference["acc"] - row["acc"])
        print(
            "compression",
            label,
            {k: (round(v["acc"], 4), round(v["bytes_per_update"])) for k, v in table[label].items()},
        )

    def loss(variant: str) -> float:
        return max(table[label][variant]["loss_pp"] for label in table)

    curve = [
        {
            "fraction": fraction,
            "bytes_per_update": table["iid"][f"topk_{fraction:g}"]["bytes_per_update"],
            "ratio_vs_float32": table["iid"][f"topk_{fraction:g}"]["ratio_vs_float32"],
            "ratio_vs_fp16": table["iid"][f"topk_{fraction:g}"]["ratio_vs_fp16"],
            **{f"loss_pp_{label}": table[label][f"topk_{fraction:g}"]["loss_pp"] for label in table},
        }
        for fraction in FRACTIONS
    ]
    chosen = table["iid"][f"topk_{DEFAULT_FRACTION:g}"]
    sign = table["iid"]["sign"]
    return {
        "compression_table": table,
        "compression_curve": curve,
        "compression_baseline": "float32 dense update (compression = none); _vs_fp16 against the fp16 default",
        "compression_fraction": DEFAULT_FRACTION,
        "compression_ratio": chosen["ratio_vs_float32"],
        "compression_ratio_vs_fp16": chosen["ratio_vs_fp16"],
        "compression_loss_pp": loss(f"topk_{DEFAULT_FRACTION:g}"),
        "compression_bytes_per_round": chosen["bytes_per_round"],
        "compression_target_met": chosen["ratio_vs_float32"] >= TARGET_RATIO
        and loss(f"topk_{DEFAULT_FRACTION:g}") < TARGET_LOSS_PP,
        "sign_ratio": sign["ratio_vs_float32"],
        "sign_ratio_vs_fp16": sign["ratio_vs_fp16"],
        "sign_loss_pp": loss("sign"),
        "bytes_per_round_float32": table["iid"]["none"]["bytes_per_round"],
        "compression_codec_ratio_1M": {
            **{f"topk_{fraction:g}": _codec_ratio(fraction) for fraction in FRACTIONS},
            "sign": _codec_ratio(None),
        },
        "compression_seeds": len(seeds),
        "compression_rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    """Run only these rows and merge their keys into ``bench/results/fl.json`` (the other keys are kept)."""
    from bench.fl.run import RESULTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 rounds, fl.json left as it is")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = (0,) if args.quick else tuple(range(args.seeds))
    rows = compression_rows(seeds, 5 if args.quick else args.rounds)
    if args.quick:  # a smoke run: fl.json keeps the full figures
        return 0
    summary = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}  # read right before writing
    summary.update(rows)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in rows.items() if k != "compression_table"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
