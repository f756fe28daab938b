"""The hub reads every update format a station may send: dense, fp16, top-k and sign deltas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hub.fl import decode_state
from hub.fl._plans import UpdateFormatError
from trainkit.compression import compress_update, read_safetensors, write_safetensors

BASE = {"w": torch.ones(4, 4), "n": torch.tensor(3)}


@pytest.mark.parametrize("method", ["topk", "sign"])
def test_compressed_delta_is_added_to_the_global_model(method: str) -> None:
    delta = {"w": np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "n": np.array(5)}
    data, _residual = compress_update(delta, method=method, fraction=0.25, dense_below=0, packed=False)

    state = decode_state(data, base=BASE)

    assert state["w"].shape == (4, 4)
    assert state["n"].item() == 5  # integers travel as they are
    changed = state["w"] - BASE["w"]
    if method == "topk":
        assert int((changed != 0).sum()) == 4
        assert torch.allclose(changed.abs().max(), torch.tensor(1.0), atol=1e-3)
    else:
        assert torch.allclose(changed.abs(), torch.full((4, 4), float(np.abs(delta["w"]).mean())), atol=1e-6)


def test_compressed_update_needs_the_global_model_and_to_be_a_delta() -> None:
    data, _ = compress_update({"w": np.ones(16, dtype=np.float32)}, method="topk", fraction=0.5, dense_below=0)
    tensors, metadata = read_safetensors(data)

    with pytest.raises(UpdateFormatError, match="needs the round's global model"):
        decode_state(data)
    with pytest.raises(UpdateFormatError, match="must be a delta"):
        decode_state(write_safetensors(tensors, {**metadata, "update_kind": "weights"}), base=BASE)
    broken = write_safetensors({**tensors, "w::idx": np.array([9, 1], dtype=np.int32)}, metadata)
    with pytest.raises(UpdateFormatError, match="does not decode"):
        decode_state(broken, base=BASE)
    with pytest.raises(UpdateFormatError, match="the hub reads none, fp16, topk, sign"):
        decode_state(write_safetensors(tensors, {**metadata, "compression": "zstd"}), base=BASE)


def _packed(method: str = "topk") -> bytes:
    delta = {"w": np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "n": np.array(5)}
    data, _residual = compress_update(delta, method=method, fraction=0.25)
    return data


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("method", ["topk", "sign"])
def test_packed_and_per_tensor_updates_decode_to_the_same_change(method: str, packed: bool) -> None:
    delta = {"w": np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "n": np.array(5)}
    data, residual = compress_update(delta, method=method, fraction=0.25, packed=packed)

    state = decode_state(data, base=BASE)

    assert ("::packed" in read_safetensors(data)[0]) is packed
    sent = (state["w"] - BASE["w"]).numpy()
    assert np.allclose(sent + residual["w"], delta["w"], atol=1e-6)  # what was sent and what is left add up
    assert state["n"].item() == 5


def _with(data: bytes, **metadata: str) -> bytes:
    tensors, meta = read_safetensors(data)
    return write_safetensors(tensors, {**meta, **metadata})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(_packed(), layout="w=4x4,extra=2"), "tensors the model does not have"),
        (_with(_packed(), index="rice:2:9:2"), "does not decode"),
        (_with(_packed(), layout="w=16"), "shapes differ from the model's"),
        (_with(_packed(), layout="v=4x4"), "tensors the model does not have"),
        (_with(_packed(), ints="m==I64"), "tensors the model does not have"),
        (_with(_packed("sign"), layout="w=2x4"), "shapes differ"),
        (_packed()[:-1], "does not decode"),
        (
            write_safetensors(
                {"w::idx": np.array([1, 1], dtype=np.int32), "w::val": np.ones(2, np.float16)},
                {"compression": "topk", "update_kind": "delta", "shapes": '{"w": [4, 4]}'},
            ),
            "not ascending",
        ),
        (
            write_safetensors(
                {"w::bits": np.zeros(2, np.uint8), "w::scale": np.array([np.nan], np.float32)},
                {"compression": "sign", "update_kind": "delta", "shapes": '{"w": [4, 4]}'},
            ),
            "not a finite",
        ),
        (write_safetensors({"w": np.ones(3, np.float32)}, {"compression": "none", "update_kind": "delta"}), "shapes"),
    ],
)
def test_malformed_compressed_updates_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(UpdateFormatError, match=message):
        decode_state(data, base=BASE)
