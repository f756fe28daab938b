"""The outbox: signed result envelopes are written here before they are uploaded.

An envelope leaves the outbox only when the hub has accepted it, so a crash or a network
failure at any point loses no result: the agent flushes the outbox at start-up and on every
loop.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from protocol import ResultEnvelope

from .state import write_private_file

__all__ = ["Outbox", "file_name_for_job"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def file_name_for_job(job_id: str) -> str:
    """Return a safe file-system name for a job id (the id itself when it is plain).

    Examples
    --------
    >>> file_name_for_job("job-1")
    'job-1'
    """
    if _SAFE.match(job_id) and job_id not in {".", ".."}:
        return job_id
    return "job-" + hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:32]


class Outbox:
    """Signed envelopes waiting for upload, one JSON file per job.

    Parameters
    ----------
    folder
        The ``outbox/`` folder of the state directory.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"Outbox(folder={str(self.folder)!r})"

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{file_name_for_job(job_id)}.json"

    def put(self, envelope: ResultEnvelope) -> Path:
        """Write an envelope durably (atomic replace, fsync) and return its file."""
        path = self._path(envelope.job_id)
        write_private_file(path, envelope.model_dump_json().encode("utf-8"))
        return path

    def has(self, job_id: str) -> bool:
        """Tell whether an envelope for ``job_id`` waits here."""
        return self._path(job_id).is_file()

    def pending(self) -> list[ResultEnvelope]:
        """Return every waiting envelope, oldest first; unreadable files are left in place."""
        if not self.folder.is_dir():
            return []
        envelopes = []
        for path in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                envelopes.append(ResultEnvelope.model_validate_json(path.read_bytes()))
            except ValueError:
                continue
        return envelopes

    def remove(self, job_id: str) -> None:
        """Forget the envelope of ``job_id`` (after the hub accepted it), and its model update."""
        self._path(job_id).unlink(missing_ok=True)
        self._update_path(job_id).unlink(missing_ok=True)

    def _update_path(self, job_id: str) -> Path:
        return self.folder / f"{file_name_for_job(job_id)}.update"

    def put_update(self, job_id: str, data: bytes) -> Path:
        """Keep a federated job's model update until the hub has it (written before its envelope)."""
        path = self._update_path(job_id)
        write_private_file(path, data)
        return path

    def update_file(self, job_id: str) -> Path | None:
        """The kept model update of ``job_id``, if any."""
        path = self._update_path(job_id)
        return path if path.is_file() else None
