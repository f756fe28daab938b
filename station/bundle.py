"""Unpack a train's source bundle (gzipped tar) without trusting it.

Only regular files and folders are extracted, each under the destination: absolute names,
``..`` components, links, devices and FIFOs are refused, and so are bundles whose unpacked
size or number of members is over the cap. Files are written fresh (mode 0644), never with
the archive's owners, modes or times.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

from protocol import PolicyError

__all__ = ["MAX_BUNDLE_MEMBERS", "unpack_bundle"]

MAX_BUNDLE_MEMBERS = 10_000


def _checked_name(member: tarfile.TarInfo) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        raise PolicyError(f"the train bundle holds an absolute path {member.name!r}")
    if ".." in name.parts or "\\" in member.name:
        raise PolicyError(f"the train bundle holds a path leaving its folder {member.name!r}")
    if not member.isfile() and not member.isdir():
        raise PolicyError(f"the train bundle holds {member.name!r}, which is not a regular file or folder")
    return name


def unpack_bundle(data: bytes, dest: Path, *, max_bytes: int) -> list[PurePosixPath]:
    """Unpack a gzipped tar bundle into ``dest``.

    Parameters
    ----------
    data
        The bundle's bytes (already checked against its content address).
    dest
        An empty or new folder.
    max_bytes
        The largest total unpacked size accepted.

    Returns
    -------
    list of PurePosixPath
        The files written, relative to ``dest``.

    Raises
    ------
    PolicyError
        When the bundle is not a gzipped tar, or breaks one of the rules above.
    """
    dest.mkdir(parents=True, exist_ok=True)
    written: list[PurePosixPath] = []
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
            if len(members) > MAX_BUNDLE_MEMBERS:
                raise PolicyError(f"the train bundle has {len(members)} members; the limit is {MAX_BUNDLE_MEMBERS}")
            names = [_checked_name(member) for member in members]
            for member in members:
                total += max(member.size, 0)
                if total > max_bytes:
                    raise PolicyError(f"the train bundle unpacks to more than {max_bytes} bytes")
            for member, name in zip(members, names, strict=True):
                target = dest.joinpath(*name.parts) if name.parts else dest
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                source = tar.extractfile(member)
                if source is None:
                    raise PolicyError(f"cannot read {member.name!r} from the train bundle")
                target.parent.mkdir(parents=True, exist_ok=True)
                content = source.read(max_bytes + 1)
                if len(content) > member.size:
                    raise PolicyError(f"{member.name!r} in the train bundle is larger than announced")
                target.write_bytes(content)
                target.chmod(0o644)
                written.append(name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PolicyError(f"the train bundle is not a readable gzipped tar: {exc}") from exc
    return written
