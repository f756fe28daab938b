"""A state dict that reads its update only when a strategy first looks inside it."""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, KeysView, ValuesView
from typing import Any

import torch

__all__ = ["LazyState"]


class LazyState(dict[str, torch.Tensor]):
    """A ``dict`` of tensors filled by ``load()`` on first use (any read), then an ordinary dict.

    A round's results can then be counted, weighed and their metrics averaged without reading a
    single update, and a strategy that folds them one by one holds one at a time.

    Examples
    --------
    >>> calls = []
    >>> state = LazyState(lambda: calls.append(1) or {"w": torch.zeros(1)})
    >>> calls
    []
    >>> sorted(state), calls
    (['w'], [1])
    """

    def __init__(self, load: Callable[[], dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self._load: Callable[[], dict[str, torch.Tensor]] | None = load

    def _fill(self) -> None:
        if self._load is not None:
            load, self._load = self._load, None
            dict.update(self, load())

    def __repr__(self) -> str:
        return "LazyState(<not read>)" if self._load is not None else f"LazyState({sorted(dict.keys(self))})"

    def __getitem__(self, key: str) -> torch.Tensor:
        self._fill()
        return dict.__getitem__(self, key)

    def __iter__(self) -> Iterator[str]:
        self._fill()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._fill()
        return dict.__len__(self)

    def __contains__(self, key: object) -> bool:
        self._fill()
        return dict.__contains__(self, key)

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        self._fill()
        return dict.keys(self)

    def items(self) -> ItemsView[str, torch.Tensor]:  # type: ignore[override]
        self._fill()
        return dict.items(self)

    def values(self) -> ValuesView[torch.Tensor]:  # type: ignore[override]
        self._fill()
        return dict.values(self)

    def get(self, key: str, default: Any = None) -> Any:
        self._fill()
        return dict.get(self, key, default)

    def copy(self) -> dict[str, torch.Tensor]:
        self._fill()
        return dict(dict.items(self))
