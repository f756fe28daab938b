"""One federated round inside a train: the author brings a model and local data, trainkit does the rest.

:func:`run_round` loads the round's global model (round 1: the seeded model every station builds
alike), trains for the round's local epochs with its learning rate and batch size (FedProx's
proximal term when the round asks for it), keeps FedBN's batch-norm layers at the station, validates
when given a validation step, and writes the update the hub reads: whole weights (fp16 by default)
or, from round 2, the compressed change with its error-feedback residual (``trainkit.compression``),
plus ``update.json`` with the example count and the metrics. What stays at the station (batch norm,
residual) goes to ``station_state.safetensors``, which never leaves.

Needs PyTorch (the ``trainyard/train-torch`` image); ``import trainkit`` alone does not load it.

Examples
--------
>>> import trainkit, trainkit.fl  # doctest: +SKIP
>>> job = trainkit.job()  # doctest: +SKIP
>>> metrics = trainkit.fl.run_round(job, build_model(), (images, labels), validate=check)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ._errors import TrainkitError
from ._job import Job
from .compression import compress_update, read_safetensors, write_safetensors

__all__ = ["is_batch_norm", "run_round"]

_BN = "bn::"
_RESIDUAL = "residual::"
Metrics = dict[str, float]


def is_batch_norm(model: nn.Module) -> set[str]:
    """The state-dict names of the model's batch-norm layers (what FedBN keeps at the station)."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            names.update(f"{prefix}.{name}" if prefix else name for name in module.state_dict())
    return names


def _load(path: Any) -> dict[str, torch.Tensor]:
    tensors, _meta = read_safetensors(path.read_bytes())
    return {name: torch.from_numpy(np.array(value)) for name, value in tensors.items()}


def run_round(
    job: Job,
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    loss_fn: nn.Module | None = None,
    validate: Callable[[nn.Module], Metrics] | None = None,
    momentum: float = 0.9,
    update_name: str = "update.safetensors",
) -> Metrics:
    """Train ``model`` on ``data`` for this job's round and write its update; return the metrics.

    Parameters
    ----------
    job
        The federated job (``trainkit.job()``); its ``round.config`` carries the hub's settings.
    model
        The model, freshly built the same way at every station (round 1 starts from it as seeded).
    data
        The training inputs and targets.
    loss_fn
        Cross-entropy by default.
    validate
        Called with the trained model in eval mode; its numbers join the metrics
        (e.g. ``val_accuracy`` for early stopping at the hub).

    Raises
    ------
    TrainkitError
        When the job is not a federated round, or the global model does not fit the model.
    """
    if job.round is None:
        raise TrainkitError("this train is federated: it runs in a round the hub opens")
    config = job.round.config
    seed = int(config.get("seed", 0))
    kept = _load(job.round.station_state) if job.round.station_state is not None else {}
    batch_norm = is_batch_norm(model) if config.get("local_parameters") == "batch_norm" else set()
    if job.round.global_model is not None:
        incoming = _load(job.round.global_model)
        incoming.update({name[len(_BN) :]: value for name, value in kept.items() if name.startswith(_BN)})
        try:
            model.load_state_dict({name: value for name, value in incoming.items() if name in model.state_dict()})
        except RuntimeError as exc:
            raise TrainkitError(f"the global model does not fit this model: {exc}") from exc
    torch.manual_seed(seed + 1000 * job.round.number)
    initial = {name: value.detach().clone() for name, value in model.state_dict().items()}

    inputs, targets = data
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    learning_rate = float(config.get("learning_rate", 0.01))
    optimiser = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)
    mu = float(config.get("proximal_mu", 0.0) or 0.0)
    anchor = [parameter.detach().clone() for parameter in model.parameters()] if mu else []
    batch = int(config.get("batch_size", 32))
    losses: list[float] = []
    model.train()
    for _epoch in range(int(config.get("local_epochs", 1))):
        order = torch.randperm(len(inputs))
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            optimiser.zero_grad()
            loss = loss_fn(model(inputs[index]), targets[index])
            if mu:
                loss = loss + mu / 2 * sum(
                    ((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True)
                )
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
    model.eval()
    metrics: Metrics = {"train_loss": float(np.mean(losses)) if losses else 0.0}
    if validate is not None:
        with torch.no_grad():
            metrics.update({name: float(value) for name, value in validate(model).items()})

    state = {name: value.detach() for name, value in model.state_dict().items()}
    shared = {name: value for name, value in state.items() if name not in batch_norm}
    station_state: dict[str, np.ndarray] = {f"{_BN}{name}": state[name].numpy() for name in batch_norm}
    compression = str(config.get("compression", "fp16"))
    if compression in {"topk", "sign"} and job.round.global_model is not None:
        delta = {
            name: (value - initial[name]).numpy() if value.is_floating_point() else value.numpy()
            for name, value in shared.items()
        }
        residual = {name[len(_RESIDUAL) :]: value.numpy() for name, value in kept.items() if name.startswith(_RESIDUAL)}
        states = {name for name, value in model.named_buffers() if value.is_floating_point()}  # running statistics
        data_bytes, left = compress_update(
            delta,
            method=compression,
            fraction=float(config.get("topk_fraction", 0.05)),
            residual=residual or None,
            dense=states,
        )
        station_state.update({f"{_RESIDUAL}{name}": value for name, value in left.items()})
    else:
        dense = "none" if compression == "none" else "fp16"
        arrays = {
            name: (value.half() if dense == "fp16" and value.is_floating_point() else value).numpy()
            for name, value in shared.items()
        }
        data_bytes = write_safetensors(arrays, {"compression": dense})
    job.out.write_bytes(update_name, data_bytes)
    if station_state:
        job.out.write_station_state(write_safetensors(station_state))
    job.out.write_json("update.json", {"num_examples": len(inputs), "metrics": metrics})
    return metrics
