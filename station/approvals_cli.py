"""``trainyard station approvals ...``: the operator's queue of trains and results waiting for a person."""

from __future__ import annotations

import getpass
import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .approvals import Approvals, Gate, operator_decision
from .audit import append_audit
from .state import StationState

__all__ = ["approvals_app", "review_app"]

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


review_app = typer.Typer(
    name="review",
    help="Results withheld by the disclosure rules: what broke which rule, for the steward to read (they never leave).",
    no_args_is_help=True,
)


def _withheld(state: Path) -> list[tuple[Path, dict[str, str]]]:
    root = StationState(state).root / "review"
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            found.append((folder, json.loads((folder / "withheld.json").read_text("utf-8"))))
        except (OSError, ValueError):
            continue
    return found


@review_app.command("list")
def review_list(state: StateOption = Path("./station-state")) -> None:
    """Every withheld result: the job, the output and the rule it broke."""
    withheld = _withheld(state)
    if not withheld:
        _console.print("no result is withheld")
        return
    table = Table("job", "output", "rule", "why")
    for _folder, about in withheld:
        table.add_row(
            about.get("job_id", "?"), about.get("output", "?"), about.get("rule", "?"), about.get("reason", "")
        )
    _console.print(table)


@review_app.command("show")
def review_show(job: JobArgument, state: StateOption = Path("./station-state")) -> None:
    """One withheld result: why, and the start of each file the train wrote."""
    for folder, about in _withheld(state):
        if about.get("job_id") == job:
            typer.echo(json.dumps(about, indent=2))
            for path in sorted(folder.iterdir()):
                if path.name == "withheld.json":
                    continue
                data = path.read_bytes()
                typer.echo(f"--- {path.name} ({len(data)} bytes)")
                try:
                    typer.echo(data[:_PREVIEW_BYTES].decode("utf-8"))
                except UnicodeDecodeError:
                    typer.echo("(binary)")
            return
    typer.echo(f"no withheld result of job {job!r}", err=True)
    raise typer.Exit(code=1)


@review_app.command("discard")
def review_discard(job: JobArgument, state: StateOption = Path("./station-state")) -> None:
    """Delete a withheld result once reviewed (audited)."""
    for folder, about in _withheld(state):
        if about.get("job_id") == job:
            shutil.rmtree(folder)
            append_audit(
                StationState(state).audit_file, "result.discarded", actor=getpass.getuser(), role="operator", job_id=job
            )
            typer.echo(f"discarded the withheld result of job {job}")
            return
    typer.echo(f"no withheld result of job {job!r}", err=True)
    raise typer.Exit(code=1)
