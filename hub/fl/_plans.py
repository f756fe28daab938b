"""From a train's signed ``[federated]`` plan to a strategy object, and update (de)serialisation."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from hub.strategies import (
    CyclicWeightTransfer,
    Ensemble,
    FedAvg,
    FedBN,
    FedProx,
    FitResult,
    SingleWeightTransfer,
    Strategy,
    StrategyOptions,
)
from protocol import FederatedPlan, FLConfigKey
from trainkit.compression import decompress_update

from ._lazy import LazyState

__all__ = [
    "LazyResults",
    "UpdateFormatError",
    "check_update",
    "decode_state",
    "encode_state",
    "rounds_for",
    "strategy_for",
]

State = dict[str, torch.Tensor]
# Keys of the safetensors ``__metadata__`` header an update may carry.
META_COMPRESSION = "compression"
META_KIND = "update_kind"


class UpdateFormatError(ValueError):
    """An update cannot be read as safetensors weights (the station sent something else)."""


def strategy_for(plan: FederatedPlan, collections: Sequence[str]) -> Strategy:
    """Build the plan's strategy; the round config carries the plan's local options."""
    extra: dict[str, Any] = {
        FLConfigKey.COMPRESSION.value: plan.compression,
        FLConfigKey.SEED.value: plan.seed,
        FLConfigKey.SECAGG.value: plan.secagg,
    }
    if plan.compression == "topk":
        extra[FLConfigKey.TOPK_FRACTION.value] = plan.topk_fraction
    if plan.dp_clip_norm is not None:
        extra[FLConfigKey.DP_CLIP_NORM.value] = plan.dp_clip_norm
    if plan.dp_noise_multiplier is not None:
        extra[FLConfigKey.DP_NOISE_MULTIPLIER.value] = plan.dp_noise_multiplier
    if plan.dp_sgd_noise_multiplier is not None:  # DP-SGD at each station (trainkit.fl)
        extra[FLConfigKey.DP_SGD_NOISE_MULTIPLIER.value] = plan.dp_sgd_noise_multiplier
        extra[FLConfigKey.DP_SGD_CLIP.value] = plan.dp_sgd_clip
        extra[FLConfigKey.DP_DELTA.value] = plan.dp_delta
    options = StrategyOptions(
        fraction_fit=plan.fraction,
        min_fit_stations=plan.min_stations,
        local_epochs=plan.local_epochs,
        learning_rate=plan.learning_rate,
        batch_size=plan.batch_size,
        extra_config=extra,
    )
    if plan.strategy == "fedprox":
        return FedProx(options, proximal_mu=plan.proximal_mu)
    if plan.strategy == "fedbn":
        return FedBN(options)
    if plan.strategy == "swt":
        return SingleWeightTransfer(_single(options), order=list(collections))
    if plan.strategy == "cwt":
        return CyclicWeightTransfer(_single(options), cycles=plan.cycles, order=list(collections))
    if plan.strategy == "ensemble":
        return Ensemble(options)
    return FedAvg(options)


def _single(options: StrategyOptions) -> StrategyOptions:
    """Weight transfer visits one station per round."""
    return StrategyOptions(
        fraction_fit=options.fraction_fit,
        min_fit_stations=1,
        accept_failures=options.accept_failures,
        local_epochs=options.local_epochs,
        learning_rate=options.learning_rate,
        batch_size=options.batch_size,
        extra_config=options.extra_config,
    )


def rounds_for(plan: FederatedPlan, collections: Sequence[str]) -> int:
    """How many rounds the run has: weight transfer visits every station (per cycle), ensembles one round."""
    if plan.strategy == "swt":
        return len(collections)
    if plan.strategy == "cwt":
        return plan.cycles * len(collections)
    if plan.strategy == "ensemble":
        return 1
    return plan.rounds


def encode_state(state: State, *, metadata: dict[str, str] | None = None) -> bytes:
    """Serialise a state dict as safetensors (contiguous CPU tensors)."""
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    return save_safetensors(tensors, metadata=metadata)


def _metadata_of(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (empty when absent)."""
    if len(data) < 8:
        raise UpdateFormatError("the update is shorter than a safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or size > min(len(data) - 8, 100 << 20):
        raise UpdateFormatError("the update's safetensors header length is out of range")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError as exc:
        raise UpdateFormatError(f"the update's safetensors header is not JSON: {exc}") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def decode_state(data: bytes, *, base: State | None = None) -> State:
    """Read an update: float tensors as float32; a ``delta`` update is added to ``base``.

    A compressed (``topk`` / ``sign``) update, packed or per tensor, is checked against ``base``
    before it is expanded: only the model's tensors, with the model's shapes, finite scales and
    values, positions in range and ascending, every length as its layout says.

    Raises
    ------
    UpdateFormatError
        When the bytes are not safetensors, use an unknown compression, are a delta without a
        base, or do not fit the model; the round then goes on without this update.
    """
    meta = _metadata_of(data)
    compression = meta.get(META_COMPRESSION, "none")
    if compression in {"topk", "sign"}:  # sparse or 1-bit: trainkit.compression's formats
        if meta.get(META_KIND) != "delta":
            raise UpdateFormatError(f"a {compression} update must be a delta (update_kind = delta)")
        if base is None:
            raise UpdateFormatError("a delta update needs the round's global model")
        try:
            dense = decompress_update(data, expected={key: tuple(value.shape) for key, value in base.items()})
        except ValueError as exc:
            raise UpdateFormatError(f"the {compression} update does not decode: {exc}") from exc
        raw = {key: torch.from_numpy(value.copy()) for key, value in dense.items()}
    elif compression in {"none", "fp16", "fp32"}:
        try:
            raw = load_safetensors(data)
        except Exception as exc:  # safetensors raises its own error types for malformed input
            raise UpdateFormatError(f"the update is not a valid safetensors file: {exc}") from exc
    else:
        raise UpdateFormatError(f"the update uses compression {compression!r}: the hub reads none, fp16, topk, sign")
    state = {key: value.float() if value.is_floating_point() else value for key, value in raw.items()}
    if meta.get(META_KIND, "weights") == "delta":
        if base is None:
            raise UpdateFormatError("a delta update needs the round's global model")
        missing = sorted(set(state) - set(base))
        if missing:
            raise UpdateFormatError(f"the delta names parameters the global model lacks: {missing[:5]}")
        wrong = sorted(key for key, value in state.items() if value.shape != base[key].shape)
        if wrong:
            raise UpdateFormatError(f"the delta's shapes differ from the global model's for {wrong[:5]}")
        state = {key: base[key].float() + value if value.is_floating_point() else value for key, value in state.items()}
    return state


def check_update(path: Path, *, base: State | None) -> None:
    """Refuse, before a round aggregates, a compressed update that does not decode against ``base``.

    Only the header is read of a dense update (safetensors checks the rest as it loads); a
    ``topk`` or ``sign`` update is small and is decoded whole, so that one station's malformed
    update drops that station from the round instead of failing the round.

    Raises
    ------
    UpdateFormatError
        With the reason, as :func:`decode_state` gives it.
    """
    with path.open("rb") as handle:
        head = handle.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else 0
        header = head + handle.read(min(size, 100 << 20))
    if _metadata_of(header).get(META_COMPRESSION, "none") in {"topk", "sign"}:
        decode_state(path.read_bytes(), base=base)


class LazyResults(Sequence[FitResult]):
    """The round's results, each update read from the artifact store only when a strategy reaches it.

    FedAvg's streaming average then holds one update at a time, not all of them; weighing the
    metrics reads none (each result's state is a :class:`LazyState`).
    """

    def __init__(self, entries: Sequence[tuple[str, int, dict[str, float]]], read: Any, base: State | None) -> None:
        self._entries = list(entries)  # (station, num_examples, metrics) with read(i) -> bytes
        self._read = read
        self._base = base

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> FitResult: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[FitResult]: ...

    def __getitem__(self, index: int | slice) -> FitResult | Sequence[FitResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        station, num_examples, metrics = self._entries[index]
        return FitResult(  # the update is read on the state's first use: counts and metrics read none
            station=station,
            state=LazyState(lambda: decode_state(self._read(index), base=self._base)),
            num_examples=num_examples,
            metrics=metrics,
        )

    def __iter__(self) -> Iterator[FitResult]:
        for index in range(len(self)):
            yield self[index]
