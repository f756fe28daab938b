"""The strategy contract: round hooks a federated run calls, with shared guards here."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from protocol import FLConfigKey

__all__ = ["FitResult", "RoundError", "RoundFailure", "Strategy", "StrategyOptions"]

State = dict[str, torch.Tensor]
Metrics = dict[str, float]

WARN_NO_RESULTS = "round {round}: no results to aggregate"
WARN_FAILURES = "round {round}: {count} station(s) failed and failures are not accepted"
WARN_TOO_FEW = "round {round}: {count} result(s), fewer than the minimum of {minimum}"


@dataclass(frozen=True, kw_only=True)
class StrategyOptions:
    """Options every strategy shares; variants never re-declare them."""

    fraction_fit: float = 1.0
    min_fit_stations: int = 1
    accept_failures: bool = True
    local_epochs: int = 1
    learning_rate: float = 0.01
    batch_size: int = 32
    extra_config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FitResult:
    """One station's update for a round."""

    station: str
    state: State
    num_examples: int
    metrics: Metrics = field(default_factory=dict)


@dataclass(frozen=True)
class RoundFailure:
    """A station that did not deliver (error, straggler past the deadline, dropout)."""

    station: str
    reason: str


class RoundError(RuntimeError):
    """A round cannot be aggregated under the strategy's guards."""


class Strategy(ABC):
    """Round lifecycle of a federated run.

    ``configure_round`` says which stations train and with what config; ``aggregate_round``
    folds their results into the next global state. Subclasses implement ``_aggregate``.
    """

    name = "strategy"

    def __init__(self, options: StrategyOptions | None = None) -> None:
        self.options = options or StrategyOptions()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(options={self.options!r})"

    def select_stations(self, server_round: int, stations: Sequence[str]) -> list[str]:
        """Stations taking part in this round (the first ``fraction_fit`` share, in order)."""
        wanted = max(self.options.min_fit_stations, math.ceil(self.options.fraction_fit * len(stations)))
        return list(stations)[: min(wanted, len(stations))]

    def station_config(self, server_round: int, station: str) -> dict[str, Any]:
        """The config one station receives; subclasses add their keys."""
        config: dict[str, Any] = {
            FLConfigKey.SERVER_ROUND.value: server_round,
            FLConfigKey.LOCAL_EPOCHS.value: self.options.local_epochs,
            FLConfigKey.LEARNING_RATE.value: self.options.learning_rate,
            FLConfigKey.BATCH_SIZE.value: self.options.batch_size,
        }
        config.update(self.options.extra_config)
        return config

    def configure_round(self, server_round: int, stations: Sequence[str], state: State) -> dict[str, dict[str, Any]]:
        """Per-station config for this round; ``state`` is the global model sent along."""
        chosen = self.select_stations(server_round, stations)
        if len(chosen) < self.options.min_fit_stations:
            raise RoundError(
                WARN_TOO_FEW.format(round=server_round, count=len(chosen), minimum=self.options.min_fit_stations)
            )
        return {station: self.station_config(server_round, station) for station in chosen}

    def aggregate_round(
        self, server_round: int, results: Sequence[FitResult], failures: Sequence[RoundFailure]
    ) -> tuple[State, Metrics]:
        """Guard the round, then aggregate; metrics are example-weighted means plus counts."""
        if not results:
            raise RoundError(WARN_NO_RESULTS.format(round=server_round))
        if failures and not self.options.accept_failures:
            raise RoundError(WARN_FAILURES.format(round=server_round, count=len(failures)))
        if len(results) < self.options.min_fit_stations:
            raise RoundError(
                WARN_TOO_FEW.format(round=server_round, count=len(results), minimum=self.options.min_fit_stations)
            )
        state = self._aggregate(server_round, results)
        return state, _weighted_metrics(results) | {"stations": float(len(results)), "failures": float(len(failures))}

    @abstractmethod
    def _aggregate(self, server_round: int, results: Sequence[FitResult]) -> State:
        """Fold the round's results into the next global state."""


def _weighted_metrics(results: Sequence[FitResult]) -> Metrics:
    total = sum(r.num_examples for r in results)
    keys = sorted({k for r in results for k in r.metrics})
    out: Metrics = {}
    for key in keys:
        having = [r for r in results if key in r.metrics]
        weight = sum(r.num_examples for r in having)
        out[key] = sum(r.metrics[key] * r.num_examples for r in having) / weight
    out["num_examples"] = float(total)
    return out
