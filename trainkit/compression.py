"""Compressed model updates: top-k sparsification and 1-bit signs, both with error feedback.

A federated train sends the hub the *change* of its weights this round (``update_kind =
delta``), compressed, in a safetensors file the hub decodes (``hub.fl.decode_state``):

* ``topk`` keeps the ``fraction`` largest-magnitude entries of each float tensor, their positions
  gap-coded and each value as its sign times one scale per tensor (the mean magnitude of what the
  tensor keeps);
* ``sign`` keeps one bit per entry and one scale per tensor (the mean magnitude);
* ``fp16`` and ``none`` send every entry (float16 or float32).

Both compressed methods write the *packed* layout by default (``trainkit._packed``): the whole
update is one byte stream, described in the ``__metadata__`` (the tensors' names, shapes and
order, how the positions are coded), so the file's header does not grow with the number of
tensors. Tensors named in ``dense`` (or with fewer than ``dense_below`` entries) travel whole, as
4-bit levels with one scale each; integer tensors (batch-norm counters) travel as they are. The
older per-tensor layout (``<name>::idx`` int32 and ``<name>::val`` float16 for top-k,
``<name>::bits`` and ``<name>::scale`` for sign, shapes in ``shapes``) is still read, and written
with ``packed=False``.

What a compressor drops is not lost: the *residual* (what was meant minus what was sent,
quantisation included) is kept at the station (``/out/station_state.safetensors``, which never
leaves) and added to the next round's change — error feedback, so that the sum of what is sent
tracks the sum of the changes. Only numpy is needed, so this runs in the train base image; the
safetensors files are written and read here directly.

Examples
--------
>>> import numpy as np
>>> delta = {"w": np.array([0.5, -0.01, 0.02, -2.0], dtype=np.float32)}
>>> data, residual = compress_update(delta, method="topk", fraction=0.5)
>>> sent = decompress_update(data)["w"]
>>> [round(float(x), 2) for x in sent]  # the two largest, each as sign x their mean magnitude
[1.25, 0.0, 0.0, -1.25]
>>> bool(np.allclose(sent + residual["w"], delta["w"]))  # the residual is what was not sent
True
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from ._packed import (
    MAX_ELEMENTS,
    UpdateTooLarge,
    check_declared,
    is_layout_name,
    is_packed,
    pack_update,
    top_positions,
    unpack_update,
)

__all__ = [
    "DENSE_BELOW",
    "METHODS",
    "UpdateTooLarge",
    "compress_update",
    "decompress_update",
    "read_safetensors",
    "write_safetensors",
]

METHODS = ("none", "fp16", "topk", "sign")
DENSE_BELOW = 0
_DTYPES = {
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "I8": np.int8,
    "U8": np.uint8,
    "I16": np.int16,
    "U16": np.uint16,
    "I32": np.int32,
    "U32": np.uint32,
    "I64": np.int64,
    "U64": np.uint64,
    "BOOL": np.bool_,
}
_NAMES = {np.dtype(value).str: key for key, value in _DTYPES.items()}
Shapes = dict[str, tuple[int, ...]]


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
    if not isinstance(metadata, dict):
        raise ValueError("the safetensors metadata is not an object")
    body = memoryview(data)[8 + size :]
    tensors = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
            start, end = (int(x) for x in info["data_offsets"])
            shape = tuple(int(x) for x in info["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"tensor {name!r} is not described as safetensors describe tensors") from exc
        if any(n < 0 for n in shape) or not 0 <= start <= end <= len(body):
            raise ValueError(f"tensor {name!r}: its bytes do not match its shape and dtype")
        if math.prod(shape) * dtype.itemsize != end - start:
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
    dense_below: int = DENSE_BELOW,
    dense: Collection[str] = (),
    packed: bool = True,
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
        Tensors with fewer entries travel whole under ``topk`` and ``sign`` (4-bit levels in the
        packed layout, float16 in the per-tensor one). The default, 0, compresses every tensor
        not in ``dense``: with error feedback, biases and batch-norm weights catch up over the
        rounds (``bench/fl`` measured it).
    dense
        Names that travel whole whatever their size: running statistics (batch-norm buffers) are
        states, not steps — a change withheld would pile up in the residual round after round and
        overshoot when sent (without them whole, top-k left ``bench/fl``'s model at chance).
        ``trainkit.fl`` names the model's float buffers.
    packed
        Write the packed layout (one stream for the whole model, ``trainkit._packed``); False
        writes the older per-tensor layout.

    Raises
    ------
    ValueError
        For an unknown method or a fraction outside (0, 1].
    """
    if method not in METHODS:
        raise ValueError(f"unknown compression {method!r}; use one of {', '.join(METHODS)}")
    if not 0 < fraction <= 1:
        raise ValueError("the top-k fraction must be in (0, 1]")
    plain: dict[str, np.ndarray] = {}
    wanted: dict[str, np.ndarray] = {}
    for name in sorted(delta):
        array = np.asarray(delta[name])
        if not _floating(array):
            plain[name] = array
            continue
        extra = np.asarray(residual[name], np.float32) if residual and name in residual else 0
        wanted[name] = array.astype(np.float32) + extra
    whole = {name for name, value in wanted.items() if value.size < dense_below or name in dense}
    if method in {"none", "fp16"}:
        return _dense_update(plain, wanted, np.float32 if method == "none" else np.float16, method)
    if packed and all(is_layout_name(name) for name in [*wanted, *plain]):
        tensors, metadata, left = pack_update(plain, wanted, method=method, fraction=fraction, whole=whole)
        return write_safetensors(tensors, metadata), left
    return _legacy_update(plain, wanted, method=method, fraction=fraction, whole=whole)


def _dense_update(
    plain: dict[str, np.ndarray], wanted: dict[str, np.ndarray], dtype: type[np.floating[Any]], method: str
) -> tuple[bytes, dict[str, np.ndarray]]:
    tensors, left = dict(plain), {}
    for name, value in wanted.items():
        sent = value.astype(dtype)
        tensors[name] = sent
        left[name] = value - sent.astype(np.float32)
    return write_safetensors(tensors, {"compression": method, "update_kind": "delta", "shapes": "{}"}), left


def _legacy_update(
    plain: dict[str, np.ndarray], wanted: dict[str, np.ndarray], *, method: str, fraction: float, whole: set[str]
) -> tuple[bytes, dict[str, np.ndarray]]:
    tensors: dict[str, np.ndarray] = dict(plain)
    shapes: dict[str, list[int]] = {}
    left: dict[str, np.ndarray] = {}
    for name, value in wanted.items():
        flat = value.reshape(-1)
        if name in whole:
            sent = flat.astype(np.float16)
            tensors[name] = sent.reshape(value.shape)
            left[name] = (flat - sent.astype(np.float32)).reshape(value.shape)
            continue
        shapes[name] = list(value.shape)
        if method == "topk":
            index = top_positions(flat, fraction)
            values = flat[index].astype(np.float16)
            tensors[f"{name}::idx"] = index.astype(np.int32)
            tensors[f"{name}::val"] = values
            decoded = np.zeros_like(flat)
            decoded[index] = values.astype(np.float32)
        else:
            scale = np.float32(np.abs(flat).mean()) if flat.size else np.float32(0)
            positive = flat >= 0
            tensors[f"{name}::bits"] = np.packbits(positive)
            tensors[f"{name}::scale"] = np.array([scale], dtype=np.float32)
            decoded = np.where(positive, scale, -scale).astype(np.float32)
        left[name] = (flat - decoded).reshape(value.shape)
    metadata = {"compression": method, "update_kind": "delta", "shapes": json.dumps(shapes, separators=(",", ":"))}
    return write_safetensors(tensors, metadata), left


def decompress_update(
    data: bytes, *, expected: Mapping[str, tuple[int, ...]] | None = None, limit: int = MAX_ELEMENTS
) -> dict[str, np.ndarray]:
    """The dense weight change a compressed update stands for (float32; integer tensors as sent).

    Parameters
    ----------
    data
        The update file (packed or per-tensor layout, or a dense ``none`` / ``fp16`` file).
    expected
        The model's tensor names and shapes: when given, every tensor the update declares must be
        one of them, with the same shape (checked before anything is allocated).
    limit
        The most entries the update may declare in all (:class:`UpdateTooLarge` beyond).

    Raises
    ------
    ValueError
        When the file is malformed or its parts do not fit together (wrong lengths, indices out
        of range or not ascending, scales or values that are not finite, bits that do not cover
        the shape, a part without its shape, a tensor the model does not have).
    """
    tensors, metadata = read_safetensors(data)
    method = metadata.get("compression", "none")
    if method not in METHODS:
        raise ValueError(f"unknown compression {method!r}")
    if is_packed(metadata):
        return unpack_update(tensors, metadata, method, expected, limit)
    try:
        raw = json.loads(metadata.get("shapes", "{}"))
        shapes = {name: tuple(int(n) for n in shape) for name, shape in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError("the update's shapes are not a JSON object of lists of sizes") from exc
    plain = {name: value for name, value in tensors.items() if "::" not in name}
    declared = {**{name: tuple(value.shape) for name, value in plain.items()}, **shapes}
    check_declared(declared, expected, limit)
    dense = _legacy_parts(tensors, method, shapes)
    for name, value in plain.items():
        if name in shapes:
            raise ValueError(f"tensor {name!r} is sent whole and compressed")
        if _floating(value) and method in {"topk", "sign"} and not np.isfinite(value).all():
            raise ValueError(f"tensor {name!r}: values are not finite")
        dense[name] = value.astype(np.float32) if _floating(value) else value
    return dense


def _legacy_parts(tensors: Mapping[str, np.ndarray], method: str, shapes: Shapes) -> dict[str, np.ndarray]:
    dense: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        size = math.prod(shape)
        if method == "topk":
            index, values = tensors.get(f"{name}::idx"), tensors.get(f"{name}::val")
            if index is None or values is None or index.shape != values.shape or index.ndim != 1:
                raise ValueError(f"tensor {name!r}: top-k indices and values do not match")
            if not np.issubdtype(index.dtype, np.integer):
                raise ValueError(f"tensor {name!r}: top-k indices are not integers")
            if index.size and (int(index.min()) < 0 or int(index.max()) >= size or np.any(np.diff(index) <= 0)):
                raise ValueError(f"tensor {name!r}: top-k indices out of range or not ascending")
            if not _floating(values) or not np.isfinite(values).all():
                raise ValueError(f"tensor {name!r}: top-k values are not finite numbers")
            flat = np.zeros(size, dtype=np.float32)
            flat[index] = values.astype(np.float32)
        elif method == "sign":
            bits, scale = tensors.get(f"{name}::bits"), tensors.get(f"{name}::scale")
            if bits is None or scale is None or bits.size != math.ceil(size / 8) or scale.size != 1:
                raise ValueError(f"tensor {name!r}: sign bits do not cover its shape")
            magnitude = np.float32(scale.reshape(-1)[0])
            if not np.isfinite(magnitude) or magnitude < 0:
                raise ValueError(f"tensor {name!r}: the sign scale is not a finite non-negative number")
            positive = np.unpackbits(bits.astype(np.uint8))[:size].astype(bool)
            flat = np.where(positive, magnitude, -magnitude)
        else:
            raise ValueError(f"compression {method!r} carries no shapes")
        dense[name] = flat.astype(np.float32).reshape(shape)
    return dense
