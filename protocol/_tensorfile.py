"""Safetensors files read and written with numpy alone (stations and the hub's secure aggregation).

The format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the raw little-endian data. Only the dtypes numpy holds natively are
read; anything else (bfloat16, a malformed header, ranges outside the file) is a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from ._errors import ProtocolError

__all__ = ["read_tensors", "read_tensors_metadata", "write_tensors"]

_DTYPES: dict[str, np.dtype[np.generic]] = {
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"),
    "U16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "U64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_MAX_HEADER = 100 << 20


def _header(data: bytes) -> tuple[dict[str, object], int]:
    if len(data) < 8:
        raise ProtocolError("the tensors file is shorter than a safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or size > min(len(data) - 8, _MAX_HEADER):
        raise ProtocolError("the safetensors header length is out of range")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError as exc:
        raise ProtocolError(f"the safetensors header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("the safetensors header is not an object")
    return header, 8 + size


def read_tensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (empty when absent)."""
    header, _ = _header(data)
    meta = header.get("__metadata__")
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def read_tensors(data: bytes) -> dict[str, NDArray[np.generic]]:
    """Read every tensor of a safetensors file as a numpy array (native byte order, writable).

    Raises
    ------
    ProtocolError
        When the bytes are not safetensors, or hold a dtype numpy cannot represent.
    """
    header, start = _header(data)
    tensors: dict[str, NDArray[np.generic]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise ProtocolError(f"tensor {name!r}: its header entry is not an object")
        dtype = _DTYPES.get(str(info.get("dtype")))
        if dtype is None:
            raise ProtocolError(f"tensor {name!r}: dtype {info.get('dtype')!r} is not supported here")
        shape = info.get("shape")
        offsets = info.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ProtocolError(f"tensor {name!r}: malformed shape")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets):
            raise ProtocolError(f"tensor {name!r}: malformed data offsets")
        begin, end = start + offsets[0], start + offsets[1]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if begin < start or end > len(data) or end - begin != count * dtype.itemsize:
            raise ProtocolError(f"tensor {name!r}: its data range does not fit the file")
        array = np.frombuffer(data, dtype=dtype, count=count, offset=begin).reshape(shape)
        tensors[name] = array.astype(dtype.newbyteorder("="), copy=True)
    return tensors


def write_tensors(tensors: Mapping[str, NDArray[np.generic]], *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Write numpy arrays as a safetensors file (tensors in name order).

    Raises
    ------
    ProtocolError
        When an array's dtype has no safetensors name.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name], order="C")
        little = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        kind = _NAMES.get(np.dtype(little))
        if kind is None:
            raise ProtocolError(f"tensor {name!r}: dtype {array.dtype} has no safetensors name")
        raw = array.astype(little, copy=False).tobytes()
        header[name] = {"dtype": kind, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the reference writer does
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)
