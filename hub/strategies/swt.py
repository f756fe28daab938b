"""Single weight transfer: one pass through the stations, each fine-tunes the last one's model.

Chang et al., "Distributed deep learning networks among institutions for medical imaging",
JAMIA 2018 (https://doi.org/10.1093/jamia/ocy017); see also Sheller et al.,
https://arxiv.org/abs/1810.04304
"""

from __future__ import annotations

from collections.abc import Sequence

from .cwt import CyclicWeightTransfer
from .strategy import StrategyOptions

__all__ = ["SingleWeightTransfer"]


class SingleWeightTransfer(CyclicWeightTransfer):
    """Cyclic weight transfer with exactly one cycle."""

    name = "swt"

    def __init__(self, options: StrategyOptions | None = None, *, order: Sequence[str] | None = None) -> None:
        super().__init__(options, cycles=1, order=order)
