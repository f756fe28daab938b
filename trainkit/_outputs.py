"""Write a train's results into the output folder, only under declared names, atomically.

Each write goes to a hidden temporary file in the same folder, is flushed to disk and
then renamed over the final name, so the station never sees half a result.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._errors import TrainkitError

__all__ = ["OutputWriter", "is_plain_file_name"]

# The same rule as protocol.OutputSpec: a plain file name, no folders, no leading dot.
_PLAIN_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def is_plain_file_name(name: str) -> bool:
    """True when ``name`` is a plain file name an output may have."""
    return isinstance(name, str) and bool(_PLAIN_FILE_NAME.fullmatch(name)) and name not in {".", ".."}


def _to_json_native(value: Any) -> Any:
    """Turn numpy scalars and arrays (or anything with ``tolist``/``item``) into JSON types."""
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _reject_non_finite(value: Any) -> None:
    """Raise when a float is NaN or infinite anywhere inside ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not valid JSON; write None for a missing value")
    if isinstance(value, dict):
        for item in value.values():
            _reject_non_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_non_finite(item)


STATION_STATE_FILE = "station_state.safetensors"


class OutputWriter:
    """Writes declared outputs into the output folder.

    Parameters
    ----------
    out_dir
        The writable output folder (``/out`` inside a train).
    declared
        The output names the job declares; any other name is refused.

    Examples
    --------
    >>> writer = OutputWriter("/out", ["cohort.json"])  # doctest: +SKIP
    >>> writer.write_json("cohort.json", {"subjects": 12})  # doctest: +SKIP
    PosixPath('/out/cohort.json')
    """

    def __init__(self, out_dir: str | os.PathLike[str], declared: Iterable[str]) -> None:
        self._out_dir = Path(out_dir)
        self._declared = frozenset(declared)

    def __repr__(self) -> str:
        return f"OutputWriter(out_dir={str(self._out_dir)!r}, declared={sorted(self._declared)!r})"

    @property
    def out_dir(self) -> Path:
        """The output folder."""
        return self._out_dir

    def write_station_state(self, data: bytes) -> Path:
        """Keep ``data`` at this station for this train's next round (``station_state.safetensors``).

        It is never uploaded: the station moves it out of the outputs before they are checked,
        and hands it back as :attr:`trainkit.Round.station_state` (FedBN's local batch norm, a
        compressor's error-feedback residual).
        """
        self._declared = self._declared | {STATION_STATE_FILE}
        return self.write_bytes(STATION_STATE_FILE, data)

    def path_for(self, name: str) -> Path:
        """Return where the declared output ``name`` goes.

        Raises
        ------
        TrainkitError
            When ``name`` is not a plain file name or not a declared output.
        """
        if not is_plain_file_name(name):
            raise TrainkitError(f"output name {name!r} is not a plain file name (letters, digits, '.', '_', '-')")
        if name not in self._declared:
            declared = ", ".join(sorted(self._declared)) or "none"
            raise TrainkitError(f"output {name!r} is not declared by this job (declared: {declared})")
        return self._out_dir / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write ``data`` to the declared output ``name`` atomically and return its path.

        Raises
        ------
        TrainkitError
            When the name is refused or the output folder cannot be written.
        """
        target = self.path_for(name)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TrainkitError(f"write_bytes needs bytes, not {type(data).__name__}")
        if not self._out_dir.is_dir():
            raise TrainkitError(f"the output folder {self._out_dir} does not exist")
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self._out_dir)
        except OSError as exc:
            raise TrainkitError(f"cannot write into the output folder {self._out_dir}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
        except BaseException as exc:
            Path(tmp_name).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise TrainkitError(f"cannot write output {name!r}: {exc.strerror}") from exc
            raise
        return target

    def write_text(self, name: str, text: str) -> Path:
        """Write ``text`` as UTF-8 to the declared output ``name`` atomically and return its path.

        Raises
        ------
        TrainkitError
            When the name is refused or the output folder cannot be written.
        """
        if not isinstance(text, str):
            raise TrainkitError(f"write_text needs str, not {type(text).__name__}")
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as JSON to the declared output ``name`` atomically and return its path.

        numpy scalars and arrays are converted; NaN and infinity are refused (use ``None``).

        Raises
        ------
        TrainkitError
            When the name is refused, ``obj`` is not JSON serialisable or the folder
            cannot be written.
        """
        self.path_for(name)
        try:
            native = json.loads(json.dumps(obj, default=_to_json_native))
            _reject_non_finite(native)
            text = json.dumps(native, indent=2, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TrainkitError(f"output {name!r} is not valid JSON: {exc}") from exc
        return self.write_text(name, text + "\n")
