"""The station's own HTTP API for its operator: the approval queue, on the hospital's side only.

``trainyard station api`` serves it on 127.0.0.1 (never the hub's network): the queue of trains
whose code waits for approval and results that wait for release, and the decisions on them — the
same as ``trainyard station approvals``, for a hospital's own tools or web page. Every request
carries the operator token from ``STATE/operator.token`` (created owner-only on first start) as
``Authorization: Bearer``; decisions are written to the same queue and audit chain as the CLI's.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from .approvals import Approvals, operator_decision
from .policy import AcceptancePolicy, read_policy
from .state import write_private_file

__all__ = ["create_station_api", "operator_token"]

_PREVIEW_BYTES = 4000
_bearer = HTTPBearer(auto_error=False)


def operator_token(state_dir: Path) -> str:
    """The operator token of this station (made on first use, mode 0600)."""
    path = state_dir / "operator.token"
    if not path.is_file():
        write_private_file(path, secrets.token_urlsafe(32).encode("ascii"))
    return path.read_text("ascii").strip()


def _require_operator(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    token: str = request.app.state.operator_token
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="send the operator token from STATE/operator.token as 'Authorization: Bearer …'",
            headers={"WWW-Authenticate": "Bearer"},
        )


class Decision(BaseModel):
    """An operator's decision: who decides, and why (a denial needs a reason)."""

    operator: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    comment: str | None = Field(default=None, max_length=2000)


def create_station_api(state_dir: Path) -> FastAPI:
    """The operator's API over the station state in ``state_dir``."""
    queue = Approvals(state_dir / "approvals")
    app = FastAPI(
        title="Trainyard station",
        summary="The station operator's approval queue (local only)",
        dependencies=[Depends(_require_operator)],
    )
    app.state.operator_token = operator_token(state_dir)

    def held_or_404(job_id: str) -> Any:
        held = queue.get(job_id)
        if held is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r} waits at this station")
        return held

    @app.get("/approvals")
    def list_held() -> list[dict[str, Any]]:
        """Every held job, oldest first: gate, researcher, project, collection, code, decision."""
        return [held.summary() for held in queue.all()]

    @app.get("/approvals/{job_id}")
    def read_held(job_id: str) -> dict[str, Any]:
        """One held job; for a result waiting for release, its plain files (the start of each text)."""
        held = held_or_404(job_id)
        files = []
        for path in queue.files(job_id):
            data = path.read_bytes()
            try:
                preview: str | None = data[:_PREVIEW_BYTES].decode("utf-8")
            except UnicodeDecodeError:
                preview = None
            files.append({"name": path.name, "size": len(data), "preview": preview})
        parameters = held.job.signed_manifest.manifest.parameters
        return {**held.summary(), "parameters": parameters, "files": files}

    def decide(job_id: str, body: Decision, *, approve: bool) -> dict[str, Any]:
        held_or_404(job_id)
        try:
            held = operator_decision(state_dir, job_id, approve=approve, by=body.operator, comment=body.comment)
        except ValueError as exc:
            code = status.HTTP_409_CONFLICT if "already" in str(exc) else status.HTTP_400_BAD_REQUEST
            raise HTTPException(code, detail=str(exc)) from exc
        return held.summary()

    @app.post("/approvals/{job_id}/approve")
    def approve(job_id: str, body: Decision) -> dict[str, Any]:
        """Approve the code (it joins the allow-lists) or the release; the agent carries it out."""
        return decide(job_id, body, approve=True)

    @app.post("/approvals/{job_id}/deny")
    def deny(job_id: str, body: Decision) -> dict[str, Any]:
        """Deny (say why: the researcher reads it): the job fails; a withheld result never leaves."""
        return decide(job_id, body, approve=False)

    @app.get("/policy")
    def policy() -> dict[str, Any]:
        """The allow-lists and the gates."""
        current = read_policy(state_dir)
        lists: dict[str, Any] = {kind: getattr(current, kind) for kind in AcceptancePolicy.kinds()}
        gates = {gate: getattr(current, f"{gate}_gate") for gate in AcceptancePolicy.gates()}
        return {**lists, "gates": gates}

    return app
