"""What the client's command tests share about their served hub."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

PASSWORD = "client-tests-password"


@dataclass(frozen=True)
class ServedHub:
    """A hub app served on loopback at ``url``."""

    url: str
    app: FastAPI
