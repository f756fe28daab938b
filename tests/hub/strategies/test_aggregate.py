import pytest
import torch

from hub.strategies import StreamingAverage, weighted_average


def test_weighted_average_by_examples() -> None:
    # Prepare
    updates = [({"w": torch.tensor([1.0, 2.0])}, 1), ({"w": torch.tensor([3.0, 6.0])}, 3)]
    expected = torch.tensor([2.5, 5.0])
    # Execute
    actual = weighted_average(updates)["w"]
    # Assert
    assert torch.allclose(actual, expected)


def test_weighted_average_streams_generator_and_excludes() -> None:
    def gen():  # type: ignore[no-untyped-def]
        for i in range(100):
            yield {"w": torch.full((3,), float(i)), "bn.running_mean": torch.zeros(3)}, 1

    actual = weighted_average(gen(), exclude={"bn.running_mean"})

    assert set(actual) == {"w"}
    assert torch.allclose(actual["w"], torch.full((3,), 49.5))


def test_streaming_average_keeps_dtype_of_integer_buffers() -> None:
    acc = StreamingAverage()
    acc.add({"n": torch.tensor(2)}, 1)
    acc.add({"n": torch.tensor(4)}, 1)

    assert acc.result()["n"].dtype == torch.int64


@pytest.mark.parametrize(
    ("updates", "message"),
    [([], "no updates"), ([({"w": torch.ones(1)}, 0)], "positive")],
)
def test_weighted_average_rejects_bad_input(updates: list[tuple[dict[str, torch.Tensor], int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        weighted_average(updates)


def test_weighted_average_rejects_mismatched_names() -> None:
    with pytest.raises(ValueError, match="disagree"):
        weighted_average([({"a": torch.ones(1)}, 1), ({"b": torch.ones(1)}, 1)])
