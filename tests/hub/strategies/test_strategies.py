import pytest
import torch
from torch import nn

from hub.strategies import (
    CyclicWeightTransfer,
    Ensemble,
    EnsembleModel,
    FedAvg,
    FedBN,
    FedProx,
    FitResult,
    RoundError,
    RoundFailure,
    SingleWeightTransfer,
    StrategyOptions,
)
from protocol import FLConfigKey

STATIONS = ["a", "b", "c", "d"]


def _result(station: str, value: float, n: int = 1) -> FitResult:
    return FitResult(station, {"w": torch.full((2,), value), "bn.weight": torch.full((2,), value)}, n, {"loss": value})


def test_fedavg_aggregate_round_weighted_and_metrics() -> None:
    state, metrics = FedAvg().aggregate_round(1, [_result("a", 0.0, 1), _result("b", 4.0, 3)], [])

    assert torch.allclose(state["w"], torch.full((2,), 3.0))
    assert metrics["loss"] == pytest.approx(3.0)
    assert metrics["stations"] == 2


def test_aggregate_round_no_results() -> None:
    with pytest.raises(RoundError, match="no results"):
        FedAvg().aggregate_round(1, [], [])


def test_aggregate_round_failures_not_accepted() -> None:
    strategy = FedAvg(StrategyOptions(accept_failures=False))
    with pytest.raises(RoundError, match="failures are not accepted"):
        strategy.aggregate_round(1, [_result("a", 1.0)], [RoundFailure("b", "deadline")])


def test_aggregate_round_below_minimum() -> None:
    with pytest.raises(RoundError, match="minimum"):
        FedAvg(StrategyOptions(min_fit_stations=3)).aggregate_round(1, [_result("a", 1.0)], [])


def test_configure_round_fraction() -> None:
    config = FedAvg(StrategyOptions(fraction_fit=0.5)).configure_round(1, STATIONS, {})

    assert list(config) == ["a", "b"]
    assert config["a"][FLConfigKey.SERVER_ROUND] == 1


def test_fedprox_adds_mu_to_config_only() -> None:
    config = FedProx(proximal_mu=0.1).configure_round(1, STATIONS, {})

    assert all(c[FLConfigKey.PROXIMAL_MU] == 0.1 for c in config.values())
    assert FLConfigKey.PROXIMAL_MU not in FedAvg().configure_round(1, STATIONS, {})["a"]


def test_fedbn_excludes_batch_norm() -> None:
    state, _ = FedBN().aggregate_round(1, [_result("a", 0.0), _result("b", 2.0)], [])

    assert set(state) == {"w"}


@pytest.mark.parametrize(("cycles", "expected"), [(1, ["a", "b", "c", "d"]), (2, ["a", "b", "c", "d"] * 2)])
def test_cwt_visits_stations_in_order(cycles: int, expected: list[str]) -> None:
    strategy = CyclicWeightTransfer(cycles=cycles)
    rounds = strategy.num_rounds(STATIONS)

    actual = [s for r in range(1, rounds + 1) for s in strategy.select_stations(r, STATIONS)]

    assert actual == expected
    assert strategy.select_stations(rounds + 1, STATIONS) == []


def test_swt_one_pass_custom_order_takes_last_model() -> None:
    strategy = SingleWeightTransfer(order=["d", "c"])
    state, _ = strategy.aggregate_round(1, [_result("d", 5.0)], [])

    assert strategy.num_rounds(STATIONS) == 2
    assert strategy.select_stations(1, STATIONS) == ["d"]
    assert torch.equal(state["w"], torch.full((2,), 5.0))


def test_ensemble_model_averages_member_outputs() -> None:
    def model_fn() -> nn.Module:
        return nn.Linear(2, 2)

    members = [model_fn() for _ in range(2)]
    results = [FitResult(f"s{i}", m.state_dict(), 1) for i, m in enumerate(members)]
    state, _ = Ensemble().aggregate_round(1, results, [])
    x = torch.randn(3, 2)
    expected = torch.stack([torch.softmax(m(x), -1) for m in members]).mean(0)

    actual = EnsembleModel(model_fn, state)(x).exp()

    assert torch.allclose(actual, expected, atol=1e-6)
