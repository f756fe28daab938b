"""``trainyard hub ...``: set up a hub's state folder and serve it.

The ``trainyard`` CLI (in ``client/``) mounts :data:`app` as its ``hub`` command group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from hub import crud
from hub.core.config import Settings
from hub.core.db import create_db_engine, create_tables
from hub.models import UserCreate
from protocol import AuditVerification, Role, audit_export_text

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


audit_app = typer.Typer(name="audit", help="The hub's hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app)


def _print_verification(result: AuditVerification, where: str) -> None:
    first, *problems = result.report(where)
    typer.echo(first, err=not result.ok)
    for line in problems:
        typer.echo(line, err=True)


@audit_app.command("verify")
def verify_audit(state: StateOption = Path("./hub-state")) -> None:
    """Verify the hub's audit chain; exit 1 naming every edited, deleted, inserted or reordered entry."""
    from hub.audit import verify_hub_audit

    engine = _open_existing(state)
    try:
        with Session(engine) as session:
            result = verify_hub_audit(session)
    finally:
        engine.dispose()
    _print_verification(result, str(state))
    if not result.ok:
        raise typer.Exit(code=1)


@audit_app.command("export")
def export_audit(
    state: StateOption = Path("./hub-state"),
    fmt: Annotated[str, typer.Option("--format", help="jsonl (JSON lines) or prov (PROV-O Turtle).")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output.")] = None,
) -> None:
    """Export the audit chain as JSON lines or as PROV-O."""
    from hub.audit import audit_entries

    engine = _open_existing(state)
    try:
        with Session(engine) as session:
            entries = list(audit_entries(session))
    finally:
        engine.dispose()
    try:
        text = audit_export_text(entries, fmt)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(entries)} audit entries to {out}", err=True)


def _open_existing(state: Path) -> Engine:
    settings = Settings(state_dir=state)
    if settings.effective_database_url.startswith("sqlite") and not state.is_dir():
        typer.echo(f"no hub state in {state}: run 'trainyard hub init --state {state}' first", err=True)
        raise typer.Exit(code=2)
    engine = create_db_engine(settings)
    create_tables(engine)
    return engine
