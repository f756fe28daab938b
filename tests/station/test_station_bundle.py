import io
import tarfile
from pathlib import Path

import pytest

from protocol import PolicyError
from station.bundle import unpack_bundle


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return raw.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o4755  # setuid in the archive must not survive
    return info, data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def test_unpack_bundle_writes_plain_files(tmp_path: Path) -> None:
    bundle = _tar(_file("main.py", b"print(1)"), _file("lib/helper.py", b"x = 1"))

    written = unpack_bundle(bundle, tmp_path / "t", max_bytes=1000)

    assert [p.as_posix() for p in written] == ["main.py", "lib/helper.py"]
    assert (tmp_path / "t" / "lib" / "helper.py").read_bytes() == b"x = 1"
    assert (tmp_path / "t" / "main.py").stat().st_mode & 0o7777 == 0o644


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_file("../escape.py"), "leaving its folder"),
        (_file("a/../../escape.py"), "leaving its folder"),
        (_file("/abs.py"), "absolute path"),
        (_special("link", tarfile.SYMTYPE, "/etc/passwd"), "not a regular file"),
        (_special("hard", tarfile.LNKTYPE, "main.py"), "not a regular file"),
        (_special("dev", tarfile.CHRTYPE), "not a regular file"),
        (_special("fifo", tarfile.FIFOTYPE), "not a regular file"),
    ],
)
def test_unpack_bundle_refuses_unsafe_members(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes], reason: str
) -> None:
    bundle = _tar(_file("main.py"), member)

    with pytest.raises(PolicyError, match=reason):
        unpack_bundle(bundle, tmp_path / "t", max_bytes=1000)

    assert not (tmp_path / "escape.py").exists()
    assert not (tmp_path / "t" / "main.py").exists()  # nothing is written before every member is checked


def test_unpack_bundle_size_cap(tmp_path: Path) -> None:
    bundle = _tar(_file("big.bin", b"0" * 5000))

    with pytest.raises(PolicyError, match="more than 1000 bytes"):
        unpack_bundle(bundle, tmp_path, max_bytes=1000)


def test_unpack_bundle_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not a readable gzipped tar"):
        unpack_bundle(b"plain bytes", tmp_path, max_bytes=1000)
