"""One federated round inside a train: the author brings a model and local data, trainkit does the rest.

:func:`run_round` loads the round's global model (round 1: the seeded model every station builds
alike), trains for the round's local epochs with its learning rate and batch size (FedProx's
proximal term when the round asks for it), keeps FedBN's batch-norm layers at the station, validates
when given a validation step, and writes the update the hub reads: whole weights (fp16 by default)
or, from round 2, the compressed change with its error-feedback residual (``trainkit.compression``),
plus ``update.json`` with the example count and the metrics. What stays at the station (batch norm,
residual) goes to ``station_state.safetensors``, which never leaves.

When the round config carries ``dp_sgd_noise_multiplier`` sigma, the local epochs are DP-SGD (Abadi et
al. 2016): every step draws a Poisson sample holding each example with probability q = batch / N,
computes each example's gradient (``torch.func``: ``vmap(grad(...))``), clips it to ``dp_sgd_clip``
C, adds Gaussian noise of std sigma·C to the sum and divides by the expected batch q·N; FedProx's
proximal gradient (which reads no data) is added after the noise. The station's ε at ``dp_delta``
so far (:mod:`trainkit.privacy`, counted as if the station had trained in every round up to this
one) joins the metrics as ``dp_sgd_epsilon``. The noise and the sample come from the operating
system's randomness, not from the plan's seed, which the hub knows. Batch norm mixes the examples
of a batch, so a model with batch-norm layers is refused (GroupNorm or LayerNorm work).

Needs PyTorch (the ``trainyard/train-torch`` image); ``import trainkit`` alone does not load it.

Examples
--------
>>> import trainkit, trainkit.fl  # doctest: +SKIP
>>> job = trainkit.job()  # doctest: +SKIP
>>> metrics = trainkit.fl.run_round(job, build_model(), (images, labels), validate=check)  # doctest: +SKIP
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from . import privacy
from ._errors import TrainkitError
from ._job import Job
from .compression import compress_update, read_safetensors, write_safetensors

__all__ = ["DPSGD", "clipped_gradient_sum", "is_batch_norm", "run_round"]

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


def _refuse_batch_norm(model: nn.Module) -> None:
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise TrainkitError(
                f"DP-SGD needs each example's own gradient, and the batch-norm layer {prefix!r} "
                f"({type(module).__name__}) mixes the examples of a batch: use GroupNorm or LayerNorm instead"
            )


def clipped_gradient_sum(
    model: nn.Module,
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    clip: float,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The sum of each example's gradient clipped to L2 norm ``clip``; the norms before and the losses.

    Each example's gradient is taken over all the model's trainable parameters together
    (``torch.func``: ``vmap`` of ``grad_and_value`` of the loss of that one example).

    Raises
    ------
    TrainkitError
        When the model has batch-norm layers.
    """
    _refuse_batch_norm(model)
    params = {name: value.detach() for name, value in model.named_parameters() if value.requires_grad}
    buffers = {name: value.detach() for name, value in model.named_buffers()}

    def loss_of_one(weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, (weights, buffers), (x.unsqueeze(0),))
        loss: torch.Tensor = loss_fn(out, y.unsqueeze(0))
        return loss

    each = torch.func.vmap(torch.func.grad_and_value(loss_of_one), in_dims=(None, 0, 0), randomness="different")
    grads, losses = each(params, inputs, targets)
    flat = torch.cat([grad.reshape(len(inputs), -1) for grad in grads.values()], dim=1)
    norms = flat.norm(dim=1)
    scale = (clip / (norms + 1e-12)).clamp(max=1.0)
    summed = {name: torch.einsum("i,i...->...", scale, grad) for name, grad in grads.items()}
    return summed, norms, losses.detach()


class DPSGD:
    """DP-SGD's steps over one station's data: Poisson samples, clipped per-example gradients, noise.

    Parameters
    ----------
    noise_multiplier
        sigma: the noise's std on the summed clipped gradients, in clips.
    clip
        C: each example's gradient is clipped to this L2 norm.
    batch_size
        The expected batch: each example is in a step's sample with probability batch / N.
    generator
        Only for tests; by default seeded from the operating system (a seed the hub knows would
        let it take the noise out).
    """

    def __init__(
        self,
        *,
        noise_multiplier: float,
        clip: float,
        batch_size: int,
        generator: torch.Generator | None = None,
    ) -> None:
        if noise_multiplier <= 0 or clip <= 0 or batch_size < 1:
            raise TrainkitError("DP-SGD needs a positive noise multiplier, clip and batch size")
        self.noise_multiplier, self.clip, self.batch_size = noise_multiplier, clip, batch_size
        self.generator = generator or torch.Generator().manual_seed(secrets.randbits(63))

    def sampling_rate(self, examples: int) -> float:
        """q = batch / N (1 when the batch holds every example)."""
        return min(1.0, self.batch_size / examples) if examples else 1.0

    def steps_per_epoch(self, examples: int) -> int:
        """1 / q steps make one expected pass over the data."""
        return max(1, round(1 / self.sampling_rate(examples)))

    def epoch(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimiser: torch.optim.Optimizer,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        extra_gradient: Callable[[], list[torch.Tensor]] | None = None,
    ) -> list[float]:
        """One epoch of DP-SGD steps; the mean loss of each step's sample (empty samples: none)."""
        examples = len(inputs)
        if not examples:
            return []
        rate = self.sampling_rate(examples)
        params = [value for value in model.parameters() if value.requires_grad]
        names = [name for name, value in model.named_parameters() if value.requires_grad]
        losses: list[float] = []
        for _step in range(self.steps_per_epoch(examples)):
            chosen = (torch.rand(examples, generator=self.generator) < rate).nonzero().squeeze(1)
            if len(chosen):
                summed, _norms, step_losses = clipped_gradient_sum(
                    model, loss_fn, inputs[chosen], targets[chosen], clip=self.clip
                )
                losses.append(float(step_losses.mean()))
            else:
                summed = {name: torch.zeros_like(value) for name, value in zip(names, params, strict=True)}
            extra = extra_gradient() if extra_gradient is not None else [torch.zeros(()) for _ in params]
            for name, parameter, more in zip(names, params, extra, strict=True):
                noise = torch.randn(parameter.shape, generator=self.generator) * (self.noise_multiplier * self.clip)
                parameter.grad = (summed[name] + noise) / (rate * examples) + more
            optimiser.step()
        return losses


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
    dp_generator: torch.Generator | None = None,
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
    dp_generator
        DP-SGD's source of randomness, only for tests (see :class:`DPSGD`).

    Raises
    ------
    TrainkitError
        When the job is not a federated round, the global model does not fit the model, or the
        round asks for DP-SGD and the model has batch-norm layers.
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
    epochs = int(config.get("local_epochs", 1))
    sigma = config.get("dp_sgd_noise_multiplier")
    private: Metrics = {}
    model.train()
    if sigma is not None:
        dp = DPSGD(
            noise_multiplier=float(sigma),
            clip=float(config.get("dp_sgd_clip", 1.0)),
            batch_size=batch,
            generator=dp_generator,
        )
        _refuse_batch_norm(model)

        def proximal() -> list[torch.Tensor]:
            pairs = zip(model.parameters(), anchor, strict=True)
            return [mu * (p.detach() - a) for p, a in pairs if p.requires_grad]

        for _epoch in range(epochs):
            losses.extend(dp.epoch(model, loss_fn, optimiser, inputs, targets, extra_gradient=proximal if mu else None))
        steps = job.round.number * epochs * dp.steps_per_epoch(len(inputs))  # as if in every round so far
        rate = dp.sampling_rate(len(inputs))
        spent = privacy.epsilon(
            noise_multiplier=dp.noise_multiplier,
            sampling_rate=rate,
            steps=steps,
            delta=float(config.get("dp_delta", 1e-5)),
        )
        private = {"dp_sgd_epsilon": spent, "dp_sgd_sampling_rate": rate, "dp_sgd_steps": float(steps)}
    for _epoch in range(epochs if sigma is None else 0):
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
    metrics: Metrics = {"train_loss": float(np.mean(losses)) if losses else 0.0, **private}
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
