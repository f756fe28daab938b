"""Compressed updates: top-k and 1-bit signs with error feedback, packed or per tensor, and their decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainkit._packed import BLOB
from trainkit.compression import compress_update, decompress_update, read_safetensors, write_safetensors

RNG = np.random.default_rng(7)


def _delta() -> dict[str, np.ndarray]:
    return {
        "conv.weight": RNG.normal(size=(8, 4, 3, 3)).astype(np.float32),
        "fc.bias": RNG.normal(size=(10,)).astype(np.float32),
        "bn.num_batches_tracked": np.array(12, dtype=np.int64),
    }


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("method", ["none", "fp16", "topk", "sign"])
def test_round_trip_keeps_names_shapes_and_integers(method: str, packed: bool) -> None:
    delta = _delta()

    data, _residual = compress_update(delta, method=method, fraction=0.1, dense_below=0, packed=packed)
    dense = decompress_update(data)

    assert set(dense) == set(delta)
    assert all(dense[name].shape == delta[name].shape for name in delta)
    assert dense["bn.num_batches_tracked"] == 12
    _tensors, metadata = read_safetensors(data)
    assert metadata["compression"] == method and metadata["update_kind"] == "delta"


@pytest.mark.parametrize("packed", [True, False])
def test_topk_keeps_the_largest_entries_and_residual_is_the_rest(packed: bool) -> None:
    delta = _delta()

    data, residual = compress_update(delta, method="topk", fraction=0.1, dense_below=0, packed=packed)
    dense = decompress_update(data)

    weight = delta["conv.weight"].reshape(-1)
    sent = dense["conv.weight"].reshape(-1)
    kept = np.flatnonzero(sent)
    assert len(kept) == int(np.ceil(0.1 * weight.size))
    assert np.abs(weight[kept]).min() >= np.abs(np.delete(weight, kept)).max()
    np.testing.assert_allclose(sent + residual["conv.weight"].reshape(-1), weight, atol=1e-3)


@pytest.mark.parametrize("packed", [True, False])
def test_sign_sends_one_bit_per_entry_and_the_mean_magnitude(packed: bool) -> None:
    delta = _delta()

    data, _residual = compress_update(delta, method="sign", dense_below=0, packed=packed)
    dense = decompress_update(data)["conv.weight"]

    scale = np.abs(delta["conv.weight"]).mean()
    np.testing.assert_allclose(np.abs(dense), scale, rtol=1e-6)
    assert np.array_equal(dense >= 0, delta["conv.weight"] >= 0)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("method", ["topk", "sign"])
def test_error_feedback_makes_what_is_sent_track_what_was_meant(method: str, packed: bool) -> None:
    rounds = [_delta() for _ in range(30)]
    residual = None
    sent = np.zeros_like(rounds[0]["fc.bias"])
    meant = np.zeros_like(sent)
    for delta in rounds:
        data, residual = compress_update(
            delta, method=method, fraction=0.2, residual=residual, dense_below=0, packed=packed
        )
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
    data, _ = compress_update(
        {"w": np.arange(16, dtype=np.float32)}, method=method, fraction=0.25, dense_below=0, packed=False
    )
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
        (_tampered("topk", "w::val", np.array([1, np.nan, 2, 3], dtype=np.float16)), "not finite"),
        (_tampered("sign", "w::scale", np.array([np.nan], dtype=np.float32)), "not a finite"),
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


# --- the packed layout -------------------------------------------------------------------------------------------


def _model_delta(tensors: int = 12) -> dict[str, np.ndarray]:
    delta = {f"layer{i}.weight": RNG.normal(size=(32, 32)).astype(np.float32) for i in range(tensors)}
    delta.update({f"layer{i}.bias": RNG.normal(size=(32,)).astype(np.float32) for i in range(tensors)})
    delta["bn.running_var"] = RNG.random(32).astype(np.float32)
    delta["bn.num_batches_tracked"] = np.array(3, dtype=np.int64)
    return delta


@pytest.mark.parametrize("method", ["topk", "sign"])
def test_packed_update_is_one_stream_however_many_tensors(method: str) -> None:
    delta = _model_delta()

    packed, _ = compress_update(delta, method=method, fraction=0.05)
    legacy, _ = compress_update(delta, method=method, fraction=0.05, packed=False)

    tensors, metadata = read_safetensors(packed)
    assert list(tensors) == [BLOB] and tensors[BLOB].dtype == np.uint8
    assert metadata["layout"].startswith("bn.running_var=32,layer0.bias=32,layer0.weight=32x32,")
    assert metadata["ints"] == "bn.num_batches_tracked==I64"
    assert len(packed) < len(legacy) / 2  # 25 header entries of JSON and int32 / float16 parts, against one
    assert set(decompress_update(packed)) == set(delta)


def test_packed_topk_positions_are_rice_coded_when_sparse_and_a_bitmap_when_dense() -> None:
    delta = {"w": RNG.normal(size=(4096,)).astype(np.float32)}

    sparse, _ = compress_update(delta, method="topk", fraction=0.01)
    dense, _ = compress_update(delta, method="topk", fraction=0.5)

    assert read_safetensors(sparse)[1]["index"].startswith("rice:")
    assert read_safetensors(dense)[1]["index"] == "bitmap"
    kept = np.flatnonzero(decompress_update(sparse)["w"])
    expected = np.sort(np.argsort(np.abs(delta["w"]))[-41:])
    assert np.array_equal(kept, expected)
    assert len(sparse) < 41 * 2 + 200  # under 2 bytes an entry with the header (positions ~6 bits, sign 1 bit)


def test_rice_coding_survives_long_gaps() -> None:
    flat = np.zeros(300_000, dtype=np.float32)
    flat[[0, 7, 70_000, 299_999]] = [1.0, -2.0, 3.0, -4.0]

    data, residual = compress_update({"w": flat}, method="topk", fraction=4 / flat.size)

    sent = decompress_update(data)["w"]
    assert np.array_equal(np.flatnonzero(sent), [0, 7, 70_000, 299_999])
    assert np.allclose(sent[[0, 7, 70_000, 299_999]], [2.5, -2.5, 2.5, -2.5])  # sign x mean magnitude
    np.testing.assert_allclose(sent + residual["w"], flat)


def test_dense_names_travel_whole_as_four_bit_levels() -> None:
    delta = {
        "w": RNG.normal(size=(256,)).astype(np.float32),
        "bn.running_mean": np.linspace(-1, 1, 33, dtype=np.float32),
    }

    data, residual = compress_update(delta, method="topk", fraction=0.05, dense={"bn.running_mean"})

    metadata = read_safetensors(data)[1]
    assert metadata["whole"] == "bn.running_mean=33"
    sent = decompress_update(data)["bn.running_mean"]
    assert np.count_nonzero(sent) >= 30  # every entry moves, within 1/14 of the largest
    assert np.abs(sent - delta["bn.running_mean"]).max() <= 1 / 14 + 1e-6
    np.testing.assert_allclose(sent + residual["bn.running_mean"], delta["bn.running_mean"], atol=1e-6)


def test_dense_below_sends_small_tensors_whole() -> None:
    data, _ = compress_update(_model_delta(2), method="sign", dense_below=64)

    assert read_safetensors(data)[1]["whole"].split(",")[0] == "bn.running_var=32"


def test_names_the_layout_cannot_spell_fall_back_to_the_per_tensor_layout() -> None:
    delta = {"w=1,x": RNG.normal(size=(64,)).astype(np.float32)}

    data, _ = compress_update(delta, method="topk", fraction=0.1)

    tensors, _ = read_safetensors(data)
    assert "w=1,x::idx" in tensors and decompress_update(data)["w=1,x"].shape == (64,)


def test_updates_written_in_the_per_tensor_layout_still_decode() -> None:
    delta = _model_delta(2)
    old = {
        "layer0.weight::idx": np.array([3, 40], dtype=np.int32),
        "layer0.weight::val": np.array([0.5, -0.25], dtype=np.float16),
        "layer0.bias": np.full(32, 0.125, dtype=np.float16),
        "bn.num_batches_tracked": np.array(3, dtype=np.int64),
    }
    data = write_safetensors(
        old, {"compression": "topk", "update_kind": "delta", "shapes": json.dumps({"layer0.weight": [32, 32]})}
    )

    dense = decompress_update(data, expected={name: value.shape for name, value in delta.items()})

    assert dense["layer0.weight"].reshape(-1)[[3, 40]].tolist() == [0.5, -0.25]
    assert np.count_nonzero(dense["layer0.weight"]) == 2 and dense["layer0.bias"][0] == 0.125


def _repacked(method: str, **changes: str | np.ndarray) -> bytes:
    data, _ = compress_update(
        {"w": np.linspace(-1, 1, 64, dtype=np.float32), "rv": np.ones(3, np.float32), "n": np.array(2)},
        method=method,
        fraction=0.25,
        dense={"rv"},
    )
    tensors, metadata = read_safetensors(data)
    blob = changes.pop(BLOB, tensors[BLOB])
    assert isinstance(blob, np.ndarray)
    return write_safetensors({BLOB: blob}, {**metadata, **{k: str(v) for k, v in changes.items()}})


def _blob(method: str) -> np.ndarray:
    return read_safetensors(_repacked(method))[0][BLOB].copy()


def _with_scale(method: str, value: float) -> np.ndarray:
    blob = _blob(method)
    start = 8 + len(blob) - 8 - 4 - 2 - 4  # ints (8), ..., layout scale (4), whole levels (2), whole scale (4)
    blob[start : start + 4] = np.frombuffer(np.float32(value).tobytes(), dtype=np.uint8)
    return blob


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_repacked("topk", **{BLOB: _blob("topk")[:-1]}), "too short"),
        (_repacked("topk", **{BLOB: np.append(_blob("topk"), 0).astype(np.uint8)}), "bytes more"),
        (_repacked("sign", **{BLOB: _blob("sign")[:-3]}), "too short"),
        (_repacked("topk", **{BLOB: _with_scale("topk", float("nan"))}), "not finite"),
        (_repacked("sign", **{BLOB: _with_scale("sign", -1.0)}), "not finite non-negative"),
        (_repacked("topk", layout="w=8x7"), "out of range"),
        (_repacked("topk", layout="w=64,w=64"), "unique|twice|not name"),
        (_repacked("topk", layout="w=6a"), "not sizes"),
        (_repacked("topk", layout="w"), "not name=AxB"),
        (_repacked("topk", whole="n=3"), "twice"),
        (_repacked("topk", ints="n==F32"), "dtype"),
        (_repacked("topk", index="u8:16"), "unknown top-k index coding"),
        (_repacked("topk", index="rice:99:16:4"), "unknown top-k index coding"),
        (_repacked("topk", layout="w=3000000000"), "limit"),
        (_repacked("sign", index="bitmap"), "only a top-k update"),
        (_repacked("topk", compression="fp16"), "no packed layout"),
        (
            write_safetensors(
                {BLOB: np.zeros(4, np.uint8), "x": np.zeros(2, np.float32)}, {"compression": "sign", "layout": "w=8"}
            ),
            "one 1-d uint8 tensor",
        ),
    ],
)
def test_malformed_packed_updates_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decompress_update(data)


def test_rice_positions_past_the_end_are_refused() -> None:
    data, _ = compress_update({"w": np.arange(1, 65, dtype=np.float32)}, method="topk", fraction=0.1)
    tensors, metadata = read_safetensors(data)
    metadata["layout"] = "w=60"  # the kept entries (58..63) lie past a 60-entry layout

    with pytest.raises(ValueError, match="out of range"):
        decompress_update(write_safetensors(tensors, metadata))


@pytest.mark.parametrize("packed", [True, False])
def test_an_update_is_checked_against_the_models_names_and_shapes(packed: bool) -> None:
    data, _ = compress_update(_delta(), method="topk", fraction=0.1, dense_below=0, packed=packed)
    model = {name: value.shape for name, value in _delta().items()}

    assert set(decompress_update(data, expected=model)) == set(model)
    with pytest.raises(ValueError, match="does not have"):
        decompress_update(data, expected={k: v for k, v in model.items() if k != "fc.bias"})
    with pytest.raises(ValueError, match="shapes differ"):
        decompress_update(data, expected={**model, "conv.weight": (8, 36)})


def test_safetensors_round_trip_ring_elements_and_read_torch_files() -> None:
    import torch
    from safetensors.torch import save

    tensors = {"m": np.array([0, 2**32 - 1], dtype=np.uint32), "n": np.array(7, dtype=np.int64)}
    back, metadata = read_safetensors(write_safetensors(tensors, {"kind": "x"}))

    assert metadata == {"kind": "x"} and back["n"].shape == ()
    assert back["m"].dtype == np.uint32 and back["m"].tolist() == [0, 2**32 - 1]
    from_torch, _ = read_safetensors(save({"a": torch.ones(2, 2), "b": torch.tensor(3)}))
    assert from_torch["a"].shape == (2, 2) and int(from_torch["b"]) == 3
