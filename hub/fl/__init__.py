"""Federated runs at the hub: rounds of station jobs, aggregation by a strategy, the model registry."""

from ._coordinator import RoundCoordinator as RoundCoordinator
from ._coordinator import plan_of as plan_of
from ._plans import UpdateFormatError as UpdateFormatError
from ._plans import decode_state as decode_state
from ._plans import encode_state as encode_state
from ._plans import rounds_for as rounds_for
from ._plans import strategy_for as strategy_for
from ._registry import get_model_for_user as get_model_for_user
from ._registry import list_models_for_user as list_models_for_user

__all__ = [
    "RoundCoordinator",
    "UpdateFormatError",
    "decode_state",
    "encode_state",
    "get_model_for_user",
    "list_models_for_user",
    "plan_of",
    "rounds_for",
    "strategy_for",
]
