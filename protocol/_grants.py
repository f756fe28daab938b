"""Grants: a steward's signed decision that one project may use one collection of their station.

The steward's own client signs the grant; the hub only relays it. A station runs a job only
with a grant signed by a steward key that its own operator configured, so a compromised hub
cannot approve anything on a steward's behalf.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = ["REMOTE_PROCESSING", "Grant", "SignedGrant"]

REMOTE_PROCESSING = "remote-processing"
"""The default allowed action: trains run at the station; nothing is downloaded."""

_Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
_KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


class Grant(BaseModel):
    """What a steward approved: a project on a collection, for whom, for what, and until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grant_id: str = Field(min_length=1, max_length=128)
    project_id: str = Field(min_length=1, max_length=128)
    station: _Slug
    collection: _Slug
    researcher: str = Field(min_length=1, max_length=128)
    researcher_key_id: _KeyId = Field(description="the researcher's signing key the steward approved")
    purpose: tuple[str, ...] = Field(default=(), description="the project's DUO codes, e.g. DUO:0000007")
    allowed_action: str = REMOTE_PROCESSING
    steward: str = Field(min_length=1, max_length=128)
    steward_key_id: _KeyId
    not_before: datetime
    not_after: datetime
    issued_at: datetime

    @model_validator(mode="after")
    def _valid_period(self) -> Grant:
        if self.not_after <= self.not_before:
            raise ValueError("a grant's not_after must be after its not_before")
        return self

    def covers(self, *, station: str, collection: str, project_id: str, at: datetime) -> bool:
        """Tell whether this grant allows ``project_id`` on ``station/collection`` at time ``at``."""
        return (
            self.station == station
            and self.collection == collection
            and self.project_id == project_id
            and self.not_before <= at < self.not_after
        )


class SignedGrant(BaseModel):
    """A grant and the steward's Ed25519 signature over its canonical JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grant: Grant
    signature: str = Field(min_length=1)
