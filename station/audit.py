"""The station's audit log: hash-chained JSON lines, one per decision.

Each line holds ``ts``, ``event``, the event's fields and ``prev``, the sha256 of the
previous line (``""`` for the first), so removing or editing a line breaks the chain.
Nothing secret (tokens, keys) and nothing identifying (patient ids) goes in.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import protocol

__all__ = ["append_audit", "read_audit", "verify_audit_chain"]

_TAIL = 65536


def _last_line(path: Path) -> bytes:
    if not path.is_file():
        return b""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - _TAIL))
        lines = handle.read().splitlines()
    return lines[-1] if lines else b""


def append_audit(path: Path, event: str, **fields: Any) -> None:
    """Append one event to the audit log at ``path``.

    Parameters
    ----------
    path
        The ``audit.log`` file; created when absent.
    event
        What happened, e.g. ``"job.received"``, ``"job.refused"``, ``"result.uploaded"``.
    **fields
        JSON-ready details (job id, reason, ...).
    """
    last = _last_line(path)
    record = {"ts": protocol.utc_now().isoformat(), "event": event, **fields}
    record["prev"] = hashlib.sha256(last).hexdigest() if last else ""
    line = json.dumps(record, sort_keys=True, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Return every event of the audit log, oldest first."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def verify_audit_chain(path: Path) -> bool:
    """Tell whether every line's ``prev`` is the hash of the line before it."""
    if not path.is_file():
        return True
    previous = b""
    for line in path.read_bytes().splitlines():
        expected = hashlib.sha256(previous).hexdigest() if previous else ""
        if json.loads(line).get("prev") != expected:
            return False
        previous = line
    return True
