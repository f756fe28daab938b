"""The packed layout of a compressed update: the whole model in one byte stream, described in the metadata.

A per-tensor layout pays a safetensors header entry (~60 bytes of JSON) for every part of every
tensor, which on a small model outweighs what the compressor saves. Here the update is one
``::packed`` uint8 tensor, and the ``__metadata__`` says how to read it:

* ``layout``: the compressed float tensors in order (``name=64x64,name=10,...``; a scalar is
  ``name=``), which form one flat vector of ``n`` entries;
* ``whole``: tensors that travel whole, 4-bit (running statistics, tiny tensors), same syntax;
* ``ints``: integer tensors, as they are (``name=shape=I64``);
* ``index`` (``topk`` only): how the positions are coded, ``rice:<k>:<count>:<bytes>`` or
  ``bitmap``.

The stream holds, in this order and with no gaps: the integer tensors' bytes; for ``topk`` the
positions of the kept entries in the flat vector (each gap from the previous position, minus one,
Golomb-Rice coded with parameter ``k``: the quotients ``gap >> k`` in unary — that many 1 bits
and a 0 — in ``bytes`` bytes, then the ``k`` low bits of each gap; or a bitmap of ``n`` bits when
that is smaller) and one sign bit per kept entry (1 = non-negative); for ``sign`` one sign bit per
entry; then one float32 scale per layout tensor (the mean magnitude of its kept entries: a value
is its sign times its tensor's scale); then the whole tensors as 4-bit levels (-7..7, stored + 8,
two to a byte, the last half byte 0 when their count is odd) and one float32 scale per whole
tensor (a value is level x scale). Every length follows from the metadata, so a stream one byte
too long or too short is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

__all__ = [
    "BLOB",
    "MAX_ELEMENTS",
    "UpdateTooLarge",
    "check_declared",
    "is_layout_name",
    "is_packed",
    "pack_update",
    "top_positions",
    "unpack_update",
]

BLOB = "::packed"
# The most entries an update may declare (a 1 GB float32 model has 2.7e8); the dense result is allocated.
MAX_ELEMENTS = 1 << 31
_NAME = re.compile(r"[A-Za-z0-9_.\-/]+")
_MAX_RICE = 40
_INTS: dict[str, type[np.generic]] = {
    "I8": np.int8,
    "U8": np.uint8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
    "BOOL": np.bool_,
}
_INT_CODES = {np.dtype(value).str: key for key, value in _INTS.items()}
_LEVELS = 7
Shapes = dict[str, tuple[int, ...]]
Arrays = dict[str, np.ndarray]


class UpdateTooLarge(ValueError):
    """An update declares more entries than the reader allows (refused before anything is allocated)."""


def is_layout_name(name: str) -> bool:
    """Whether a tensor name fits the layout syntax (letters, digits, ``_ . - /``)."""
    return _NAME.fullmatch(name) is not None


def is_packed(metadata: Mapping[str, str]) -> bool:
    """Whether an update's metadata describes the packed layout."""
    return any(key in metadata for key in ("layout", "whole", "ints"))


def _text(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return ",".join(f"{name}={'x'.join(str(n) for n in shape)}" for name, shape in shapes.items())


def _parse(text: str, *, typed: bool = False) -> dict[str, tuple[tuple[int, ...], str]]:
    entries: dict[str, tuple[tuple[int, ...], str]] = {}
    for entry in text.split(",") if text else []:
        name, _, rest = entry.partition("=")
        dims, _, code = rest.partition("=") if typed else (rest, "", "")
        if "=" not in entry or not is_layout_name(name) or name in entries or (typed and code not in _INTS):
            raise ValueError(f"the update's layout entry {entry[:80]!r} is not name=AxB{'=dtype' if typed else ''}")
        try:
            shape = tuple(int(n) for n in dims.split("x")) if dims else ()
        except ValueError as exc:
            raise ValueError(f"the update's layout entry {entry[:80]!r} has a shape that is not sizes") from exc
        if any(n < 0 for n in shape):
            raise ValueError(f"the update's layout entry {entry[:80]!r} has a negative size")
        entries[name] = (shape, code)
    return entries


def top_positions(flat: np.ndarray, fraction: float) -> np.ndarray:
    """Ascending positions of the ``fraction`` largest magnitudes (at least one of a non-empty tensor)."""
    keep = max(1, math.ceil(fraction * flat.size)) if flat.size else 0
    if keep >= flat.size:
        return np.arange(flat.size, dtype=np.int64)
    return np.sort(np.argpartition(np.abs(flat), flat.size - keep)[flat.size - keep :]).astype(np.int64)


def _encode_positions(positions: np.ndarray, size: int) -> tuple[str, bytes]:
    """The smaller coding of ascending positions: their gaps Golomb-Rice coded, or a bitmap."""
    values = np.diff(positions, prepend=-1) - 1  # gaps - 1, all >= 0
    costs = [
        (values.size + int((values >> k).sum()) + 7) // 8 + (values.size * k + 7) // 8 for k in range(_MAX_RICE + 1)
    ]
    k = int(np.argmin(costs))
    if costs[k] >= (size + 7) // 8:
        bits = np.zeros(size, dtype=bool)
        bits[positions] = True
        return "bitmap", np.packbits(bits).tobytes()
    quotients = values >> k
    unary = np.ones(values.size + int(quotients.sum()), dtype=bool)
    unary[np.cumsum(quotients + 1) - 1] = False  # each quotient in unary: q ones, then a 0
    remainders = (values[:, None] >> np.arange(k - 1, -1, -1)) & 1
    high, low = np.packbits(unary).tobytes(), np.packbits(remainders.reshape(-1).astype(bool)).tobytes()
    return f"rice:{k}:{values.size}:{len(high)}", high + low


def _quantise_whole(values: list[np.ndarray]) -> tuple[bytes, np.ndarray, list[np.ndarray]]:
    """4-bit levels (two to a byte), one scale per tensor, and what each tensor decodes to."""
    scales = np.array([np.abs(v).max() / _LEVELS if v.size else 0.0 for v in values], dtype=np.float32)
    levels, decoded = [], []
    for value, scale in zip(values, scales, strict=True):
        level = np.rint(np.divide(value, scale, out=np.zeros_like(value), where=scale > 0)).clip(-_LEVELS, _LEVELS)
        levels.append(level.astype(np.int64) + 8)
        decoded.append((level * scale).astype(np.float32))
    nibbles = np.concatenate(levels) if levels else np.zeros(0, dtype=np.int64)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, 0)
    packed = (nibbles[0::2] << 4 | nibbles[1::2]).astype(np.uint8)
    return packed.tobytes(), scales, decoded


def pack_update(
    plain: Arrays, wanted: Arrays, *, method: str, fraction: float, whole: set[str]
) -> tuple[Arrays, dict[str, str], Arrays]:
    """The packed tensors and metadata of a ``topk`` or ``sign`` update, and the residual per tensor."""
    metadata = {"compression": method, "update_kind": "delta"}
    chunks: list[bytes] = []
    left: Arrays = {}
    if plain:
        metadata["ints"] = ",".join(
            f"{name}={'x'.join(str(n) for n in value.shape)}={_INT_CODES[value.dtype.newbyteorder('<').str]}"
            for name, value in plain.items()
        )
        chunks.extend(value.astype(value.dtype.newbyteorder("<")).tobytes() for value in plain.values())
    big = {name: value for name, value in wanted.items() if name not in whole}
    if big:
        metadata["layout"] = _text({name: value.shape for name, value in big.items()})
        sizes = [value.size for value in big.values()]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        flat = np.concatenate([value.reshape(-1) for value in big.values()])
        if method == "topk":
            chosen = [
                top_positions(value.reshape(-1), fraction) + start
                for value, start in zip(big.values(), starts, strict=True)
            ]
            positions = np.concatenate(chosen)
            values = flat[positions]
            scale = np.array([np.abs(flat[part]).mean() if part.size else 0.0 for part in chosen], dtype=np.float32)
            magnitude = np.repeat(scale, [part.size for part in chosen])
            code, stream = _encode_positions(positions, flat.size)
            metadata["index"] = code
            chunks += [stream, np.packbits(values >= 0).tobytes()]
            decoded = np.zeros_like(flat)
            decoded[positions] = np.where(values >= 0, magnitude, -magnitude)
        else:
            scale = np.array([np.abs(value).mean() if value.size else 0.0 for value in big.values()], np.float32)
            magnitude = np.repeat(scale, sizes)
            chunks.append(np.packbits(flat >= 0).tobytes())
            decoded = np.where(flat >= 0, magnitude, -magnitude).astype(np.float32)
        chunks.append(scale.astype("<f4").tobytes())
        rest = flat - decoded
        for (name, value), start in zip(big.items(), starts, strict=True):
            left[name] = rest[start : start + value.size].reshape(value.shape)
    small = {name: value for name, value in wanted.items() if name in whole}
    if small:
        metadata["whole"] = _text({name: value.shape for name, value in small.items()})
        packed, scales, decoded_parts = _quantise_whole([value.reshape(-1) for value in small.values()])
        chunks += [packed, scales.astype("<f4").tobytes()]
        for (name, value), sent in zip(small.items(), decoded_parts, strict=True):
            left[name] = value - sent.reshape(value.shape)
    blob = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    return {BLOB: blob}, metadata, left


class _Reader:
    """Reads the stream's sections in order; each read must fit."""

    def __init__(self, blob: np.ndarray) -> None:
        self.data = blob.tobytes()
        self.at = 0

    def take(self, count: int, dtype: type[np.generic], what: str) -> np.ndarray:
        size = count * np.dtype(dtype).itemsize
        if self.at + size > len(self.data):
            raise ValueError(f"the packed stream is too short for {what} ({len(self.data)} bytes)")
        out = np.frombuffer(self.data, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=self.at)
        self.at += size
        return out


def _positions(code: str, reader: _Reader, size: int) -> np.ndarray:
    if code == "bitmap":
        bits = np.unpackbits(reader.take((size + 7) // 8, np.uint8, "the top-k bitmap"))
        if bits[size:].any():
            raise ValueError("the top-k bitmap marks positions past the end of the layout")
        return np.flatnonzero(bits[:size])
    kind, *numbers = code.split(":")
    if kind != "rice" or len(numbers) != 3 or not all(n.isdigit() for n in numbers) or int(numbers[0]) > _MAX_RICE:
        raise ValueError(f"unknown top-k index coding {code!r}; the packed layout uses rice:K:COUNT:BYTES or bitmap")
    k, count, high = (int(n) for n in numbers)
    unary = np.unpackbits(reader.take(high, np.uint8, "the top-k positions"))
    ends = np.flatnonzero(unary == 0)[:count]
    used = int(ends[-1]) + 1 if count else 0
    if ends.size < count or (used + 7) // 8 != high or unary[used:].any():
        raise ValueError(f"the top-k positions do not code {count} gaps in {high} bytes")
    low = np.unpackbits(reader.take((count * k + 7) // 8, np.uint8, "the top-k positions"))
    if low[count * k :].any():
        raise ValueError("the top-k positions have bits set past their end")
    remainders = (low[: count * k].reshape(count, k).astype(np.int64) << np.arange(k - 1, -1, -1)).sum(axis=1)
    gaps = ((np.diff(ends, prepend=-1) - 1) << k) + remainders + 1
    positions: np.ndarray = np.cumsum(gaps) - 1
    if positions.size and positions[-1] >= size:
        raise ValueError(f"top-k indices out of range: position {int(positions[-1])} of {size} entries")
    return positions


def _scales(reader: _Reader, count: int, what: str) -> np.ndarray:
    scale = reader.take(count, np.float32, what).astype(np.float32)
    if not np.isfinite(scale).all() or (scale < 0).any():
        raise ValueError(f"the update's {what} are not finite non-negative numbers")
    return scale


def _split(flat: np.ndarray, shapes: Shapes) -> Arrays:
    out, start = {}, 0
    for name, shape in shapes.items():
        count = math.prod(shape)
        out[name] = flat[start : start + count].reshape(shape)
        start += count
    return out


def check_declared(
    declared: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]] | None, limit: int
) -> None:
    """Refuse an update whose declared tensors exceed ``limit`` entries or do not fit the model's names and shapes."""
    total = sum(math.prod(shape) for shape in declared.values())
    if total > limit:
        raise UpdateTooLarge(f"the update declares {total} entries (limit {limit})")
    if expected is not None:
        unknown = sorted(set(declared) - set(expected))
        if unknown:
            raise ValueError(f"the update names tensors the model does not have: {unknown[:5]}")
        wrong = sorted(name for name, shape in declared.items() if tuple(expected[name]) != shape)
        if wrong:
            raise ValueError(f"the update's shapes differ from the model's for {wrong[:5]}")


def unpack_update(
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str],
    method: str,
    expected: Mapping[str, tuple[int, ...]] | None,
    limit: int = MAX_ELEMENTS,
) -> Arrays:
    """The dense change of a packed update (float32; integer tensors as sent); ValueError when malformed."""
    if method not in {"topk", "sign"}:
        raise ValueError(f"compression {method!r} has no packed layout")
    if set(tensors) != {BLOB} or tensors[BLOB].dtype != np.uint8 or tensors[BLOB].ndim != 1:
        raise ValueError(f"a packed update is one 1-d uint8 tensor {BLOB!r}, not {sorted(tensors)[:5]}")
    ints = _parse(metadata.get("ints", ""), typed=True)
    layout = {name: shape for name, (shape, _) in _parse(metadata.get("layout", "")).items()}
    whole = {name: shape for name, (shape, _) in _parse(metadata.get("whole", "")).items()}
    declared = {name: shape for name, (shape, _) in ints.items()}
    for part in (layout, whole):
        twice = sorted(set(part) & set(declared))
        if twice:
            raise ValueError(f"tensors declared twice: {twice[:5]}")
        declared.update(part)
    check_declared(declared, expected, limit)
    if "index" in metadata and (method != "topk" or not layout):
        raise ValueError("only a top-k update with a layout has an index coding")
    reader = _Reader(tensors[BLOB])
    out: Arrays = {}
    for name, (shape, code) in ints.items():
        out[name] = reader.take(math.prod(shape), _INTS[code], f"integer tensor {name!r}").reshape(shape).copy()
    if layout:
        sizes = np.array([math.prod(shape) for shape in layout.values()], dtype=np.int64)
        ends = np.cumsum(sizes)
        size = int(ends[-1])
        if method == "topk":
            positions = _positions(metadata.get("index", ""), reader, size)
            signs = np.unpackbits(reader.take((positions.size + 7) // 8, np.uint8, "the top-k signs"))
            if signs[positions.size :].any():
                raise ValueError("the top-k signs have bits set past the kept entries")
            scale = _scales(reader, len(layout), "top-k scales")
            magnitude = scale[np.searchsorted(ends, positions, side="right")]
            flat = np.zeros(size, dtype=np.float32)
            flat[positions] = np.where(signs[: positions.size].astype(bool), magnitude, -magnitude)
        else:
            bits = np.unpackbits(reader.take((size + 7) // 8, np.uint8, "the sign bits"))
            if bits[size:].any():
                raise ValueError("the sign bits have bits set past the layout's entries")
            scale = _scales(reader, len(layout), "sign scales")
            magnitude = np.repeat(scale, sizes)
            flat = np.where(bits[:size].astype(bool), magnitude, -magnitude).astype(np.float32)
        out.update(_split(flat, layout))
    if whole:
        count = sum(math.prod(shape) for shape in whole.values())
        packed = reader.take((count + 1) // 2, np.uint8, "the whole tensors")
        nibbles = np.stack([packed >> 4, packed & 0xF], axis=1).reshape(-1).astype(np.int64)
        if count % 2 and nibbles[-1] != 0:
            raise ValueError("the whole tensors' last half byte is not 0")
        scale = _scales(reader, len(whole), "whole-tensor scales")
        levels = nibbles[:count] - 8
        if (np.abs(levels) > _LEVELS).any():
            raise ValueError(f"the whole tensors have levels outside -{_LEVELS}..{_LEVELS}")
        sizes = np.array([math.prod(shape) for shape in whole.values()], dtype=np.int64)
        out.update(_split((levels * np.repeat(scale, sizes)).astype(np.float32), whole))
    if reader.at != len(reader.data):
        raise ValueError(f"the packed stream has {len(reader.data) - reader.at} bytes more than its layout describes")
    return out
