"""Content-addressed files on disk: ``<root>/sha256/<hex>``, written via temp file + rename."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from protocol import ContentHashError, is_content_address

__all__ = ["BlobStore", "BlobUpload"]


class BlobUpload:
    """An upload in progress: bytes go to a temp file while their hash is taken."""

    def __init__(self, store: BlobStore, *, max_bytes: int | None) -> None:
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
        self._store = store
        self._handle = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._digest = hashlib.sha256()
        self._max_bytes = max_bytes
        self.size = 0

    def __repr__(self) -> str:
        return f"BlobUpload(size={self.size})"

    def __enter__(self) -> BlobUpload:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.discard()

    def write(self, chunk: bytes) -> None:
        """Append a chunk; raise ValueError past the size limit."""
        self.size += len(chunk)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise ValueError(f"the upload is larger than the limit of {self._max_bytes} bytes")
        self._digest.update(chunk)
        self._handle.write(chunk)

    @property
    def address(self) -> str:
        """The content address of the bytes written so far."""
        return "sha256:" + self._digest.hexdigest()

    def commit(self, expected_address: str | None = None) -> str:
        """Make the file durable under its address and return the address.

        Raises
        ------
        ContentHashError
            When the bytes do not hash to ``expected_address``.
        """
        address = self.address
        if expected_address is not None and address != expected_address:
            raise ContentHashError(f"content does not match its address: expected {expected_address}, got {address}")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        target = self._store.path_for(address)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, target)
        return address

    def discard(self) -> None:
        """Drop the temp file if it is still there."""
        if not self._handle.closed:
            self._handle.close()
        self._tmp.unlink(missing_ok=True)


class BlobStore:
    """A folder of immutable files named by the sha256 of their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"BlobStore(root={str(self.root)!r})"

    @property
    def tmp_dir(self) -> Path:
        """Where uploads in progress live (same file system, so the rename is atomic)."""
        return self.root / "tmp"

    def path_for(self, address: str) -> Path:
        """Return the file of ``address``; raise ContentHashError when it is malformed."""
        if not is_content_address(address):
            raise ContentHashError(f"malformed content address {address!r}: expected 'sha256:' and 64 hex digits")
        return self.root / "sha256" / address.removeprefix("sha256:")

    def relative_path_for(self, address: str) -> str:
        """Return the file of ``address`` relative to the root (what the database records)."""
        return str(self.path_for(address).relative_to(self.root))

    def has(self, address: str) -> bool:
        """Tell whether the file of ``address`` is stored."""
        return is_content_address(address) and self.path_for(address).is_file()

    def begin_upload(self, *, max_bytes: int | None = None) -> BlobUpload:
        """Start writing a new file; commit it with :meth:`BlobUpload.commit`."""
        return BlobUpload(self, max_bytes=max_bytes)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` durably and return its address (a no-op when already there)."""
        with self.begin_upload() as upload:
            upload.write(data)
            if self.has(upload.address):
                return upload.address
            return upload.commit()

    def read_bytes(self, address: str) -> bytes:
        """Return the bytes of ``address``; raise FileNotFoundError when absent."""
        return self.path_for(address).read_bytes()
