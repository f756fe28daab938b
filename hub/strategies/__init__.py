"""Federated strategies in Flower's shape: round hooks on an ABC, math in ``aggregate``."""

from .aggregate import StreamingAverage as StreamingAverage
from .aggregate import weighted_average as weighted_average
from .cwt import CyclicWeightTransfer as CyclicWeightTransfer
from .ensemble import Ensemble as Ensemble
from .ensemble import EnsembleModel as EnsembleModel
from .ensemble import split_ensemble_state as split_ensemble_state
from .fedavg import FedAvg as FedAvg
from .fedbn import FedBN as FedBN
from .fedbn import is_batch_norm_parameter as is_batch_norm_parameter
from .fedprox import FedProx as FedProx
from .strategy import FitResult as FitResult
from .strategy import RoundError as RoundError
from .strategy import RoundFailure as RoundFailure
from .strategy import Strategy as Strategy
from .strategy import StrategyOptions as StrategyOptions
from .swt import SingleWeightTransfer as SingleWeightTransfer

__all__ = [
    "CyclicWeightTransfer",
    "Ensemble",
    "EnsembleModel",
    "FedAvg",
    "FedBN",
    "FedProx",
    "FitResult",
    "RoundError",
    "RoundFailure",
    "SingleWeightTransfer",
    "Strategy",
    "StrategyOptions",
    "StreamingAverage",
    "is_batch_norm_parameter",
    "split_ensemble_state",
    "weighted_average",
]
