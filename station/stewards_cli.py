"""``trainyard station stewards ...``: which steward keys this station trusts to sign grants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from protocol import PolicyError, ProtocolError

from .stewards import add_steward, read_stewards, remove_steward

__all__ = ["stewards_app"]

stewards_app = typer.Typer(
    name="stewards",
    help="The data stewards whose signed grants this station accepts (their keys never come from the hub).",
    no_args_is_help=True,
)
StateOption = Annotated[Path, typer.Option("--state", help="The station's state directory.")]
_console = Console()


@stewards_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The steward's username at the hub.")],
    key: Annotated[str, typer.Option("--key", help="The steward's Ed25519 public key (base64url), got from them.")],
    state: StateOption = Path("./station-state"),
) -> None:
    """Trust a steward's signing key: their grants let jobs run at this station."""
    try:
        steward = add_steward(state, name, key)
    except (ProtocolError, PolicyError) as exc:
        typer.echo(f"cannot add steward {name!r}: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"trusting steward {steward.name!r} with key {steward.key_id}")


@stewards_app.command("list")
def list_stewards(state: StateOption = Path("./station-state")) -> None:
    """Show the trusted steward keys."""
    try:
        stewards = read_stewards(state)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    if not stewards:
        typer.echo("no steward trusted yet: every job will be refused ('stewards add NAME --key KEY')")
        return
    table = Table("steward", "key id", "added")
    for steward in stewards:
        table.add_row(steward.name, steward.key_id, steward.added_at)
    _console.print(table)


@stewards_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The steward's username.")],
    state: StateOption = Path("./station-state"),
) -> None:
    """Stop trusting every key of a steward; their grants no longer let jobs run."""
    try:
        removed = remove_steward(state, name)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    if not removed:
        typer.echo(f"no steward {name!r} is trusted here", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"no longer trusting steward {name!r} ({removed} key(s))")
