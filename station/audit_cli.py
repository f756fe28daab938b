"""``trainyard station audit ...``: verify and export the station's audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from protocol import ProtocolError, audit_export_text

from .audit import read_audit, verify_audit_log
from .state import StationState

__all__ = ["audit_app"]

audit_app = typer.Typer(name="audit", help="The station's hash-chained audit log.", no_args_is_help=True)

StateOption = Annotated[Path, typer.Option("--state", help="The station's state directory.")]


def _log_of(state: Path) -> Path:
    path = StationState(state).audit_file
    if not path.is_file():
        typer.echo(f"no audit log in {state} (looked for {path})", err=True)
        raise typer.Exit(code=2)
    return path


@audit_app.command("verify")
def verify(state: StateOption = Path("./station-state")) -> None:
    """Verify the audit log against its recorded head; exit 1 naming every problem."""
    path = _log_of(state)
    try:
        result = verify_audit_log(path)
    except ProtocolError as exc:
        typer.echo(f"{path}: {exc}", err=True)
        raise typer.Exit(code=1) from None
    for line in result.report(str(path)):
        typer.echo(line, err=not result.ok)
    if not result.ok:
        raise typer.Exit(code=1)


@audit_app.command("export")
def export(
    state: StateOption = Path("./station-state"),
    fmt: Annotated[str, typer.Option("--format", help="jsonl (JSON lines) or prov (PROV-O Turtle).")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output.")] = None,
) -> None:
    """Export the audit log as JSON lines or as PROV-O."""
    try:
        entries = read_audit(_log_of(state))
    except ProtocolError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None
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
