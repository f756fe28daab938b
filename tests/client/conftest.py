"""A real hub served on loopback for the client's command tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from client_hub import PASSWORD, ServedHub
from sqlmodel import Session

from client._federation import free_port
from hub import Settings, create_app, crud
from hub.core import security
from hub.models import UserCreate
from protocol import Role


@pytest.fixture
def served_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedHub]:
    """A hub on a free loopback port with the researcher ``rosa``."""
    monkeypatch.setattr(security, "_N", 2**8)
    port = free_port()
    hub = create_app(Settings(state_dir=tmp_path / "hub", base_iri=f"http://127.0.0.1:{port}"))
    server = uvicorn.Server(uvicorn.Config(hub, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    with Session(hub.state.engine) as session:
        crud.create_user(
            session=session, user_create=UserCreate(username="rosa", password=PASSWORD, role=Role.RESEARCHER)
        )
    yield ServedHub(url=f"http://127.0.0.1:{port}", app=hub)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def hub_url(served_hub: ServedHub) -> str:
    """The served hub's URL."""
    return served_hub.url
