"""Artifacts: content-addressed bytes (train bundles) that researchers upload and stations fetch."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import FileResponse

from hub.api.deps import BINARY_BODY, OCTET_STREAM, ArtifactsDep, CurrentCaller, ResearcherUser, SettingsDep
from hub.models import ArtifactPublic
from protocol import is_content_address

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


def _check_address(address: str) -> None:
    if not is_content_address(address):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"malformed content address {address!r}: expected 'sha256:' and 64 hex digits",
        )


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, detail=f"the artifact is larger than the hub's limit of {limit} bytes"
    )


@router.put(
    "/{address}",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=BINARY_BODY,
)
async def upload_artifact(
    address: str,
    request: Request,
    response: Response,
    artifacts: ArtifactsDep,
    settings: SettingsDep,
    _user: ResearcherUser,
) -> ArtifactPublic:
    """Upload raw bytes under their content address (200 when already stored)."""
    _check_address(address)
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    with artifacts.begin_upload(max_bytes=limit) as upload:
        try:
            async for chunk in request.stream():
                upload.write(chunk)
        except ValueError as exc:
            raise _too_large(limit) from exc
        if upload.address != address:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"content does not match its address: expected {address}, got {upload.address}",
            )
        if artifacts.has(address):
            response.status_code = status.HTTP_200_OK
        else:
            upload.commit(expected_address=address)
        return ArtifactPublic(address=address, size=upload.size)


@router.get(
    "/{address}",
    response_class=FileResponse,
    responses={status.HTTP_200_OK: {"content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}}}},
)
def read_artifact(address: str, artifacts: ArtifactsDep, _caller: CurrentCaller) -> FileResponse:
    """Download an artifact's bytes (users and stations)."""
    _check_address(address)
    if not artifacts.has(address):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no artifact {address}")
    return FileResponse(artifacts.path_for(address), media_type=OCTET_STREAM)
