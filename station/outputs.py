"""Collect a train's outputs: declared files only, checked for their type and size.

Anything in the output folder that the manifest does not declare (a file, a folder, a
link) refuses the whole result, and so does a declared output that is missing, too large, or
not of its declared type: ``json`` must parse, ``csv``/``text`` must be UTF-8, and
``safetensors`` must have a well-formed safetensors header (never a pickle).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from protocol import OutputSpec, PolicyError, b64encode

__all__ = ["check_output_type", "collect_outputs"]

_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def check_output_type(name: str, data: bytes, kind: str) -> None:
    """Raise :class:`PolicyError` unless ``data`` is a well-formed output of type ``kind``."""
    if kind in {"json", "csv", "text"}:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"the output {name!r} is declared {kind} but is not UTF-8 text") from exc
        if kind == "json":
            try:
                json.loads(text)
            except ValueError as exc:
                raise PolicyError(f"the output {name!r} is declared json but does not parse: {exc}") from exc
            except RecursionError as exc:
                raise PolicyError(f"the output {name!r} nests too deeply to be a result") from exc
        return
    if kind == "safetensors":
        if len(data) < 8:
            raise PolicyError(f"the output {name!r} is too short to be safetensors")
        (header_size,) = struct.unpack("<Q", data[:8])
        if header_size > min(len(data) - 8, _SAFETENSORS_MAX_HEADER):
            raise PolicyError(f"the output {name!r} is not safetensors (bad header length)")
        try:
            header = json.loads(data[8 : 8 + header_size].decode("utf-8"))
        except ValueError as exc:
            raise PolicyError(f"the output {name!r} is not safetensors (bad header)") from exc
        if not isinstance(header, dict):
            raise PolicyError(f"the output {name!r} is not safetensors (header is not a JSON object)")
        _check_safetensors_header(name, header, body=len(data) - 8 - header_size)
        return
    raise PolicyError(f"the output {name!r} has an unknown type {kind!r}")


def _check_safetensors_header(name: str, header: dict[str, Any], *, body: int) -> None:
    """Every entry a tensor whose dtype, shape and byte range agree and lie inside the file."""
    for tensor, info in header.items():
        if tensor == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise PolicyError(f"the output {name!r} is not safetensors (__metadata__ must map text to text)")
            continue
        where = f"the output {name!r} is not safetensors (tensor {tensor[:80]!r}"
        if not isinstance(info, dict):
            raise PolicyError(f"{where} is not described by an object)")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise PolicyError(f"{where} has an unknown dtype {str(dtype)[:20]!r})")
        if not isinstance(shape, list) or not all(type(dim) is int and dim >= 0 for dim in shape):
            raise PolicyError(f"{where} has a shape that is not a list of sizes)")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(offset) is int for offset in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= body
        ):
            raise PolicyError(f"{where} has data offsets outside the file)")
        if math.prod(shape) * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
            raise PolicyError(f"{where}: its shape and dtype do not match its {offsets[1] - offsets[0]} bytes)")


def collect_outputs(out_dir: Path, outputs: tuple[OutputSpec, ...], *, max_bytes: int) -> dict[str, str]:
    """Read the declared outputs of a finished train.

    Parameters
    ----------
    out_dir
        The folder the train wrote to (``/out`` inside).
    outputs
        The outputs the signed manifest declares.
    max_bytes
        The largest total size of all outputs.

    Returns
    -------
    dict of str to str
        Output name → base64url content, ready for :class:`protocol.ResultPayload`.

    Raises
    ------
    PolicyError
        When anything undeclared is present, a declared output is missing, or a check fails.
    """
    declared = {spec.name: spec for spec in outputs}
    present = sorted(out_dir.iterdir()) if out_dir.is_dir() else []
    for path in present:
        if path.name not in declared:
            raise PolicyError(f"the train wrote an undeclared output {path.name!r}")
        if path.is_symlink() or not path.is_file():
            raise PolicyError(f"the output {path.name!r} is not a regular file")
    names = {path.name for path in present}
    missing = sorted(set(declared) - names)
    if missing:
        raise PolicyError(f"the train did not write its declared output(s): {', '.join(missing)}")
    files: dict[str, str] = {}
    total = 0
    for name, spec in sorted(declared.items()):
        path = out_dir / name
        total += path.stat().st_size
        if total > max_bytes:
            raise PolicyError(f"the outputs are larger than the station's limit of {max_bytes} bytes")
        data = path.read_bytes()
        check_output_type(name, data, spec.type)
        files[name] = b64encode(data)
    return files
