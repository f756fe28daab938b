"""The audit chain shared by hub and stations: append-only entries, each hashing the one before.

An entry's ``hash`` is the sha256 of the canonical JSON of every other field, ``prev`` included,
so editing an entry breaks its own hash and rewriting it breaks the next entry's ``prev``.
Sequence numbers make deletions, insertions and reordering visible; a recorded head (the last
``seq`` and ``hash``, kept apart from the log) makes a cut-off tail visible.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol._errors import ProtocolError
from protocol._hashing import canonical_json
from protocol._schemas import utc_now

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditHead",
    "AuditProblem",
    "AuditProblemKind",
    "AuditVerification",
    "audit_entries_from_jsonl",
    "audit_export_text",
    "audit_to_prov_turtle",
    "next_audit_entry",
    "verify_audit_chain",
]

GENESIS_HASH = "0" * 64
"""The ``prev`` of the first entry."""

Scalar = str | int | float | bool | None


class AuditEntry(BaseModel):
    """One audited event: who (actor, role) did what (action) to which resource (subject)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1)
    ts: datetime
    actor: str
    role: str
    action: str
    subject: str = ""
    details: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    prev: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    def computed_hash(self) -> str:
        """Return the hash this entry's content calls for."""
        return _hash_of(self.model_dump(mode="json", exclude={"hash"}))

    def to_json_line(self) -> str:
        """Serialise as one JSON line (the export format)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)


class AuditHead(BaseModel):
    """The last entry of a chain as recorded apart from it: detects a cut-off tail."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class AuditProblemKind(StrEnum):
    """What a verification found wrong."""

    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"


class AuditProblem(BaseModel):
    """One problem at one place of the chain."""

    model_config = ConfigDict(frozen=True)

    kind: AuditProblemKind
    position: int = Field(description="0-based line of the log where the problem shows")
    seq: int | None
    message: str


class AuditVerification(BaseModel):
    """The outcome of :func:`verify_audit_chain`."""

    model_config = ConfigDict(frozen=True)

    entries: int
    head: AuditHead
    problems: list[AuditProblem]

    @property
    def ok(self) -> bool:
        """True when the chain is intact."""
        return not self.problems

    def report(self, where: str) -> list[str]:
        """Lines for a person: the verdict on ``where``, then one line per problem."""
        if self.ok:
            return [f"{where}: audit chain intact ({self.entries} entries, head {self.head.seq}:{self.head.hash})"]
        lines = [f"{where}: audit chain BROKEN ({len(self.problems)} problems in {self.entries} entries)"]
        return lines + [f"  {problem.kind.value:<10} {problem.message}" for problem in self.problems]


def _hash_of(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def next_audit_entry(
    previous: AuditEntry | AuditHead | None,
    *,
    actor: str,
    role: str,
    action: str,
    subject: str = "",
    details: dict[str, Scalar | list[Scalar]] | None = None,
    ts: datetime | None = None,
) -> AuditEntry:
    """Build the entry that follows ``previous`` (``None`` for the first of a chain).

    Examples
    --------
    >>> first = next_audit_entry(None, actor="rosa", role="researcher", action="auth.login")
    >>> second = next_audit_entry(first, actor="rosa", role="researcher", action="train.submitted")
    >>> (second.seq, second.prev == first.hash)
    (2, True)
    """
    seq = previous.seq + 1 if previous is not None else 1
    prev = previous.hash if previous is not None and previous.seq > 0 else GENESIS_HASH
    fields: dict[str, Any] = {
        "seq": seq,
        "ts": (ts or utc_now()).isoformat(),
        "actor": actor,
        "role": role,
        "action": action,
        "subject": subject,
        "details": dict(details or {}),
        "prev": prev,
    }
    unhashed = AuditEntry.model_validate({**fields, "hash": GENESIS_HASH})
    return unhashed.model_copy(update={"hash": unhashed.computed_hash()})


def verify_audit_chain(entries: Iterable[AuditEntry], *, head: AuditHead | None = None) -> AuditVerification:
    """Check a chain entry by entry and name every problem with its place.

    Parameters
    ----------
    entries
        The chain in stored order.
    head
        The head recorded apart from the chain, when there is one; a chain whose last entry
        does not match it was cut off or rewritten.

    Returns
    -------
    AuditVerification
        ``ok`` when intact; otherwise one problem per broken place (edited, deleted, inserted,
        reordered, truncated).
    """
    problems: list[AuditProblem] = []
    previous: AuditEntry | None = None
    count = 0
    seen: set[int] = set()
    for position, entry in enumerate(entries):
        count += 1

        def flag(kind: AuditProblemKind, message: str, *, at: AuditEntry = entry, line: int = position) -> None:
            problems.append(AuditProblem(kind=kind, position=line, seq=at.seq, message=message))

        if entry.computed_hash() != entry.hash:
            flag(
                AuditProblemKind.EDITED, f"entry {entry.seq} was changed after it was written (its hash does not match)"
            )
        expected_seq = previous.seq + 1 if previous is not None else 1
        expected_prev = previous.hash if previous is not None else GENESIS_HASH
        if entry.seq in seen:
            flag(
                AuditProblemKind.INSERTED,
                f"a second entry {entry.seq} appears at line {position + 1}: an entry was inserted",
            )
        elif entry.seq < expected_seq:
            flag(
                AuditProblemKind.REORDERED,
                f"entry {entry.seq} comes after entry {expected_seq - 1}: entries were reordered",
            )
        elif entry.seq > expected_seq:
            missing = f"{expected_seq}" if entry.seq == expected_seq + 1 else f"{expected_seq} to {entry.seq - 1}"
            flag(AuditProblemKind.DELETED, f"entries {missing} are missing before entry {entry.seq}")
        elif entry.prev != expected_prev:
            flag(
                AuditProblemKind.EDITED,
                f"entry {entry.seq} does not follow entry {expected_seq - 1} as written: "
                "the entry before it was rewritten, or this one was inserted",
            )
        seen.add(entry.seq)
        previous = entry
    last = (
        AuditHead(seq=previous.seq, hash=previous.hash) if previous is not None else AuditHead(seq=0, hash=GENESIS_HASH)
    )
    if head is not None and head != last:
        if head.seq > last.seq:
            message = (
                f"the log ends at entry {last.seq} but its recorded head is entry {head.seq}: entries were cut off"
            )
        else:
            message = f"the log's last entry ({last.seq}) is not its recorded head (entry {head.seq}): it was rewritten"
        problems.append(AuditProblem(kind=AuditProblemKind.TRUNCATED, position=count, seq=last.seq, message=message))
    return AuditVerification(entries=count, head=last, problems=problems)


def audit_entries_from_jsonl(lines: Iterable[str]) -> Iterator[AuditEntry]:
    """Parse JSON lines into entries; a line that is not an entry raises with its number.

    Raises
    ------
    ProtocolError
        Naming the line and what is wrong with it.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield AuditEntry.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "line"
            raise ProtocolError(f"audit line {number} is not an audit entry: {where}: {first['msg']}") from exc


def audit_export_text(entries: Iterable[AuditEntry], fmt: str) -> str:
    """Serialise a chain as ``jsonl`` (one entry per line) or ``prov`` (PROV-O Turtle).

    Raises
    ------
    ValueError
        For another format.
    """
    if fmt == "jsonl":
        return "".join(entry.to_json_line() + "\n" for entry in entries)
    if fmt == "prov":
        return audit_to_prov_turtle(entries)
    raise ValueError(f"unknown format {fmt!r}: use jsonl or prov")


def _turtle_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def audit_to_prov_turtle(entries: Iterable[AuditEntry], *, base_iri: str = "urn:trainyard:audit:") -> str:
    """Describe a chain in PROV-O (Turtle): one ``prov:Activity`` per entry, informed by the one before."""
    lines = [
        "@prefix prov: <http://www.w3.org/ns/prov#> .",
        "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .",
        "@prefix ty: <https://w3id.org/trainyard/ontology#> .",
        "",
    ]
    agents: dict[str, str] = {}
    for entry in entries:
        activity = f"<{base_iri}{entry.seq}>"
        agent = f"<{base_iri}agent/{entry.role}/{entry.actor}>"
        agents[agent] = entry.role
        lines.append(f"{activity} a prov:Activity ;")
        lines.append(f"    prov:startedAtTime {_turtle_string(entry.ts.isoformat())}^^xsd:dateTime ;")
        lines.append(f"    prov:wasAssociatedWith {agent} ;")
        lines.append(f"    ty:action {_turtle_string(entry.action)} ;")
        if entry.subject:
            lines.append(f"    ty:auditSubject {_turtle_string(entry.subject)} ;")
        if entry.seq > 1:
            lines.append(f"    prov:wasInformedBy <{base_iri}{entry.seq - 1}> ;")
        lines.append(f"    ty:auditHash {_turtle_string(entry.hash)} .")
    for agent, role in agents.items():
        kind = "prov:SoftwareAgent" if role in {"station", "system"} else "prov:Person"
        lines.append(f"{agent} a prov:Agent, {kind} ; ty:role {_turtle_string(role)} .")
    return "\n".join(lines) + "\n"
