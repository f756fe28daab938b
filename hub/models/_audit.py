"""The hub's audit chain in SQL: one row per entry, and the recorded head in a row of its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from hub.models._types import UTCDateTime

__all__ = ["AuditHeadRow", "AuditRecord"]


class AuditRecord(SQLModel, table=True):
    """One :class:`protocol.AuditEntry`; ``seq`` is the primary key, so two writers cannot fork the chain."""

    seq: int = Field(primary_key=True)
    ts: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(index=True)
    role: str
    action: str = Field(index=True)
    subject: str = Field(default="", index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    prev: str
    hash: str


class AuditHeadRow(SQLModel, table=True):
    """The last entry's seq and hash, written in the same transaction as the entry."""

    id: int = Field(default=1, primary_key=True)
    seq: int
    hash: str
