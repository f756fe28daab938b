"""The station operator's queue: trains whose code waits for approval, results that wait for release.

A station has three gates, each automatic or manual by its policy (``policy.json``, ``gates``):

* **access**: the steward's signed grant, always checked by signature (``station/stewards.py``);
* **code**: ``auto`` accepts what the allow-lists allow (an empty list allows any); ``manual``
  holds a job whose train bundle (and image) is not yet approved here until the operator approves
  it (which adds the bundle and image to the allow-lists, so later jobs of that code pass) or
  denies it;
* **release**: ``auto`` uploads a result that passed the disclosure rules; ``manual`` keeps the
  result's plain files for the operator to read and uploads the sealed result only when released
  (analysis trains: a federated round's update cannot wait for a person inside its deadline).

A held job stays leased at the hub: the agent sends its heartbeats while it waits, and drops it
when the hub answers that it no longer wants it. Everything lives under ``STATE/approvals/``
(owner-only), one folder per job, so the CLI (another process) and the agent share it safely;
every hold and decision is in the station's audit chain.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from protocol import Job, ResultEnvelope, b64decode, utc_now

from .outbox import file_name_for_job
from .state import write_private_file

__all__ = ["Approvals", "Gate", "GateMode", "Held", "operator_decision"]


class Gate(StrEnum):
    """What a held job waits for."""

    CODE = "code"
    RELEASE = "release"


class GateMode(StrEnum):
    """How a gate decides."""

    AUTO = "auto"
    MANUAL = "manual"


@dataclass(frozen=True)
class Held:
    """One job in the queue, as the operator sees it."""

    job: Job
    gate: Gate
    held_at: str
    reason: str
    decision: str | None = None  # approved | denied | cancelled
    comment: str | None = None
    decided_by: str | None = None

    @property
    def job_id(self) -> str:
        """The hub's job id."""
        return self.job.job_id

    def summary(self) -> dict[str, Any]:
        """What a person needs to decide: who, what code, which data."""
        manifest = self.job.signed_manifest.manifest
        return {
            "job": self.job_id,
            "gate": self.gate.value,
            "held_at": self.held_at,
            "train": f"{manifest.name} ({manifest.kind})",
            "researcher": manifest.researcher,
            "project": manifest.project_id,
            "collection": self.job.collection,
            "bundle": manifest.bundle_hash,
            "image": manifest.image_digest or "",
            "reason": self.reason,
            "decision": self.decision or "pending",
        }


class Approvals:
    """The queue in ``STATE/approvals/``.

    Parameters
    ----------
    folder
        ``STATE/approvals``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"Approvals(folder={str(self.folder)!r})"

    def _dir(self, job_id: str) -> Path:
        return self.folder / file_name_for_job(job_id)

    def _write(self, job_id: str, name: str, document: dict[str, Any]) -> None:
        folder = self._dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        write_private_file(folder / name, json.dumps(document).encode("utf-8"))

    # -- the agent's side ---------------------------------------------------------------------

    def hold(self, job: Job, gate: Gate, reason: str) -> Held:
        """Put a job in the queue (again: its first hold stays)."""
        existing = self.get(job.job_id)
        if existing is not None:
            return existing
        held_at = utc_now().isoformat()
        self._write(
            job.job_id,
            "held.json",
            {"job": job.model_dump(mode="json"), "gate": gate.value, "held_at": held_at, "reason": reason},
        )
        return Held(job=job, gate=gate, held_at=held_at, reason=reason)

    def keep_result(self, job_id: str, envelope: ResultEnvelope, files: dict[str, str]) -> None:
        """Keep a result that waits for release: the sealed envelope and its plain files for review."""
        folder = self._dir(job_id) / "files"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        for name, data in files.items():
            write_private_file(folder / Path(name).name, b64decode(data))
        write_private_file(self._dir(job_id) / "envelope.json", envelope.model_dump_json().encode("utf-8"))

    def envelope(self, job_id: str) -> ResultEnvelope | None:
        """The sealed result a release-held job waits with."""
        path = self._dir(job_id) / "envelope.json"
        return ResultEnvelope.model_validate_json(path.read_bytes()) if path.is_file() else None

    def files(self, job_id: str) -> list[Path]:
        """The plain output files of a release-held job, for the operator to read."""
        folder = self._dir(job_id) / "files"
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def remove(self, job_id: str) -> None:
        """Forget a job once its decision has been carried out."""
        shutil.rmtree(self._dir(job_id), ignore_errors=True)

    # -- both sides ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Held | None:
        """The held job ``job_id``, with its decision if one was made."""
        folder = self._dir(job_id)
        try:
            held = json.loads((folder / "held.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        decision: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):  # no decision yet
            decision = json.loads((folder / "decision.json").read_text("utf-8"))
        return Held(
            job=Job.model_validate(held["job"]),
            gate=Gate(held["gate"]),
            held_at=str(held["held_at"]),
            reason=str(held.get("reason", "")),
            decision=decision.get("decision"),
            comment=decision.get("comment"),
            decided_by=decision.get("by"),
        )

    def all(self) -> list[Held]:
        """Every held job, oldest first (unreadable folders are skipped)."""
        if not self.folder.is_dir():
            return []
        held = [item for item in (self.get_folder(path) for path in self.folder.iterdir()) if item is not None]
        return sorted(held, key=lambda item: item.held_at)

    def get_folder(self, folder: Path) -> Held | None:
        """The held job kept in ``folder``."""
        try:
            job_id = json.loads((folder / "held.json").read_text("utf-8"))["job"]["job_id"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return self.get(str(job_id))

    # -- the operator's side ------------------------------------------------------------------

    def decide(self, job_id: str, *, approve: bool, by: str, comment: str | None = None) -> Held:
        """Approve or deny a held job; the agent carries it out on its next loop.

        Raises
        ------
        KeyError
            When no job ``job_id`` is held.
        ValueError
            When it was decided already, or a denial gives no reason.
        """
        held = self.get(job_id)
        if held is None:
            raise KeyError(f"no job {job_id!r} waits at this station")
        if held.decision is not None:
            raise ValueError(f"job {job_id!r} was {held.decision} already")
        if not approve and not (comment or "").strip():
            raise ValueError("say why (the researcher reads it)")
        self.mark(job_id, "approved" if approve else "denied", by=by, comment=comment)
        found = self.get(job_id)
        assert found is not None
        return found

    def mark(self, job_id: str, decision: str, *, by: str, comment: str | None = None) -> None:
        """Record a decision (``approved``, ``denied``, or ``cancelled`` by the hub)."""
        self._write(
            job_id, "decision.json", {"decision": decision, "by": by, "comment": comment, "at": utc_now().isoformat()}
        )


_DECISION_EVENTS = {
    (Gate.CODE, True): "code.approval_given",
    (Gate.CODE, False): "code.approval_refused",
    (Gate.RELEASE, True): "result.release_given",
    (Gate.RELEASE, False): "result.release_refused",
}


def operator_decision(state_dir: Path, job_id: str, *, approve: bool, by: str, comment: str | None = None) -> Held:
    """An operator's decision on a held job (CLI or station API), recorded in the audit chain.

    Raises
    ------
    KeyError
        When no job ``job_id`` is held.
    ValueError
        When it was decided already, or a denial gives no reason.
    """
    from .audit import append_audit  # the audit module imports nothing of ours; keep this module light

    held = Approvals(state_dir / "approvals").decide(job_id, approve=approve, by=by, comment=comment)
    append_audit(
        state_dir / "audit.log", _DECISION_EVENTS[(held.gate, approve)], actor=by, role="operator", job_id=job_id
    )
    return held
