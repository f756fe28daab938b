"""Large files between the station and the hub: resumable chunked uploads, resumable streamed downloads.

Uploads (model updates): one small file goes in one signed PUT; a larger one starts an upload at
the hub (``POST .../uploads`` with its address and size), then sends chunks of at most the hub's
chunk size, each its own signed request (the signature's ``Content-Digest`` covers that chunk). The
hub answers the offset it holds, so a station that crashed or lost its connection starts the upload
again — the hub hands back the unfinished one — and goes on from there. Only one chunk is in memory.

Downloads (global models, artifacts): streamed to ``<target>.part`` while its sha256 is taken; a
dropped connection resumes with an HTTP ``Range`` request from the bytes already on disk; the file
takes its name only once it matches the content address it was asked for.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from urllib.parse import quote

import httpx

from protocol import DEFAULT_CHUNK_BYTES, ContentHashError, UploadStart, UploadStatus

__all__ = ["TransferError", "TransferRefused", "answer_detail", "answer_summary", "download_file", "upload_file"]

logger = logging.getLogger(__name__)

_READ = 1 << 20
_RETRYABLE = {408, 425, 429}


class TransferError(Exception):
    """A transfer that failed for now (a dropped connection, a hub error): try again later."""


class TransferRefused(Exception):
    """A transfer the hub refused for good (4xx): trying again would not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail


def answer_detail(response: httpx.Response) -> str:
    """The hub's ``detail`` of an answer (its JSON error body), or the HTTP reason phrase."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail or response.reason_phrase)


def answer_summary(response: httpx.Response) -> str:
    """The status code and the hub's detail of an answer, for logs and failure reasons."""
    return f"{response.status_code} {answer_detail(response)}"


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    if response.status_code < 500 and response.status_code not in _RETRYABLE:
        raise TransferRefused(response.status_code, f"{what}: {answer_detail(response)}")
    raise TransferError(f"{what}: the hub answered {response.status_code} {answer_detail(response)}")


def upload_file(
    client: httpx.Client,
    job_id: str,
    path: Path,
    *,
    address: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_restarts: int = 2,
) -> UploadStatus:
    """Upload ``path`` (whose content address is ``address``) for a round's job, resuming where the hub is.

    Raises
    ------
    TransferRefused
        When the hub refuses the upload for good (too large, not running, hash mismatch).
    TransferError
        When the connection drops or the hub fails: calling again resumes from the hub's offset.
    """
    size = path.stat().st_size
    base = f"/stations/me/jobs/{quote(job_id, safe='')}/uploads"
    for _restart in range(max_restarts + 1):
        try:
            started = client.post(base, json=UploadStart(address=address, size=size).model_dump(mode="json"))
        except httpx.HTTPError as exc:
            raise TransferError(f"starting the upload failed: {exc}") from exc
        _raise_for(started, "starting the upload")
        status = UploadStatus.model_validate(started.json())
        step = max(1, min(chunk_bytes, status.chunk_bytes))
        offset = status.offset
        resyncs = 0
        with path.open("rb") as handle:
            while not status.complete:
                handle.seek(offset)
                chunk = handle.read(step)
                if not chunk:
                    raise TransferRefused(409, f"the hub expects byte {offset} but the file has only {size}")
                try:
                    answer = client.put(
                        f"{base}/{status.upload_id}/{offset}",
                        content=chunk,
                        headers={"content-type": "application/octet-stream"},
                    )
                except httpx.HTTPError as exc:
                    raise TransferError(f"the chunk at byte {offset} did not arrive: {exc}") from exc
                if answer.status_code == 409 and "upload-offset" in answer.headers and resyncs < 3:
                    resyncs += 1  # the hub holds more (or less) than we thought: go on from its offset
                    offset = int(answer.headers["upload-offset"])
                    continue
                if answer.status_code in (404, 410):
                    logger.warning(
                        "the upload of job %s is gone at the hub (%s): starting again", job_id, answer_detail(answer)
                    )
                    break
                _raise_for(answer, f"the chunk at byte {offset}")
                status = UploadStatus.model_validate(answer.json())
                offset = status.offset
        if status.complete:
            return status
    raise TransferError(f"the upload of job {job_id} was dropped by the hub {max_restarts + 1} times")


def download_file(
    client: httpx.Client,
    url_path: str,
    target: Path,
    *,
    address: str,
    max_bytes: int,
    attempts: int = 3,
) -> Path:
    """Stream ``url_path`` to ``target``, checking its sha256 against ``address``; resume a partial file.

    The bytes land in ``<target>.part`` (kept between calls, so a later call resumes with ``Range``);
    ``target`` appears only when the whole file matches its address.

    Raises
    ------
    ContentHashError
        When the whole file does not match ``address`` (the partial file is removed).
    TransferRefused
        When the hub refuses (404, 403) or the file is larger than ``max_bytes``.
    TransferError
        When the connection dropped ``attempts`` times.
    """
    partial = target.with_name(target.name + ".part")
    last: Exception | None = None
    for _attempt in range(attempts):
        digest = hashlib.sha256()
        have = partial.stat().st_size if partial.is_file() else 0
        if have > max_bytes:
            partial.unlink()
            have = 0
        if have:
            with partial.open("rb") as handle:  # the bytes already here count in the hash
                while block := handle.read(_READ):
                    digest.update(block)
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with client.stream("GET", url_path, headers=headers) as response:
                if response.status_code == 416:  # nothing past what we hold: it was complete, or it changed
                    if have and "sha256:" + digest.hexdigest() == address:
                        os.replace(partial, target)
                        return target
                    partial.unlink(missing_ok=True)
                    continue
                if response.status_code >= 400:
                    response.read()  # a short error body, for its detail
                _raise_for(response, f"downloading {address}")
                if response.status_code != 206:  # the whole file again: start over
                    digest, have = hashlib.sha256(), 0
                size = have
                with partial.open("r+b" if have else "wb") as out:
                    out.seek(have)
                    out.truncate()
                    for block in response.iter_bytes(_READ):
                        size += len(block)
                        if size > max_bytes:
                            raise TransferRefused(413, f"{address} is larger than the limit of {max_bytes} bytes")
                        digest.update(block)
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
        except httpx.HTTPError as exc:
            last = exc
            logger.warning("downloading %s broke off at %d bytes: %s", address, partial.stat().st_size, exc)
            continue
        except TransferRefused:
            partial.unlink(missing_ok=True)
            raise
        got = "sha256:" + digest.hexdigest()
        if got != address:
            partial.unlink(missing_ok=True)
            raise ContentHashError(f"content does not match its address: expected {address}, got {got}")
        os.replace(partial, target)
        return target
    raise TransferError(f"downloading {address} failed {attempts} times: {last}")
