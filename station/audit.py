"""The station's audit log: the protocol's hash chain as JSON lines, with its head kept apart.

``audit.log`` holds one :class:`protocol.AuditEntry` per line (each hashes the one before);
``audit.head`` records the last entry's ``seq`` and ``hash`` so a cut-off tail shows too.
Appends are serialised with a file lock, so the agent and CLI commands may write at once.
Nothing secret (tokens, keys) and nothing identifying (patient ids) goes in.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from protocol import (
    AuditEntry,
    AuditHead,
    AuditVerification,
    ProtocolError,
    audit_entries_from_jsonl,
    next_audit_entry,
    verify_audit_chain,
)

__all__ = ["append_audit", "audit_head_file", "read_audit", "read_audit_head", "verify_audit_log"]

_TAIL = 65536
Scalar = str | int | float | bool | None


def audit_head_file(path: Path) -> Path:
    """Return where the head of the log at ``path`` is recorded."""
    return path.with_name(path.name.removesuffix(".log") + ".head")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _last_entry(path: Path) -> AuditEntry | None:
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - _TAIL))
        lines = [line for line in handle.read().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return AuditEntry.model_validate_json(lines[-1])
    except ValueError as exc:
        raise ProtocolError(f"the last line of {path} is not an audit entry; run 'audit verify'") from exc


def _jsonable(value: Any) -> Scalar | list[Scalar]:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [item if item is None or isinstance(item, str | int | float | bool) else str(item) for item in items]
    return str(value)


def append_audit(path: Path, event: str, *, actor: str = "station", role: str = "station", **fields: Any) -> AuditEntry:
    """Append one event to the audit log at ``path`` and record the new head.

    Parameters
    ----------
    path
        The ``audit.log`` file; created (mode 0600) when absent.
    event
        What happened, e.g. ``"job.received"``, ``"job.refused"``, ``"result.uploaded"``.
    actor, role
        Who did it: the station itself by default, or an operator's name.
    **fields
        Details. ``job_id`` (else ``collection``) becomes the entry's subject.

    Returns
    -------
    AuditEntry
        The entry as written.
    """
    subject = str(fields.get("job_id") or fields.get("collection") or "")
    details = {key: _jsonable(value) for key, value in fields.items()}
    with _locked(path):
        entry = next_audit_entry(
            _last_entry(path), actor=actor, role=role, action=event, subject=subject, details=details
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(entry.to_json_line() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        head = audit_head_file(path)
        scratch = head.with_name(head.name + ".tmp")
        scratch.write_text(json.dumps({"seq": entry.seq, "hash": entry.hash}), encoding="utf-8")
        scratch.chmod(0o600)
        os.replace(scratch, head)
    return entry


def read_audit(path: Path) -> list[AuditEntry]:
    """Return every entry of the audit log, oldest first.

    Raises
    ------
    ProtocolError
        When a line is not an audit entry (naming the line).
    """
    if not path.is_file():
        return []
    return list(audit_entries_from_jsonl(path.read_text("utf-8").splitlines()))


def read_audit_head(path: Path) -> AuditHead | None:
    """Return the recorded head of the log at ``path``, if any."""
    head = audit_head_file(path)
    if not head.is_file():
        return None
    return AuditHead.model_validate_json(head.read_text("utf-8"))


def verify_audit_log(path: Path) -> AuditVerification:
    """Verify the log at ``path`` against its recorded head.

    Raises
    ------
    ProtocolError
        When a line cannot be read as an entry at all.
    """
    return verify_audit_chain(read_audit(path), head=read_audit_head(path))
