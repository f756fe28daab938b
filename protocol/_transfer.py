"""Resumable uploads of large files (model updates) from a station to the hub.

A station starts an upload with the file's content address and size (:class:`UploadStart`), then
PUTs it chunk by chunk at ``.../uploads/{upload_id}/{offset}``; every chunk is its own signed
request, so the signature's ``Content-Digest`` covers that chunk's bytes. The hub writes chunks
to disk as they come, answers :class:`UploadStatus` (the offset it has received), and after the
last chunk checks the whole file's sha256 against the address before the file joins its store.
A station that crashed or lost its connection asks for the status and goes on from its offset.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._hashing import is_content_address

__all__ = ["DEFAULT_CHUNK_BYTES", "UploadStart", "UploadStatus"]

DEFAULT_CHUNK_BYTES = 8 << 20
"""The chunk size a station uses unless the hub asks for smaller ones (8 MiB)."""


class UploadStart(BaseModel):
    """What a station says to start an upload: the whole file's address and size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(description="sha256:<hex> of the whole file")
    size: int = Field(ge=1, description="the whole file's size in bytes")

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if not is_content_address(value):
            raise ValueError(f"malformed content address {value!r}: expected 'sha256:' and 64 hex digits")
        return value


class UploadStatus(BaseModel):
    """Where an upload stands: the bytes the hub holds, and the chunk size it takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upload_id: str
    address: str
    size: int = Field(ge=1)
    offset: int = Field(ge=0, description="bytes received so far: the next chunk starts here")
    chunk_bytes: int = Field(ge=1, description="the largest chunk the hub accepts")
    complete: bool = Field(description="true once the whole file is verified and stored under its address")
    expires_at: datetime = Field(description="an unfinished upload is dropped after this")
