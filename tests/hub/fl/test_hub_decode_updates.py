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
    data, _residual = compress_update(delta, method=method, fraction=0.25, dense_below=0)

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
