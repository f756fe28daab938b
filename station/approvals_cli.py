"""``trainyard station approvals ...``: the operator's queue of trains and results waiting for a person."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .approvals import Approvals, Gate, operator_decision
from .state import StationState

__all__ = ["approvals_app"]

approvals_app = typer.Typer(
    name="approvals",
    help="Trains whose code waits for approval and results that wait for release (manual gates).",
    no_args_is_help=True,
)
StateOption = Annotated[Path, typer.Option("--state", help="The station's state directory.")]
JobArgument = Annotated[str, typer.Argument(help="The job (see 'trainyard station approvals list').")]
_console = Console()
_PREVIEW_BYTES = 4000


def _queue(state: Path) -> Approvals:
    return Approvals(StationState(state).root / "approvals")


@approvals_app.command("list")
def list_held(state: StateOption = Path("./station-state")) -> None:
    """What waits for you: each job, its gate, the researcher, project, collection and code."""
    held = _queue(state).all()
    if not held:
        _console.print("nothing waits for you")
        return
    table = Table("job", "gate", "since", "researcher", "project", "collection", "code", "decision")
    for item in held:
        row = item.summary()
        code = row["bundle"][:19] + (f" + image {row['image'][:19]}" if row["image"] else "")
        table.add_row(
            row["job"], row["gate"], row["held_at"][:19], row["researcher"], row["project"][:8], row["collection"],
            code, row["decision"],
        )  # fmt: skip
    _console.print(table)


@approvals_app.command("show")
def show(job: JobArgument, state: StateOption = Path("./station-state")) -> None:
    """One held job: why it waits; for a result, the plain files that would leave (the start of each)."""
    queue = _queue(state)
    held = queue.get(job)
    if held is None:
        typer.echo(f"no job {job!r} waits at this station", err=True)
        raise typer.Exit(code=1)
    typer.echo(json.dumps(held.summary(), indent=2))
    manifest = held.job.signed_manifest.manifest
    typer.echo(f"parameters: {json.dumps(manifest.parameters)}")
    for path in queue.files(job):
        data = path.read_bytes()
        typer.echo(f"--- {path.name} ({len(data)} bytes)")
        try:
            typer.echo(data[:_PREVIEW_BYTES].decode("utf-8") + (" …" if len(data) > _PREVIEW_BYTES else ""))
        except UnicodeDecodeError:
            typer.echo("(binary: tensors are checked by the disclosure rules)")


def _decide(state: Path, job: str, *, approve: bool, comment: str | None) -> None:
    try:
        held = operator_decision(StationState(state).root, job, approve=approve, by=getpass.getuser(), comment=comment)
    except (KeyError, ValueError) as exc:
        typer.echo(str(exc).strip("'\""), err=True)
        raise typer.Exit(code=1) from None
    what = "the train's code" if held.gate == Gate.CODE else "the result"
    verb = "approved" if approve else "denied"
    typer.echo(f"{verb} {what} of job {job}; the running agent carries it out within a poll")


@approvals_app.command("approve")
def approve(
    job: JobArgument,
    comment: Annotated[str | None, typer.Option(help="A note for the audit log.")] = None,
    state: StateOption = Path("./station-state"),
) -> None:
    """Approve: the train's code (added to the allow-lists, so later jobs of it pass) or the release."""
    _decide(state, job, approve=True, comment=comment)


@approvals_app.command("deny")
def deny(
    job: JobArgument,
    reason: Annotated[str, typer.Option(help="Why, in words for the researcher.")],
    state: StateOption = Path("./station-state"),
) -> None:
    """Deny: the job fails with your reason; a withheld result never leaves."""
    _decide(state, job, approve=False, comment=reason)
