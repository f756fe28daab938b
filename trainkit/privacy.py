"""A Rényi DP accountant for the (Poisson-subsampled) Gaussian mechanism; standard library only.

One step of DP-SGD adds Gaussian noise of standard deviation ``noise_multiplier * clip`` to the
sum of clipped per-example gradients of a batch that holds each example with probability
``sampling_rate`` (Poisson sampling). For an integer order a its Rényi DP is bounded by the
binomial expansion of Mironov, Talwar & Zhang 2019 (https://arxiv.org/abs/1908.10530, Sec. 3.3)::

    RDP(a) = log( sum_{k=0..a} C(a, k) (1 - q)^(a-k) q^k exp((k² - k) / (2 sigma²)) ) / (a - 1)

With ``sampling_rate = 1`` this is the plain Gaussian mechanism, ``a / (2 sigma²)``, which holds for
every real order (the hub's central DP uses it). Steps compose by adding RDP; (ε, δ) is
``min_a steps · RDP(a) + log(1/δ) / (a - 1)`` (Mironov 2017, Proposition 3).

Pure Python, so that trains (inside their container) and the hub use the same arithmetic;
``import trainkit`` does not load it.

Examples
--------
>>> round(epsilon(noise_multiplier=1.0, sampling_rate=1.0, steps=20, delta=1e-5), 1)
31.5
>>> round(epsilon(noise_multiplier=1.1, sampling_rate=256 / 60000, steps=60 * 234, delta=1e-5), 2)
3.01
>>> epsilon(noise_multiplier=0.0, sampling_rate=0.1, steps=10, delta=1e-5)
inf
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["GAUSSIAN_ORDERS", "SUBSAMPLED_ORDERS", "epsilon", "noise_for_epsilon", "rdp_sampled_gaussian"]

# Any real order > 1 bounds the plain Gaussian; the subsampled bound needs integers.
GAUSSIAN_ORDERS: tuple[float, ...] = (
    1.25,
    1.5,
    1.75,
    2,
    2.5,
    3,
    4,
    5,
    6,
    8,
    10,
    12,
    16,
    20,
    24,
    32,
    48,
    64,
    128,
    256,
    512,
)
SUBSAMPLED_ORDERS: tuple[int, ...] = (*range(2, 33), 40, 48, 56, 64, 80, 96, 128, 192, 256, 512)


def _check(noise_multiplier: float, sampling_rate: float) -> None:
    if not 0.0 <= sampling_rate <= 1.0:
        raise ValueError(f"the sampling rate must be in [0, 1], not {sampling_rate}")
    if noise_multiplier < 0:
        raise ValueError(f"the noise multiplier cannot be negative, not {noise_multiplier}")


def rdp_sampled_gaussian(*, noise_multiplier: float, sampling_rate: float, order: float) -> float:
    """The Rényi DP of one step at ``order`` (an integer unless ``sampling_rate`` is 1).

    Raises
    ------
    ValueError
        For a sampling rate outside [0, 1], a negative noise multiplier, an order not above 1,
        or a fractional order with subsampling.
    """
    _check(noise_multiplier, sampling_rate)
    if order <= 1:
        raise ValueError(f"a Rényi order must be above 1, not {order}")
    if sampling_rate == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    variance = noise_multiplier**2
    if sampling_rate == 1:
        return order / (2 * variance)
    if order != int(order):
        raise ValueError(f"the subsampled Gaussian's bound needs an integer order, not {order}")
    alpha = int(order)
    log_q, log_1q = math.log(sampling_rate), math.log1p(-sampling_rate)
    terms = [
        math.lgamma(alpha + 1)
        - math.lgamma(k + 1)
        - math.lgamma(alpha - k + 1)
        + k * log_q
        + (alpha - k) * log_1q
        + (k * k - k) / (2 * variance)
        for k in range(alpha + 1)
    ]
    top = max(terms)
    log_a = top + math.log(math.fsum(math.exp(term - top) for term in terms))
    return max(log_a, 0.0) / (alpha - 1)


def epsilon(
    *,
    noise_multiplier: float,
    sampling_rate: float,
    steps: int,
    delta: float,
    orders: Iterable[float] | None = None,
) -> float:
    """The ε, at this δ, of ``steps`` subsampled Gaussian steps composed (``inf`` without noise).

    Raises
    ------
    ValueError
        As :func:`rdp_sampled_gaussian`, for negative steps, or a δ outside (0, 1).
    """
    _check(noise_multiplier, sampling_rate)
    if steps < 0:
        raise ValueError(f"the number of steps cannot be negative, not {steps}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), not {delta}")
    if steps == 0 or sampling_rate == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    chosen = tuple(orders) if orders is not None else (GAUSSIAN_ORDERS if sampling_rate == 1 else SUBSAMPLED_ORDERS)
    log_inverse = math.log(1 / delta)
    return min(
        steps * rdp_sampled_gaussian(noise_multiplier=noise_multiplier, sampling_rate=sampling_rate, order=alpha)
        + log_inverse / (alpha - 1)
        for alpha in chosen
    )


def noise_for_epsilon(target: float, *, sampling_rate: float, steps: int, delta: float) -> float:
    """The smallest noise multiplier (to 0.1 %) whose ``steps`` steps stay within ε = ``target``.

    Raises
    ------
    ValueError
        For a target that is not positive.
    """
    if math.isinf(target):
        return 0.0
    if target <= 0:
        raise ValueError(f"epsilon must be positive, not {target}")
    low, high = 1e-3, 1e4
    while high / low > 1.001:  # bisection on a log scale: ε falls as sigma grows
        middle = math.sqrt(low * high)
        spent = epsilon(noise_multiplier=middle, sampling_rate=sampling_rate, steps=steps, delta=delta)
        low, high = (middle, high) if spent > target else (low, middle)
    return high
