"""Collect a train's outputs: declared files only, checked for their type and size.

Anything in the output folder that the manifest does not declare (a file, a folder, a
link) refuses the whole result, and so does a declared output that is missing, too large, or
not of its declared type: ``json`` must parse, ``csv``/``text`` must be UTF-8, and
``safetensors`` must have a well-formed safetensors header (never a pickle).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from protocol import OutputSpec, PolicyError, b64encode

__all__ = ["check_output_type", "collect_outputs"]

_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024


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
        return
    raise PolicyError(f"the output {name!r} has an unknown type {kind!r}")


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
