"""The jobs this station has answered, so that a compromised hub cannot make it run one twice.

A job is the researcher's signed manifest (its nonce) at one collection and, for a federated
train, one round. The hub chooses job ids and round numbers, the researcher's signature covers
the nonce: the same signed train at the same collection and round under a new job id, or a job
id answered before, is a replay. One JSON line per answered job in ``STATE/answered.jsonl``
(append-only, fsynced, owner-only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from protocol import Job, utc_now

__all__ = ["JobLedger", "Replay"]


@dataclass(frozen=True)
class Replay:
    """Why a job is a replay: the earlier job that answered it, and when."""

    earlier_job_id: str
    answered_at: str

    def reason(self, job: Job) -> str:
        """The refusal in words, for the researcher and the audit log."""
        if self.earlier_job_id == job.job_id:
            return f"the station answered job {job.job_id!r} already (at {self.answered_at}): it runs a job once"
        where = f"collection {job.collection!r}" + (f", round {job.round.number}" if job.round else "")
        return (
            f"a replay: the same signed train ran on {where} as job {self.earlier_job_id!r} "
            f"at {self.answered_at}; the station runs a signed train once per collection and round"
        )


def _key(job: Job) -> str:
    number = job.round.number if job.round is not None else 0
    return f"{job.signed_manifest.manifest.nonce}/{job.collection}/{number}"


class JobLedger:
    """Append-only record of answered jobs, read once and kept in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_key: dict[str, Replay] | None = None
        self._by_job: dict[str, Replay] = {}

    def _load(self) -> dict[str, Replay]:
        if self._by_key is None:
            self._by_key = {}
            if self.path.is_file():
                for line in self.path.read_text(encoding="utf-8").splitlines():
                    try:
                        entry = json.loads(line)
                        seen = Replay(earlier_job_id=str(entry["job_id"]), answered_at=str(entry["at"]))
                        key = str(entry["key"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line after a crash: the job is answered again at worst
                    self._by_key.setdefault(key, seen)
                    self._by_job.setdefault(seen.earlier_job_id, seen)
        return self._by_key

    def replay_of(self, job: Job) -> Replay | None:
        """The earlier answer this job repeats, or None for a job the station has not run."""
        by_key = self._load()
        return self._by_job.get(job.job_id) or by_key.get(_key(job))

    def record(self, job: Job, status: str) -> None:
        """Remember that ``job`` was answered (a second record of the same job changes nothing)."""
        by_key = self._load()
        key = _key(job)
        if key in by_key or job.job_id in self._by_job:
            return
        seen = Replay(earlier_job_id=job.job_id, answered_at=utc_now().isoformat())
        line = json.dumps(
            {"key": key, "job_id": job.job_id, "train_id": job.train_id, "status": status, "at": seen.answered_at}
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        by_key[key] = seen
        self._by_job[job.job_id] = seen
