"""The secure-aggregation row of the FL benchmark: FedAvg with and without pairwise masking.

The same digits task, partitions, seeds, rounds and local epochs as the table. Both runs send what a
station sends: the plain run an fp16 safetensors update that ``hub.fl.decode_state`` reads; the masked
run the protocol of ``protocol._secagg`` for the 4 stations simulated in one process — round keys
signed and verified, Shamir shares of both secrets AES-GCM encrypted and opened, the masked update
as uint32 safetensors (from the same fp16 update), the reveals, and the hub's unmasking of the sum.
Round time includes local training, as in the table. Upload bytes are the update files (what the
hub records as ``bytes_up``) and, separately, those plus every protocol message a station sends.

    .venv/bin/python -m bench.fl.secagg            # 3 seeds, 20 rounds; merges its keys into fl.json
    .venv/bin/python -m bench.fl.secagg --quick    # 1 seed, 5 rounds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench.fl.task import Task, accuracy, fit, initial_state, make_task
from hub.fl import decode_state, encode_state
from hub.strategies import FedAvg, FitResult, StrategyOptions
from protocol import (
    SecAggAdvert,
    SecAggMeta,
    SecAggReveal,
    SecAggShares,
    advert_bytes,
    agree_seed,
    decrypt_share,
    dequantise,
    encrypt_share,
    generate_key_pair,
    mask_update,
    public_key_text,
    quantise,
    raw_private_key,
    reconstruct_secret,
    scale_for,
    sign_bytes,
    split_secret,
    threshold_for,
    unmask_sum,
    verify_bytes,
)
from trainkit.compression import read_safetensors, write_safetensors

__all__ = ["secagg_rows"]

SEEDS, ROUNDS, EPOCHS, LR, BATCH, CLIP = (0, 1, 2), 20, 1, 0.05, 32, 64.0
State = dict[str, torch.Tensor]


def _fp16(state: State) -> bytes:
    return encode_state(
        {k: v.half() if v.is_floating_point() else v for k, v in state.items()}, metadata={"compression": "fp16"}
    )


def _masked_round(
    updates: dict[str, bytes], examples: dict[str, int], base: State, *, context: bytes
) -> tuple[State, int, int]:
    """One round of the protocol for every station; return the unmasked mean, update bytes and all bytes sent."""
    names = sorted(updates)
    station_keys = {name: generate_key_pair() for name in names}
    c_keys = {name: X25519PrivateKey.generate() for name in names}
    s_keys = {name: X25519PrivateKey.generate() for name in names}
    seeds = {name: np.random.default_rng().bytes(32) for name in names}
    sent = 0
    # 1. keys
    adverts: dict[str, SecAggAdvert] = {}
    for name in names:
        c_pub, s_pub = public_key_text(c_keys[name]), public_key_text(s_keys[name])
        signed = advert_bytes(
            train_id="bench", round_number=1, participant=name, c_public=c_pub, s_public=s_pub,
            num_examples=examples[name],
        )  # fmt: skip
        adverts[name] = SecAggAdvert(
            participant=name, c_public=c_pub, s_public=s_pub, num_examples=examples[name],
            signature=sign_bytes(station_keys[name].signing, signed),
        )  # fmt: skip
        sent += len(adverts[name].model_dump_json())
    for _station in names:  # every station verifies the roster
        for other in names:
            a = adverts[other]
            verify_bytes(
                station_keys[other].signing_public,
                advert_bytes(
                    train_id="bench", round_number=1, participant=other, c_public=a.c_public, s_public=a.s_public,
                    num_examples=a.num_examples,
                ),
                a.signature,
            )  # fmt: skip
    # 2. shares
    threshold = threshold_for(len(names))
    received: dict[str, dict[str, dict[str, str]]] = {name: {} for name in names}
    for name in names:
        s_shares = split_secret(raw_private_key(s_keys[name]), threshold=threshold, count=len(names))
        b_shares = split_secret(seeds[name], threshold=threshold, count=len(names))
        boxes = []
        for j, other in enumerate(names):
            plain = {"s": format(s_shares[j], "x"), "b": format(b_shares[j], "x")}
            if other == name:
                received[name][name] = plain
                continue
            key = agree_seed(c_keys[name], adverts[other].c_public, context=context, purpose="share")
            boxes.append(encrypt_share(plain, key=key, context=context, sender=name, recipient=other))
        message = SecAggShares(shares=tuple(boxes))
        sent += len(message.model_dump_json())
        for box in message.shares:
            key = agree_seed(c_keys[box.recipient], adverts[name].c_public, context=context, purpose="share")
            received[box.recipient][name] = decrypt_share(box, key=key, context=context)
    # 3. masked updates
    total_examples = sum(examples.values())
    scale = scale_for(CLIP, len(names))
    keys = sorted(base)
    masked_sum = None
    update_bytes = 0
    for name in names:
        tensors = read_safetensors(updates[name])[0]
        flat = np.concatenate(
            [tensors[k].astype(np.float64).reshape(-1) - base[k].double().numpy().reshape(-1) for k in keys]
        )
        fixed = quantise(flat, weight=examples[name] / total_examples, scale=scale, clip=CLIP)
        pairs = {o: agree_seed(s_keys[name], adverts[o].s_public, context=context) for o in names if o != name}
        y = mask_update(fixed, self_seed=seeds[name], pair_seeds=pairs, me=name)
        out, offset = {}, 0
        for k in keys:
            out[k] = y[offset : offset + tensors[k].size].reshape(tensors[k].shape)
            offset += tensors[k].size
        data = write_safetensors(out, {"update_kind": "secagg", SecAggMeta.BASE.value: "delta"})
        update_bytes += len(data)
        sent += len(data)
        stored = read_safetensors(data)[0]  # the hub reads it back and adds it to the ring sum
        vector = np.concatenate([stored[k].reshape(-1) for k in keys])
        masked_sum = vector if masked_sum is None else masked_sum + vector
    assert masked_sum is not None
    # 4. reveals (nobody dropped: self-mask shares only) and the hub's unmasking
    index = {name: i + 1 for i, name in enumerate(names)}
    reveals = {}
    for name in names:
        reveals[name] = SecAggReveal(self_mask_shares={o: received[name][o]["b"] for o in names})
        sent += len(reveals[name].model_dump_json())
    rebuilt = [
        reconstruct_secret({index[r]: int(reveals[r].self_mask_shares[o], 16) for r in names[:threshold]})
        for o in names
    ]
    clean = dequantise(unmask_sum(masked_sum, self_seeds=rebuilt, dropped_pairs=[]), scale=scale)
    state, offset = {}, 0
    for k in keys:
        size = base[k].numel()
        values = torch.from_numpy(clean[offset : offset + size].reshape(base[k].shape).copy()) + base[k].double()
        offset += size
        state[k] = values.float() if base[k].is_floating_point() else values.round().to(base[k].dtype)
    return state, update_bytes, sent


def run_fedavg(task: Task, *, seed: int, rounds: int, masked: bool) -> tuple[float, list[float], float, float]:
    """Final accuracy, seconds per round, update bytes and all bytes per station per round."""
    strategy = FedAvg(StrategyOptions(local_epochs=EPOCHS, learning_rate=LR, batch_size=BATCH))
    names = [f"s{i}" for i in range(len(task.stations))]
    state = initial_state(seed)
    times: list[float] = []
    update_sizes: list[float] = []
    all_sizes: list[float] = []
    for number in range(1, rounds + 1):
        started = time.perf_counter()
        chosen = strategy.configure_round(number, names, state)
        updates, examples = {}, {}
        for name in chosen:
            index = names.index(name)
            trained = fit(
                state, task.stations[index], epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=seed * 1000 + number
            )
            updates[name], examples[name] = _fp16(trained), len(task.stations[index])
        if masked:
            state, update_bytes, sent = _masked_round(updates, examples, state, context=f"bench/{number}".encode())
            update_sizes.append(update_bytes / len(chosen))
            all_sizes.append(sent / len(chosen))
        else:
            results = [
                FitResult(station=n, state=decode_state(d), num_examples=examples[n]) for n, d in updates.items()
            ]
            aggregated, _ = strategy.aggregate_round(number, results, [])
            state = {**state, **aggregated}
            size = statistics.fmean(len(d) for d in updates.values())
            update_sizes.append(size)
            all_sizes.append(size)
        times.append(time.perf_counter() - started)
    return accuracy(state, task.test), times, statistics.fmean(update_sizes), statistics.fmean(all_sizes)


def secagg_rows(seeds: tuple[int, ...] = SEEDS, rounds: int = ROUNDS) -> dict[str, Any]:
    """Accuracy, round time and upload of masked FedAvg against plain fp16 FedAvg (IID, 4 stations)."""
    plain_runs, masked_runs = [], []
    for seed in seeds:
        task = make_task(alpha=None, seed=seed)
        plain_runs.append(run_fedavg(task, seed=seed, rounds=rounds, masked=False))
        masked_runs.append(run_fedavg(task, seed=seed, rounds=rounds, masked=True))
    plain_acc = statistics.fmean(r[0] for r in plain_runs)
    masked_acc = statistics.fmean(r[0] for r in masked_runs)
    plain_s = statistics.fmean(t for r in plain_runs for t in r[1][1:])  # steady state: after round 1
    masked_s = statistics.fmean(t for r in masked_runs for t in r[1][1:])
    plain_bytes = statistics.fmean(r[2] for r in plain_runs)
    row = {
        "secagg_acc": masked_acc,
        "secagg_plain_acc": plain_acc,
        "secagg_acc_delta_pp": 100 * (masked_acc - plain_acc),
        "secagg_round_s": masked_s,
        "secagg_plain_round_s": plain_s,
        "secagg_time_factor": masked_s / plain_s,
        "secagg_update_bytes": statistics.fmean(r[2] for r in masked_runs),
        "secagg_plain_update_bytes": plain_bytes,
        "secagg_upload_factor": statistics.fmean(r[2] for r in masked_runs) / plain_bytes,
        "secagg_upload_factor_with_messages": statistics.fmean(r[3] for r in masked_runs) / plain_bytes,
        "secagg_seeds": len(seeds),
        "secagg_rounds": rounds,
    }
    print("secagg", {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    """Run only this row and merge its keys into ``bench/results/fl.json`` (the other keys are kept)."""
    from bench.fl.run import RESULTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 rounds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = (0,) if args.quick else tuple(range(args.seeds))
    row = secagg_rows(seeds, 5 if args.quick else args.rounds)
    summary = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    summary.update(row)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
