"""Cyclical weight transfer: the model visits the stations in order, several cycles.

Chang et al., "Distributed deep learning networks among institutions for medical imaging",
JAMIA 2018 (https://doi.org/10.1093/jamia/ocy017); compared with FedAvg in Sheller et al.,
"Multi-Institutional Deep Learning Modeling Without Sharing Patient Data", https://arxiv.org/abs/1810.04304
"""

from __future__ import annotations

from collections.abc import Sequence

from .strategy import FitResult, State, Strategy, StrategyOptions

__all__ = ["CyclicWeightTransfer"]


class CyclicWeightTransfer(Strategy):
    """One station per round; round ``r`` goes to ``order[(r - 1) % len(order)]``.

    The run has ``cycles * len(stations)`` rounds. ``order`` (station names) fixes the visit order;
    by default the order the stations are given in.
    """

    name = "cwt"

    def __init__(
        self, options: StrategyOptions | None = None, *, cycles: int = 3, order: Sequence[str] | None = None
    ) -> None:
        super().__init__(options)
        if cycles < 1:
            raise ValueError("cycles must be at least 1")
        self.cycles = cycles
        self.order = list(order) if order is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cycles={self.cycles}, order={self.order})"

    def num_rounds(self, stations: Sequence[str]) -> int:
        """Rounds the run needs to finish its cycles."""
        return self.cycles * len(self.order or stations)

    def select_stations(self, server_round: int, stations: Sequence[str]) -> list[str]:
        order = self.order or list(stations)
        if server_round > self.cycles * len(order):
            return []
        return [order[(server_round - 1) % len(order)]]

    def _aggregate(self, server_round: int, results: Sequence[FitResult]) -> State:
        return dict(results[-1].state)
