"""FedBN: batch-normalisation parameters and statistics stay at each station.

Li et al., "FedBN: Federated Learning on Non-IID Features via Local Batch Normalization",
ICLR 2021, https://arxiv.org/abs/2102.07623
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocol import FLConfigKey

from .fedavg import FedAvg
from .strategy import FitResult

__all__ = ["FedBN", "is_batch_norm_parameter"]

_BN_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def is_batch_norm_parameter(name: str, bn_prefixes: Sequence[str] = ("bn", "norm")) -> bool:
    """Whether a state-dict name belongs to a batch-norm layer (by buffer name or layer name)."""
    if name.endswith(_BN_SUFFIXES):
        return True
    parts = name.split(".")
    return len(parts) >= 2 and any(parts[-2].startswith(p) for p in bn_prefixes)


class FedBN(FedAvg):
    """FedAvg over everything but batch norm; stations keep their own BN layers."""

    name = "fedbn"

    def excluded_parameters(self, results: Sequence[FitResult]) -> frozenset[str]:
        return frozenset(k for k in results[0].state if is_batch_norm_parameter(k))

    def station_config(self, server_round: int, station: str) -> dict[str, Any]:
        return super().station_config(server_round, station) | {FLConfigKey.LOCAL_PARAMETERS.value: "batch_norm"}
