"""Ensemble: collect every station's local model once; the packaged model averages outputs.

Standard one-shot baseline, e.g. Guha et al., "One-Shot Federated Learning",
https://arxiv.org/abs/1902.11175
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .strategy import FitResult, State, Strategy

__all__ = ["Ensemble", "EnsembleModel", "split_ensemble_state"]

_SEP = "::"


def split_ensemble_state(state: State) -> dict[str, State]:
    """Member name -> its state dict, from an ensemble state (``member::param``)."""
    members: dict[str, State] = {}
    for key, value in state.items():
        member, _, param = key.partition(_SEP)
        members.setdefault(member, {})[param] = value
    return members


class Ensemble(Strategy):
    """Each station trains from the initial model; the state holds all members side by side."""

    name = "ensemble"

    def _aggregate(self, server_round: int, results: Sequence[FitResult]) -> State:
        return {f"{r.station}{_SEP}{k}": v for r in results for k, v in r.state.items()}


class EnsembleModel(nn.Module):
    """Averages the softmax outputs of member models built by ``model_fn``."""

    def __init__(self, model_fn: Callable[[], nn.Module], state: State) -> None:
        super().__init__()
        members = split_ensemble_state(state)
        modules = []
        for name in sorted(members):
            module = model_fn()
            module.load_state_dict(members[name])
            modules.append(module)
        self.members = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=-1) for m in self.members]).mean(0)
        return torch.log(probs.clamp_min(1e-12))
