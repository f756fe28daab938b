"""The hub's audit chain, for admins: read it as JSON lines, verify it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from hub import audit
from hub.api.deps import AdminUser, SessionDep
from protocol import AuditVerification

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_class=PlainTextResponse, responses={200: {"content": {"application/x-ndjson": {}}}})
def read_audit(
    session: SessionDep,
    _admin: AdminUser,
    after: Annotated[int, Query(ge=0, description="return entries after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000, description="at most this many entries")] = 10_000,
) -> PlainTextResponse:
    """The chain's entries as JSON lines, oldest first (``trainyard audit verify`` checks an export)."""
    lines = [entry.to_json_line() + "\n" for entry in audit.audit_entries(session, after=after, limit=limit)]
    return PlainTextResponse("".join(lines), media_type="application/x-ndjson")


@router.get("/verify")
def verify_audit(session: SessionDep, _admin: AdminUser) -> AuditVerification:
    """Verify the whole chain against its recorded head."""
    return audit.verify_hub_audit(session)
