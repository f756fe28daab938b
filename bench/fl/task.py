"""The benchmark's learning task, shared by Trainyard's runs and Flower's (which imports this file alone).

scikit-learn's digits (1,797 real 8 x 8 images, 10 classes): a stratified 80/20 train/test split,
the training part partitioned over 4 stations IID or by a Dirichlet(alpha) label skew; a small MLP with
batch norm (so FedBN has something to keep local); plain SGD. Only numpy, torch and scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Split:
    """Features and labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Task:
    """Train partitions (one per station) and the shared test set."""

    stations: list[Split]
    test: Split
    train: Split


def _split(x: NDArray[np.float32], y: NDArray[np.int64]) -> Split:
    return Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long))


def partition(labels: NDArray[np.int64], stations: int, alpha: float | None, seed: int) -> list[NDArray[np.int64]]:
    """Indices per station: IID (``alpha`` None) or Dirichlet(alpha) proportions per class."""
    rng = np.random.default_rng(seed)
    if alpha is None:
        order = rng.permutation(len(labels))
        return [np.sort(part) for part in np.array_split(order, stations)]
    parts: list[list[int]] = [[] for _ in range(stations)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(stations, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
        for station, chunk in enumerate(np.split(members, cuts)):
            parts[station].extend(chunk.tolist())
    return [np.sort(np.array(part, dtype=np.int64)) for part in parts]


def make_task(*, alpha: float | None, seed: int, stations: int = 4) -> Task:
    """The digits task for one partitioning and seed (the test split is the same for every seed)."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    parts = partition(y_train, stations, alpha, seed)
    return Task(
        stations=[_split(x_train[idx], y_train[idx]) for idx in parts],
        test=_split(x_test, y_test),
        train=_split(x_train, y_train),
    )


def build_model() -> nn.Module:
    """A 64-64-10 MLP with batch norm."""
    return nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))


def initial_state(seed: int) -> State:
    """The same initial model for every run of a seed."""
    torch.manual_seed(seed)
    return {key: value.clone() for key, value in build_model().state_dict().items()}


def fit(
    state: State,
    data: Split,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    proximal_mu: float = 0.0,
) -> State:
    """Local SGD from ``state``; FedProx adds (mu/2) * ||w - w_global||^2."""
    torch.manual_seed(seed)
    model = build_model()
    model.load_state_dict(state)
    anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu else []
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            if len(index) < 2:
                continue  # batch norm needs two samples
            optimiser.zero_grad()
            loss = loss_fn(model(data.x[index]), data.y[index])
            if proximal_mu:
                loss = loss + proximal_mu / 2 * sum(
                    ((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True)
                )
            loss.backward()
            optimiser.step()
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def accuracy(state: State, data: Split) -> float:
    """Share of ``data`` classified correctly."""
    model = build_model()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return float((model(data.x).argmax(1) == data.y).float().mean())


def ensemble_accuracy(states: list[State], data: Split) -> float:
    """Accuracy of the averaged softmax of several models."""
    probs = []
    for state in states:
        model = build_model()
        model.load_state_dict(state)
        model.eval()
        with torch.no_grad():
            probs.append(torch.softmax(model(data.x), dim=-1))
    return float((torch.stack(probs).mean(0).argmax(1) == data.y).float().mean())
