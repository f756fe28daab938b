"""trainkit.privacy: the Rényi DP accountant of the (Poisson-subsampled) Gaussian mechanism."""

from __future__ import annotations

import math

import pytest

from trainkit.privacy import GAUSSIAN_ORDERS, epsilon, noise_for_epsilon, rdp_sampled_gaussian


@pytest.mark.parametrize(("sigma", "order"), [(0.5, 2), (1.0, 8), (3.0, 32), (1.0, 1.5)])
def test_without_subsampling_it_is_the_gaussian_mechanism(sigma: float, order: float) -> None:
    assert rdp_sampled_gaussian(noise_multiplier=sigma, sampling_rate=1.0, order=order) == pytest.approx(
        order / (2 * sigma**2)
    )


def test_a_reference_point_from_the_binomial_expansion() -> None:
    # alpha = 2: A = (1-q)^2 + 2q(1-q) + q^2 e^(1/sigma^2) = 1 + q^2 (e^(1/sigma^2) - 1)
    q, sigma = 0.01, 1.0
    expected = math.log(1 + q * q * (math.exp(1 / sigma**2) - 1))
    assert rdp_sampled_gaussian(noise_multiplier=sigma, sampling_rate=q, order=2) == pytest.approx(expected)
    # alpha = 3: the expansion's four terms written out
    q, sigma = 0.1, 2.0
    terms = (1 - q) ** 3 + 3 * (1 - q) ** 2 * q + 3 * (1 - q) * q**2 * math.exp(2 / 8) + q**3 * math.exp(6 / 8)
    assert rdp_sampled_gaussian(noise_multiplier=sigma, sampling_rate=q, order=3) == pytest.approx(math.log(terms) / 2)


def test_epsilon_is_the_best_order_of_the_composed_rdp() -> None:
    sigma, rounds, delta = 1.0, 20, 1e-5
    expected = min(rounds * a / (2 * sigma**2) + math.log(1 / delta) / (a - 1) for a in GAUSSIAN_ORDERS)
    assert epsilon(noise_multiplier=sigma, sampling_rate=1.0, steps=rounds, delta=delta) == pytest.approx(expected)


def test_subsampling_amplifies_privacy() -> None:
    full = epsilon(noise_multiplier=1.0, sampling_rate=1.0, steps=100, delta=1e-5)
    sampled = epsilon(noise_multiplier=1.0, sampling_rate=0.01, steps=100, delta=1e-5)
    assert sampled < full / 10


def test_epsilon_grows_with_the_rate_and_the_steps_and_falls_with_the_noise() -> None:
    def eps(sigma: float = 1.0, q: float = 0.05, steps: int = 200) -> float:
        return epsilon(noise_multiplier=sigma, sampling_rate=q, steps=steps, delta=1e-5)

    assert eps(sigma=0.8) > eps(sigma=1.0) > eps(sigma=2.0) > eps(sigma=4.0)
    assert eps(q=0.01) < eps(q=0.05) < eps(q=0.2) < eps(q=1.0)
    assert eps(steps=10) < eps(steps=100) < eps(steps=1000)


def test_edge_cases_and_bad_input() -> None:
    assert epsilon(noise_multiplier=0.0, sampling_rate=0.1, steps=10, delta=1e-5) == math.inf
    assert epsilon(noise_multiplier=1.0, sampling_rate=0.1, steps=0, delta=1e-5) == 0.0
    with pytest.raises(ValueError, match="integer order"):
        rdp_sampled_gaussian(noise_multiplier=1.0, sampling_rate=0.5, order=2.5)
    with pytest.raises(ValueError, match="sampling rate"):
        epsilon(noise_multiplier=1.0, sampling_rate=1.5, steps=1, delta=1e-5)
    with pytest.raises(ValueError, match="delta"):
        epsilon(noise_multiplier=1.0, sampling_rate=0.5, steps=1, delta=0.0)


def test_noise_for_epsilon_meets_its_target() -> None:
    for target in (1.0, 3.0, 8.0):
        sigma = noise_for_epsilon(target, sampling_rate=0.09, steps=220, delta=1e-5)
        assert epsilon(noise_multiplier=sigma, sampling_rate=0.09, steps=220, delta=1e-5) <= target
        assert epsilon(noise_multiplier=sigma * 0.99, sampling_rate=0.09, steps=220, delta=1e-5) > target
    assert noise_for_epsilon(math.inf, sampling_rate=0.1, steps=10, delta=1e-5) == 0.0
