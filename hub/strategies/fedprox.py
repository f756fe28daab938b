"""FedProx: FedAvg with a proximal term ``mu/2 ||w - w_global||^2`` in each local objective.

Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020,
https://arxiv.org/abs/1812.06127
"""

from __future__ import annotations

from typing import Any

from protocol import FLConfigKey

from .fedavg import FedAvg
from .strategy import StrategyOptions

__all__ = ["FedProx"]


class FedProx(FedAvg):
    """Adds ``proximal_mu`` to each station's config; aggregation is FedAvg's."""

    name = "fedprox"

    def __init__(self, options: StrategyOptions | None = None, *, proximal_mu: float = 0.01) -> None:
        super().__init__(options)
        if proximal_mu < 0:
            raise ValueError("proximal_mu must be non-negative")
        self.proximal_mu = proximal_mu

    def __repr__(self) -> str:
        return f"FedProx(proximal_mu={self.proximal_mu}, options={self.options!r})"

    def station_config(self, server_round: int, station: str) -> dict[str, Any]:
        return super().station_config(server_round, station) | {FLConfigKey.PROXIMAL_MU.value: self.proximal_mu}
