"""``trainyard station policy ...``: which trains this station accepts (allow-lists)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from protocol import PolicyError

from .policy import GATE_MODES, AcceptancePolicy, read_policy, write_policy

__all__ = ["policy_app"]

policy_app = typer.Typer(
    name="policy",
    help="Allow-lists of train bundles, images, researcher keys and projects; the code and release gates.",
    no_args_is_help=True,
)
StateOption = Annotated[Path, typer.Option("--state", help="The station's state directory.")]
KindArgument = Annotated[str, typer.Argument(help="bundles, images, researcher_keys or projects.")]


def _load(state: Path) -> AcceptancePolicy:
    try:
        return read_policy(state)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None


def _kind(kind: str) -> str:
    if kind not in AcceptancePolicy.kinds():
        raise typer.BadParameter(f"use one of {', '.join(AcceptancePolicy.kinds())}", param_hint="KIND")
    return kind


@policy_app.command("show")
def show(state: StateOption = Path("./station-state")) -> None:
    """Print the allow-lists (an empty list allows everything of its kind) and the gates."""
    policy = _load(state)
    for kind in AcceptancePolicy.kinds():
        values = getattr(policy, kind)
        typer.echo(f"{kind}: {', '.join(values) if values else '(any)'}")
    for gate in AcceptancePolicy.gates():
        typer.echo(f"{gate} gate: {getattr(policy, f'{gate}_gate')}")


@policy_app.command("gate")
def gate(
    name: Annotated[str, typer.Argument(help="code (which trains run) or release (which results leave).")],
    mode: Annotated[str, typer.Argument(help="auto or manual (the 'trainyard station approvals' queue).")],
    state: StateOption = Path("./station-state"),
) -> None:
    """Make a gate automatic or manual."""
    if name not in AcceptancePolicy.gates():
        raise typer.BadParameter(f"use one of {', '.join(AcceptancePolicy.gates())}", param_hint="NAME")
    if mode not in GATE_MODES:
        raise typer.BadParameter(f"use one of {', '.join(GATE_MODES)}", param_hint="MODE")
    policy = _load(state)
    setattr(policy, f"{name}_gate", mode)
    write_policy(state, policy)
    typer.echo(f"{name} gate: {mode}")


@policy_app.command("allow")
def allow(
    kind: KindArgument,
    value: Annotated[str, typer.Argument(help="What to allow.")],
    state: StateOption = Path("./station-state"),
) -> None:
    """Add a value to an allow-list (from then on, only listed values of that kind are accepted)."""
    policy = _load(state)
    values = getattr(policy, _kind(kind))
    if value not in values:
        values.append(value)
    write_policy(state, policy)
    typer.echo(f"{kind}: allowed {value}")


@policy_app.command("revoke")
def revoke(
    kind: KindArgument,
    value: Annotated[str, typer.Argument(help="What to remove.")],
    state: StateOption = Path("./station-state"),
) -> None:
    """Remove a value from an allow-list."""
    policy = _load(state)
    values = getattr(policy, _kind(kind))
    if value not in values:
        typer.echo(f"{value} is not on the {kind} list", err=True)
        raise typer.Exit(code=1)
    values.remove(value)
    write_policy(state, policy)
    typer.echo(f"{kind}: revoked {value}")
