"""Pure torch aggregation over ``(state_dict, num_examples)`` pairs.

Nothing here knows about rounds or stations, so every function is testable on tiny tensors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import torch

__all__ = ["StreamingAverage", "weighted_average"]

StateDict = Mapping[str, torch.Tensor]


def _check_keys(expected: Collection[str], actual: Collection[str]) -> None:
    if set(expected) != set(actual):
        missing = sorted(set(expected) ^ set(actual))
        raise ValueError(f"updates disagree on parameter names: {missing}")


class StreamingAverage:
    """Example-weighted running mean that holds one accumulator, never all updates.

    Examples
    --------
    >>> acc = StreamingAverage()
    >>> acc.add({"w": torch.ones(2)}, 1)
    >>> acc.add({"w": torch.zeros(2)}, 3)
    >>> acc.result()["w"].tolist()
    [0.25, 0.25]
    """

    def __init__(self, *, exclude: Collection[str] = ()) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._dtypes: dict[str, torch.dtype] = {}
        self._exclude = frozenset(exclude)
        self.total_examples = 0
        self.count = 0

    def __repr__(self) -> str:
        return f"StreamingAverage(count={self.count}, total_examples={self.total_examples})"

    def add(self, state: StateDict, num_examples: int) -> None:
        """Fold one update in; its tensors may be freed right after."""
        if num_examples <= 0:
            raise ValueError("num_examples must be positive")
        keys = [key for key in state if key not in self._exclude]
        if self._sums:
            _check_keys(self._sums, keys)
        for key in keys:
            tensor = state[key]
            weighted = tensor.detach().to(torch.float64 if tensor.dtype == torch.float64 else torch.float32)
            if key in self._sums:
                self._sums[key].add_(weighted, alpha=num_examples)
            else:
                self._dtypes[key] = tensor.dtype
                self._sums[key] = weighted.mul(num_examples)
        self.total_examples += num_examples
        self.count += 1

    def result(self) -> dict[str, torch.Tensor]:
        """Weighted mean in each parameter's original dtype (integer buffers are rounded)."""
        if not self.count:
            raise ValueError("no updates to average")
        out: dict[str, torch.Tensor] = {}
        for key, total in self._sums.items():
            mean = total / self.total_examples
            dtype = self._dtypes[key]
            out[key] = mean.round().to(dtype) if not dtype.is_floating_point else mean.to(dtype)
        return out


def weighted_average(
    updates: Iterable[tuple[StateDict, int]], *, exclude: Collection[str] = ()
) -> dict[str, torch.Tensor]:
    """Average state dicts weighted by their example counts (FedAvg's rule).

    Parameters
    ----------
    updates
        ``(state_dict, num_examples)`` pairs; consumed one at a time, so a generator streams.
    exclude
        Parameter names left out of the result (FedBN keeps batch-norm local).

    Raises
    ------
    ValueError
        When there are no updates, a count is not positive or parameter names disagree.
    """
    acc = StreamingAverage(exclude=exclude)
    for state, num_examples in updates:
        acc.add(state, num_examples)
    return acc.result()
