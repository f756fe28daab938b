"""Compressed updates: top-k and 1-bit signs with error feedback, and their decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainkit.compression import compress_update, decompress_update, read_safetensors, write_safetensors

RNG = np.random.default_rng(7)


def _delta() -> dict[str, np.ndarray]:
    return {
        "conv.weight": RNG.normal(size=(8, 4, 3, 3)).astype(np.float32),
        "fc.bias": RNG.normal(size=(10,)).astype(np.float32),
        "bn.num_batches_tracked": np.array(12, dtype=np.int64),
    }


@pytest.mark.parametrize("method", ["none", "fp16", "topk", "sign"])
def test_round_trip_keeps_names_shapes_and_integers(method: str) -> None:
    delta = _delta()

    data, _residual = compress_update(delta, method=method, fraction=0.1, dense_below=0)
    dense = decompress_update(data)

    assert set(dense) == set(delta)
    assert all(dense[name].shape == delta[name].shape for name in delta)
    assert dense["bn.num_batches_tracked"] == 12
    _tensors, metadata = read_safetensors(data)
    assert metadata["compression"] == method and metadata["update_kind"] == "delta"


def test_topk_keeps_the_largest_entries_and_residual_is_the_rest() -> None:
    delta = _delta()

    data, residual = compress_update(delta, method="topk", fraction=0.1, dense_below=0)
    dense = decompress_update(data)

    weight = delta["conv.weight"].reshape(-1)
    sent = dense["conv.weight"].reshape(-1)
    kept = np.flatnonzero(sent)
    assert len(kept) == int(np.ceil(0.1 * weight.size))
    assert np.abs(weight[kept]).min() >= np.abs(np.delete(weight, kept)).max()
    np.testing.assert_allclose(sent + residual["conv.weight"].reshape(-1), weight, atol=1e-3)


def test_sign_sends_one_bit_per_entry_and_the_mean_magnitude() -> None:
    delta = _delta()

    data, _residual = compress_update(delta, method="sign", dense_below=0)
    dense = decompress_update(data)["conv.weight"]

    scale = np.abs(delta["conv.weight"]).mean()
    np.testing.assert_allclose(np.abs(dense), scale, rtol=1e-6)
    assert np.array_equal(dense >= 0, delta["conv.weight"] >= 0)


@pytest.mark.parametrize("method", ["topk", "sign"])
def test_error_feedback_makes_what_is_sent_track_what_was_meant(method: str) -> None:
    rounds = [_delta() for _ in range(30)]
    residual = None
    sent = np.zeros_like(rounds[0]["fc.bias"])
    meant = np.zeros_like(sent)
    for delta in rounds:
        data, residual = compress_update(delta, method=method, fraction=0.2, residual=residual, dense_below=0)
        sent += decompress_update(data)["fc.bias"]
        meant += delta["fc.bias"]

    assert residual is not None
    np.testing.assert_allclose(sent + residual["fc.bias"], meant, atol=1e-2)  # nothing is lost, only delayed
    assert np.abs(residual["fc.bias"]).max() < np.abs(meant).max()


def test_compressed_updates_are_much_smaller() -> None:
    big = {"w": RNG.normal(size=(256, 1024)).astype(np.float32)}

    sizes = {
        method: len(compress_update(big, method=method, fraction=0.01, dense_below=0)[0])
        for method in ("fp16", "topk", "sign")
    }

    assert sizes["fp16"] / sizes["topk"] > 30
    assert sizes["fp16"] / sizes["sign"] > 15


def _tampered(method: str, name: str, value: np.ndarray) -> bytes:
    data, _ = compress_update({"w": np.arange(16, dtype=np.float32)}, method=method, fraction=0.25, dense_below=0)
    tensors, metadata = read_safetensors(data)
    tensors = dict(tensors)
    tensors[name] = value
    return write_safetensors(tensors, metadata)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_tampered("topk", "w::idx", np.array([3, 2, 1, 0], dtype=np.int32)), "not ascending"),
        (_tampered("topk", "w::idx", np.array([0, 1, 2, 99], dtype=np.int32)), "out of range"),
        (_tampered("topk", "w::val", np.zeros(3, dtype=np.float16)), "do not match"),
        (_tampered("sign", "w::bits", np.zeros(1, dtype=np.uint8)), "do not cover"),
        (b"\x01\x00", "too short"),
        (write_safetensors({}, {"compression": "zip"}), "unknown compression"),
        (write_safetensors({}, {"compression": "topk", "shapes": json.dumps({"w": [4]})}), "do not match"),
        (write_safetensors({}, {"compression": "topk", "shapes": "[1,2"}), "shapes"),
    ],
)
def test_malformed_updates_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decompress_update(data)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown compression"):
        compress_update({}, method="zip", dense_below=0)
    with pytest.raises(ValueError, match="fraction"):
        compress_update({}, method="topk", fraction=0, dense_below=0)
