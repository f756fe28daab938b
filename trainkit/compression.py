"""Compressed model updates: top-k sparsification and 1-bit signs, both with error feedback.

A federated train sends the hub the *change* of its weights this round (``update_kind =
delta``), compressed, in a safetensors file the hub decodes (``hub.fl.decode_state``):

* ``topk`` keeps the ``fraction`` largest-magnitude entries of each float tensor:
  ``<name>::idx`` (int32 flat indices, ascending) and ``<name>::val`` (float16 values);
* ``sign`` keeps one bit per entry and one scale per tensor (the mean magnitude):
  ``<name>::bits`` (uint8, packed, 1 = non-negative) and ``<name>::scale`` (float32);
* ``fp16`` and ``none`` send every entry (float16 or float32).

What a compressor drops is not lost: the *residual* (what was meant minus what was sent) is
kept at the station (``/out/station_state.safetensors``, which never leaves) and added to the next
round's change — error feedback, so that the sum of what is sent tracks the sum of the changes.
Integer tensors (e.g. batch-norm counters) travel unchanged. Only numpy is needed, so this runs
in the train base image; the safetensors files are written and read here directly.

Examples
--------
>>> import numpy as np
>>> delta = {"w": np.array([0.5, -0.01, 0.02, -2.0], dtype=np.float32)}
>>> data, residual = compress_update(delta, method="topk", fraction=0.5, dense_below=0)
>>> decompress_update(data)["w"].tolist()
[0.5, 0.0, 0.0, -2.0]
>>> [round(float(x), 2) for x in residual["w"]]
[0.0, -0.01, 0.02, 0.0]
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["METHODS", "compress_update", "decompress_update", "read_safetensors", "write_safetensors"]

METHODS = ("none", "fp16", "topk", "sign")
_DTYPES = {
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "I8": np.int8,
    "U8": np.uint8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
    "BOOL": np.bool_,
}
_NAMES = {np.dtype(value).str: key for key, value in _DTYPES.items()}


def write_safetensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors bytes of ``tensors`` (little-endian, C order), with text ``metadata``."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(key): str(value) for key, value in metadata.items()}
    chunks, offset = [], 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name], order="C")  # (ascontiguousarray would make a scalar 1-d)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        code = _NAMES.get(array.dtype.str)
        if code is None:
            raise ValueError(f"tensor {name!r} has a dtype safetensors files here do not carry: {array.dtype}")
        raw = array.tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def read_safetensors(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of a safetensors file.

    Raises
    ------
    ValueError
        When the bytes are not a well-formed safetensors file.
    """
    if len(data) < 8:
        raise ValueError("too short to be safetensors")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ValueError("the safetensors header length is out of range")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError as exc:
        raise ValueError(f"the safetensors header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ValueError("the safetensors header is not an object")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + size :]
    tensors = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
            start, end = (int(x) for x in info["data_offsets"])
            shape = tuple(int(x) for x in info["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"tensor {name!r} is not described as safetensors describe tensors") from exc
        if not 0 <= start <= end <= len(body) or math.prod(shape) * dtype.itemsize != end - start:
            raise ValueError(f"tensor {name!r}: its bytes do not match its shape and dtype")
        tensors[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(shape)
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _floating(array: np.ndarray) -> bool:
    return bool(np.issubdtype(array.dtype, np.floating))


def compress_update(
    delta: Mapping[str, np.ndarray],
    *,
    method: str = "fp16",
    fraction: float = 0.01,
    residual: Mapping[str, np.ndarray] | None = None,
    dense_below: int = 1024,
) -> tuple[bytes, dict[str, np.ndarray]]:
    """Compress a round's weight change; return the safetensors bytes and the new residual.

    Parameters
    ----------
    delta
        This round's change of each parameter (local weights minus the global model).
    method
        ``none``, ``fp16``, ``topk`` or ``sign``.
    fraction
        For ``topk``: the share of each tensor's entries to keep (at least one).
    residual
        What earlier rounds did not send (error feedback); added before compressing.
    dense_below
        Tensors with fewer entries travel whole (fp16) under ``topk`` and ``sign``: biases and
        batch-norm statistics are small, and a batch norm whose running variance moved in one
        entry only would wreck the model.
    """
    if method not in METHODS:
        raise ValueError(f"unknown compression {method!r}; use one of {', '.join(METHODS)}")
    if not 0 < fraction <= 1:
        raise ValueError("the top-k fraction must be in (0, 1]")
    tensors: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    left: dict[str, np.ndarray] = {}
    for name, value in delta.items():
        array = np.asarray(value)
        if not _floating(array):
            tensors[name] = array
            continue
        wanted = array.astype(np.float32) + (
            np.asarray(residual[name], np.float32) if residual and name in residual else 0
        )
        flat = wanted.reshape(-1)
        if method in {"none", "fp16"} or flat.size < dense_below:
            sent = flat.astype(np.float32 if method == "none" else np.float16)
            tensors[name] = sent.reshape(array.shape)
            left[name] = (flat - sent.astype(np.float32)).reshape(array.shape)
            continue
        shapes[name] = list(array.shape)
        decoded = np.zeros_like(flat)
        if method == "topk":
            keep = max(1, math.ceil(fraction * flat.size)) if flat.size else 0
            index = (
                np.sort(np.argpartition(np.abs(flat), flat.size - keep)[flat.size - keep :]) if keep else np.array([])
            )
            values = flat[index].astype(np.float16)
            tensors[f"{name}::idx"] = index.astype(np.int32)
            tensors[f"{name}::val"] = values
            decoded[index] = values.astype(np.float32)
        else:
            scale = np.float32(np.abs(flat).mean()) if flat.size else np.float32(0)
            positive = flat >= 0
            tensors[f"{name}::bits"] = np.packbits(positive)
            tensors[f"{name}::scale"] = np.array([scale], dtype=np.float32)
            decoded = np.where(positive, scale, -scale).astype(np.float32)
        left[name] = (flat - decoded).reshape(array.shape)
    metadata = {"compression": method, "update_kind": "delta", "shapes": json.dumps(shapes, separators=(",", ":"))}
    return write_safetensors(tensors, metadata), left


def decompress_update(data: bytes) -> dict[str, np.ndarray]:
    """The dense weight change a compressed update stands for (float32; integer tensors as sent).

    Raises
    ------
    ValueError
        When the file is malformed or its parts do not fit together (indices out of range,
        bits that do not cover the shape, a part without its shape).
    """
    tensors, metadata = read_safetensors(data)
    method = metadata.get("compression", "none")
    if method not in METHODS:
        raise ValueError(f"unknown compression {method!r}")
    try:
        shapes = {
            name: tuple(int(n) for n in shape) for name, shape in json.loads(metadata.get("shapes", "{}")).items()
        }
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError("the update's shapes are not a JSON object of lists of sizes") from exc
    dense: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if "::" not in name:
            dense[name] = value.astype(np.float32) if _floating(value) else value
    for name, shape in shapes.items():
        size = math.prod(shape)
        if method == "topk":
            index, values = tensors.get(f"{name}::idx"), tensors.get(f"{name}::val")
            if index is None or values is None or index.shape != values.shape or index.ndim != 1:
                raise ValueError(f"tensor {name!r}: top-k indices and values do not match")
            if index.size and (int(index.min()) < 0 or int(index.max()) >= size or np.any(np.diff(index) <= 0)):
                raise ValueError(f"tensor {name!r}: top-k indices out of range or not ascending")
            flat = np.zeros(size, dtype=np.float32)
            flat[index] = values.astype(np.float32)
        elif method == "sign":
            bits, scale = tensors.get(f"{name}::bits"), tensors.get(f"{name}::scale")
            if bits is None or scale is None or bits.size != math.ceil(size / 8) or scale.size != 1:
                raise ValueError(f"tensor {name!r}: sign bits do not cover its shape")
            positive = np.unpackbits(bits.astype(np.uint8))[:size].astype(bool)
            flat = np.where(positive, np.float32(scale.reshape(-1)[0]), -np.float32(scale.reshape(-1)[0]))
        else:
            raise ValueError(f"compression {method!r} carries no shapes")
        dense[name] = flat.astype(np.float32).reshape(shape)
    return dense
