"""The hub's audit chain: append an entry per login, request, decision, train, job and result.

Entries follow :mod:`protocol`'s chain (``seq``, ``prev``, ``hash``); the head row is updated
in the same transaction as the entry it names. ``seq`` is the primary key, so two writers that
race for the same place make one of them retry instead of forking the chain.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from hub.models import AccessEvent, AuditHeadRow, AuditRecord, Station, User
from protocol import AuditEntry, AuditHead, AuditVerification, next_audit_entry, verify_audit_chain

__all__ = ["actor_of", "audit_entries", "audit_head", "record_access_events", "record_event", "verify_hub_audit"]

_LOCK = threading.Lock()
_RETRIES = 5
Scalar = str | int | float | bool | None


def actor_of(caller: User | Station | None) -> tuple[str, str]:
    """Return the (actor, role) an entry names for a caller."""
    if caller is None:
        return "anonymous", "anonymous"
    if isinstance(caller, Station):
        return caller.id, "station"
    return caller.username, caller.role.value


def audit_head(session: Session) -> AuditHead | None:
    """Return the recorded head, ``None`` before the first entry."""
    row = session.get(AuditHeadRow, 1)
    return AuditHead(seq=row.seq, hash=row.hash) if row is not None else None


def record_event(
    engine: Engine,
    *,
    actor: str,
    role: str,
    action: str,
    subject: str = "",
    details: dict[str, Scalar | list[Scalar]] | None = None,
) -> AuditEntry:
    """Append one entry in its own transaction and return it.

    Parameters
    ----------
    engine
        The hub's database engine (a fresh session is used, so a caller's rollback cannot
        remove an entry).
    actor, role
        Who: a username and role, a station's name and ``"station"``, or ``"anonymous"``.
    action
        What, as ``resource.verb`` (``auth.login``, ``decision.approved``, ``result.downloaded``…).
    subject
        The resource's id.
    details
        Small JSON-ready facts; never secrets or patient data.
    """
    for _attempt in range(_RETRIES):
        with _LOCK, Session(engine) as session:
            head = session.get(AuditHeadRow, 1)
            previous = AuditHead(seq=head.seq, hash=head.hash) if head is not None else None
            entry = next_audit_entry(previous, actor=actor, role=role, action=action, subject=subject, details=details)
            session.add(AuditRecord.model_validate(entry.model_dump()))
            if head is None:
                session.add(AuditHeadRow(id=1, seq=entry.seq, hash=entry.hash))
            else:
                head.seq, head.hash = entry.seq, entry.hash
                session.add(head)
            try:
                session.commit()
            except IntegrityError:  # another process took this seq: read the head again
                session.rollback()
                continue
            return entry
    raise RuntimeError("could not append to the audit chain: too much contention")


def audit_entries(session: Session, *, after: int = 0, limit: int | None = None) -> Iterator[AuditEntry]:
    """Yield entries in ``seq`` order, starting after ``after``."""
    statement = select(AuditRecord).where(col(AuditRecord.seq) > after).order_by(col(AuditRecord.seq))
    if limit is not None:
        statement = statement.limit(limit)
    for row in session.exec(statement):
        yield AuditEntry.model_validate(row.model_dump())


def verify_hub_audit(session: Session) -> AuditVerification:
    """Verify the whole chain against the recorded head."""
    return verify_audit_chain(audit_entries(session), head=audit_head(session))


def record_access_events(engine: Engine, events: Iterable[AccessEvent]) -> None:
    """Append each access-workflow event (a move of a request, decision or grant) to the chain."""
    for event in events:
        details: dict[str, Scalar | list[Scalar]] = {"access_request": event.access_request_id, "to": event.to_state}
        if event.from_state:
            details["from"] = event.from_state
        if event.station:
            details["station"] = event.station
        details["comment"] = bool(event.comment)
        record_event(
            engine,
            actor=event.actor,
            role=event.role,
            action=f"{event.kind}.{event.action}",
            subject=event.subject,
            details=details,
        )
