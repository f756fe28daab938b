"""``trainyard hub ...``: set up a hub's state folder and serve it.

The ``trainyard`` CLI (in ``client/``) mounts :data:`app` as its ``hub`` command group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlmodel import Session

from hub import crud
from hub.core.config import Settings
from hub.core.db import create_db_engine, create_tables
from hub.models import UserCreate
from protocol import Role

__all__ = ["app"]

app = typer.Typer(name="hub", help="Run a Trainyard hub: catalog, governance, trains.", no_args_is_help=True)

StateOption = Annotated[
    Path, typer.Option("--state", help="The hub's state folder (database, catalog, artifacts, vault).")
]


@app.command("init")
def init_hub(
    state: StateOption = Path("./hub-state"),
    admin_user: Annotated[str, typer.Option("--admin-user", help="Username of the first admin.")] = "admin",
    admin_password: Annotated[
        str,
        typer.Option(
            "--admin-password",
            envvar="TRAINYARD_HUB_ADMIN_PASSWORD",
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Password of the first admin (or set TRAINYARD_HUB_ADMIN_PASSWORD).",
        ),
    ] = "",
) -> None:
    """Create the state folder, the database and the first admin (safe to run again)."""
    settings = Settings(state_dir=state)
    engine = create_db_engine(settings)
    try:
        create_tables(engine)
        with Session(engine) as session:
            existing = crud.get_user_by_username(session=session, username=admin_user)
            if existing is not None:
                typer.echo(
                    f"hub state in {state}: user {admin_user!r} already exists ({existing.role.value}); unchanged"
                )
                return
            try:
                user_create = UserCreate(username=admin_user, password=admin_password, role=Role.ADMIN)
            except ValidationError as exc:
                messages = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                typer.echo(f"cannot create the admin: {messages}", err=True)
                raise typer.Exit(code=2) from exc
            crud.create_user(session=session, user_create=user_create)
    finally:
        engine.dispose()
    typer.echo(f"hub state in {state}: created admin {admin_user!r}")


@app.command("serve")
def serve_hub(
    state: StateOption = Path("./hub-state"),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    base_iri: Annotated[
        str | None,
        typer.Option("--base-iri", help="Public base IRI of catalog entries (default: http://HOST:PORT)."),
    ] = None,
) -> None:
    """Serve the hub over HTTP (OpenAPI at /docs, GraphiQL at /graphql)."""
    import uvicorn

    from hub.main import create_app

    settings = Settings(state_dir=state, base_iri=base_iri) if base_iri else Settings(state_dir=state)
    if "base_iri" not in settings.model_fields_set:
        settings = settings.model_copy(update={"base_iri": f"http://{host}:{port}"})
    typer.echo(f"Trainyard hub: state {state}, catalog IRIs under {settings.base_iri}")
    typer.echo(f"  API docs http://{host}:{port}/docs  GraphQL http://{host}:{port}/graphql")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
