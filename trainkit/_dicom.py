"""Find the DICOM files of the local collection without reading them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["iter_dicom_files"]

_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})
_PREAMBLE = 128
_MAGIC = b"DICM"


def _has_dicom_magic(path: Path) -> bool:
    """True when the file holds ``DICM`` after the 128-byte preamble (PS3.10 7.1)."""
    try:
        with path.open("rb") as handle:
            handle.seek(_PREAMBLE)
            return handle.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def iter_dicom_files(data_dir: str | os.PathLike[str], *, check_magic: bool = True) -> Iterator[Path]:
    """Yield the DICOM files under ``data_dir``, recursively and in a stable order.

    A file counts as DICOM when its name ends in ``.dcm``, ``.dicom`` or ``.dic`` (any
    case), or when it carries the ``DICM`` marker of a PS3.10 file; so exports without a
    suffix are found too. Hidden files and folders and ``DICOMDIR`` indexes are skipped,
    and symbolic links to folders are not followed.

    Parameters
    ----------
    data_dir
        The root of the collection, usually ``trainkit.job().data_dir``.
    check_magic
        Also look inside files without a DICOM suffix for the ``DICM`` marker. With
        ``False`` only the suffix decides.

    Yields
    ------
    pathlib.Path
        Each DICOM file; nothing is parsed, so a yielded file may still be unreadable.

    Raises
    ------
    NotADirectoryError
        When ``data_dir`` is not a folder.

    Examples
    --------
    >>> for path in iter_dicom_files(trainkit.job().data_dir):  # doctest: +SKIP
    ...     dataset = pydicom.dcmread(path)
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"the data folder {root} does not exist or is not a folder")
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = Path(folder, name)
            if not path.is_file():
                continue
            if path.suffix.lower() in _SUFFIXES or (check_magic and _has_dicom_magic(path)):
                yield path
