"""FedAvg: example-weighted mean of the stations' models.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data",
AISTATS 2017, https://arxiv.org/abs/1602.05629
"""

from __future__ import annotations

from collections.abc import Sequence

from .aggregate import StreamingAverage
from .strategy import FitResult, State, Strategy

__all__ = ["FedAvg"]


class FedAvg(Strategy):
    """Federated averaging; variants override one hook."""

    name = "fedavg"

    def excluded_parameters(self, results: Sequence[FitResult]) -> frozenset[str]:
        """Names left out of the average (none for FedAvg)."""
        return frozenset()

    def _aggregate(self, server_round: int, results: Sequence[FitResult]) -> State:
        acc = StreamingAverage(exclude=self.excluded_parameters(results))
        for result in results:
            acc.add(result.state, result.num_examples)
            del result  # let a lazily read update go before the next one is read
        return acc.result()
