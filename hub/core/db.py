"""The SQL engine: SQLite with WAL and foreign keys by default; tables are made at start-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import Session, SQLModel, create_engine

from hub.core.config import Settings

__all__ = ["create_db_engine", "create_tables", "open_session"]


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(settings: Settings) -> Engine:
    """Create the engine for ``settings``; for SQLite, make the state folder and turn on WAL."""
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _enable_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def create_tables(engine: Engine) -> None:
    """Create every table that does not exist yet."""
    import hub.models  # noqa: F401  (registers the table models)

    SQLModel.metadata.create_all(engine)


@contextmanager
def open_session(engine: Engine) -> Iterator[Session]:
    """Open a session outside a request (long-polls, the CLI)."""
    with Session(engine) as session:
        yield session
