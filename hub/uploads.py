"""Resumable uploads into the blob store: chunks on disk, the whole file checked, then one rename.

An upload lives in ``<artifacts>/tmp/uploads/<id>/`` (the blob store's file system, so the final
rename is atomic): ``meta.json`` (owner, job, address, size) and ``data.part``, whose length *is*
the received offset — a chunk is appended only at that offset, so after a hub crash the file says
how far it got. Nothing is held in memory but the chunk being written and a running sha256 (when
the hub restarted mid-upload, the file is hashed again from disk at the end). An upload untouched
for ``ttl_s`` is dropped the next time any upload starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.blobs import BlobStore
from protocol import UploadStatus

__all__ = ["ResumableUploads", "UploadRefused"]

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_READ = 1 << 20


class UploadRefused(Exception):
    """A request about an upload that cannot be honoured; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str, *, offset: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.offset = offset


@dataclass(frozen=True)
class _Meta:
    upload_id: str
    owner: str
    job_id: str
    address: str
    size: int


class ResumableUploads:
    """Uploads in progress for one blob store."""

    def __init__(self, store: BlobStore, *, chunk_bytes: int, max_bytes: int, ttl_s: float) -> None:
        self._store = store
        self.chunk_bytes = chunk_bytes
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._hashers: dict[str, tuple[int, Any]] = {}  # upload id -> (offset hashed, sha256 so far)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResumableUploads(root={str(self.root)!r}, chunk_bytes={self.chunk_bytes})"

    @property
    def root(self) -> Path:
        """The folder of uploads in progress."""
        return self._store.tmp_dir / "uploads"

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _folder(self, upload_id: str) -> Path:
        if not upload_id or len(upload_id) > 64 or not set(upload_id) <= _ID_CHARS:
            raise UploadRefused(404, f"no upload {upload_id!r}")
        return self.root / upload_id

    def _read_meta(self, folder: Path) -> _Meta | None:
        try:
            raw = json.loads((folder / "meta.json").read_text("utf-8"))
            return _Meta(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def _touched(self, folder: Path) -> float:
        try:
            return (folder / "data.part").stat().st_mtime
        except OSError:
            return 0.0

    def _expires_at(self, folder: Path) -> datetime:
        return datetime.fromtimestamp(self._touched(folder) + self.ttl_s, tz=UTC)

    def _status(self, meta: _Meta, folder: Path, *, complete: bool = False) -> UploadStatus:
        offset = meta.size if complete else (folder / "data.part").stat().st_size
        return UploadStatus(
            upload_id=meta.upload_id,
            address=meta.address,
            size=meta.size,
            offset=offset,
            chunk_bytes=self.chunk_bytes,
            complete=complete,
            expires_at=datetime.fromtimestamp(time.time() + self.ttl_s, tz=UTC)
            if complete
            else self._expires_at(folder),
        )

    def _drop(self, upload_id: str) -> None:
        self._hashers.pop(upload_id, None)
        shutil.rmtree(self.root / upload_id, ignore_errors=True)

    def sweep(self, *, now: float | None = None) -> int:
        """Drop uploads untouched for longer than the time to live; return how many."""
        clock = time.time() if now is None else now
        dropped = 0
        if not self.root.is_dir():
            return 0
        for folder in self.root.iterdir():
            if folder.is_dir() and clock - self._touched(folder) > self.ttl_s:
                self._drop(folder.name)
                dropped += 1
        return dropped

    @contextlib.contextmanager
    def _locked(self, folder: Path) -> Iterator[None]:
        """One writer per upload, across threads and hub processes."""
        try:
            handle = (folder / "meta.json").open("rb")
        except OSError as exc:
            raise UploadRefused(404, f"no upload {folder.name!r} (finished, expired or never started)") from exc
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _own(self, owner: str, job_id: str, upload_id: str) -> tuple[_Meta, Path]:
        folder = self._folder(upload_id)
        meta = self._read_meta(folder)
        if meta is None or meta.owner != owner or meta.job_id != job_id:
            raise UploadRefused(404, f"no upload {upload_id!r} for job {job_id!r} (finished, expired or never started)")
        if time.time() - self._touched(folder) > self.ttl_s:
            self._drop(upload_id)
            raise UploadRefused(410, f"the upload {upload_id!r} expired (untouched for {self.ttl_s:g} s): start again")
        return meta, folder

    # -- the three calls -----------------------------------------------------------------------------

    def start(self, *, owner: str, job_id: str, address: str, size: int) -> UploadStatus:
        """Start an upload of ``size`` bytes for ``address``, or return the unfinished one already started."""
        if size > self.max_bytes:
            raise UploadRefused(413, f"a model update may hold at most {self.max_bytes} bytes; this one is {size}")
        self.sweep()
        if self._store.has(address):
            stored = _Meta(upload_id="stored", owner=owner, job_id=job_id, address=address, size=size)
            return self._status(stored, self.root, complete=True)
        with self._lock:
            if self.root.is_dir():
                for folder in sorted(self.root.iterdir()):
                    found = self._read_meta(folder)
                    if found is not None and (found.owner, found.job_id, found.address) == (owner, job_id, address):
                        if found.size != size:
                            raise UploadRefused(
                                409,
                                f"an upload of {address} for job {job_id!r} is under way with size {found.size}, "
                                f"not {size}",
                            )
                        return self._status(found, folder)
            upload_id = secrets.token_urlsafe(18)
            folder = self.root / upload_id
            folder.mkdir(parents=True, mode=0o700)
            meta = _Meta(upload_id=upload_id, owner=owner, job_id=job_id, address=address, size=size)
            (folder / "data.part").touch()
            (folder / "meta.json").write_text(json.dumps(meta.__dict__), "utf-8")
            self._hashers[upload_id] = (0, hashlib.sha256())
            return self._status(meta, folder)

    def status(self, *, owner: str, job_id: str, upload_id: str) -> UploadStatus:
        """Where the upload stands (its offset)."""
        meta, folder = self._own(owner, job_id, upload_id)
        return self._status(meta, folder)

    def write(self, *, owner: str, job_id: str, upload_id: str, offset: int, chunk: bytes) -> UploadStatus:
        """Append ``chunk`` at ``offset``; after the last one, verify the file and store it under its address.

        Raises
        ------
        UploadRefused
            404 unknown upload, 410 expired, 409 an offset other than the one received so far, 413 a chunk
            larger than the hub takes or past the declared size, 400 an empty chunk or a whole file that does
            not hash to its address (the upload is dropped: start again).
        """
        meta, folder = self._own(owner, job_id, upload_id)
        if not chunk:
            raise UploadRefused(400, "an empty chunk: send the bytes that start at the offset")
        if len(chunk) > self.chunk_bytes:
            raise UploadRefused(413, f"a chunk may hold at most {self.chunk_bytes} bytes; this one holds {len(chunk)}")
        with self._locked(folder):
            part = folder / "data.part"
            received = part.stat().st_size
            if offset != received:
                raise UploadRefused(
                    409,
                    f"the hub has {received} bytes of this upload: send the chunk at offset {received}",
                    offset=received,
                )
            if offset + len(chunk) > meta.size:
                raise UploadRefused(
                    413, f"the chunk ends at byte {offset + len(chunk)}, past the upload's declared size {meta.size}"
                )
            with part.open("ab") as handle:
                handle.write(chunk)
                handle.flush()
                os.fdatasync(handle.fileno())
            hashed = self._hashers.get(upload_id)
            if hashed is not None and hashed[0] == offset:
                hashed[1].update(chunk)
                self._hashers[upload_id] = (offset + len(chunk), hashed[1])
            else:
                self._hashers.pop(upload_id, None)  # a restart or a race: hash from disk at the end
            if offset + len(chunk) < meta.size:
                return self._status(meta, folder)
            return self._finish(meta, folder)

    def _finish(self, meta: _Meta, folder: Path) -> UploadStatus:
        part = folder / "data.part"
        hashed = self._hashers.pop(meta.upload_id, None)
        if hashed is not None and hashed[0] == meta.size:
            address = "sha256:" + hashed[1].hexdigest()
        else:
            digest = hashlib.sha256()
            with part.open("rb") as handle:
                while block := handle.read(_READ):
                    digest.update(block)
            address = "sha256:" + digest.hexdigest()
        if address != meta.address:
            self._drop(meta.upload_id)
            raise UploadRefused(
                400,
                f"the uploaded file does not match its address: expected {meta.address}, got {address}; "
                "the upload is dropped, start again",
            )
        target = self._store.path_for(meta.address)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)  # same file system: the file appears whole or not at all
        self._drop(meta.upload_id)
        return self._status(meta, folder, complete=True)
