"""Secure aggregation at the hub: each round's protocol state and the messages it relays."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models._types import UTCDateTime, new_id
from protocol import utc_now

__all__ = ["SecAggMessage", "SecAggRound", "SecAggStep"]


class SecAggStep(StrEnum):
    """Which stations' messages a secure-aggregation round waits for (then ``done`` or ``failed``)."""

    KEYS = "keys"
    SHARES = "shares"
    MASKED = "masked"
    UNMASK = "unmask"
    DONE = "done"
    FAILED = "failed"


class SecAggRound(SQLModel, table=True):
    """One round's protocol: the step it is in, its deadline, the member sets U1 ⊇ U2 ⊇ U3 and the result."""

    __table_args__ = (UniqueConstraint("train_id", "round"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    train_id: str = Field(foreign_key="train.id", index=True)
    round: int
    step: SecAggStep = Field(default=SecAggStep.KEYS)
    step_deadline: datetime = Field(sa_type=UTCDateTime)
    threshold: int = 0
    roster: list[str] = Field(default_factory=list, sa_type=JSON)  # U1: advertised keys
    senders: list[str] = Field(default_factory=list, sa_type=JSON)  # U2: sent shares
    survivors: list[str] = Field(default_factory=list, sa_type=JSON)  # U3: sent a masked update
    total_examples: int = 0
    base_model: str | None = None  # the round's global model: the masked values are changes from it
    result: str | None = None
    reason: str | None = None
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class SecAggMessage(SQLModel, table=True):
    """A station's message of one step (a share names its recipient; only that station reads it)."""

    __table_args__ = (UniqueConstraint("train_id", "round", "step", "sender", "recipient"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    train_id: str = Field(foreign_key="train.id", index=True)
    round: int
    step: str
    sender: str
    recipient: str = ""
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
