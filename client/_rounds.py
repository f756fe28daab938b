"""How a researcher sees a federated run: one row per round, the global and per-station metrics."""

from __future__ import annotations

from typing import Any

from rich.table import Table

__all__ = ["rounds_table"]

# Metrics shown first when a round reports them; others follow alphabetically.
_PREFERRED = ("val_accuracy", "accuracy", "val_loss", "loss")
_BOOKKEEPING = {"stations", "failures", "num_examples"}


def _metric_names(rounds: list[dict[str, Any]]) -> list[str]:
    names = {name for row in rounds for name in row.get("metrics") or {} if name not in _BOOKKEEPING}
    return [name for name in _PREFERRED if name in names] + sorted(names - set(_PREFERRED))


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


def rounds_table(run: dict[str, Any]) -> Table:
    """A table of a run's rounds (``GET /trains/{id}/rounds``) with its status in the title."""
    rounds = run.get("rounds") or []
    metrics = _metric_names(rounds)
    title = f"Federated run ({run['strategy']}): {run['status']}, round {run['current_round']} of {run['total_rounds']}"
    if run.get("reason"):
        title += f" — {run['reason']}"
    table = Table(title=title, title_justify="left", title_style="bold")
    dropped = any(row.get("dropped") for row in rounds)
    table.add_column("round", justify="right")
    table.add_column("stations", justify="right")
    for name in metrics:
        table.add_column(name, justify="right")
    table.add_column("examples", justify="right")
    table.add_column("upload", justify="right")
    if dropped:
        table.add_column("dropped")
    for row in rounds:
        values = row.get("metrics") or {}
        contributed = row.get("contributed") or []
        cells = [
            str(row["number"]),
            f"{len(contributed)}/{len(row.get('asked') or [])}" if row["status"] != "open" else "running",
            *(f"{values[name]:.3f}" if name in values else "" for name in metrics),
            f"{values.get('num_examples', 0):.0f}",
            _size(int(row.get("bytes_up") or 0)),
        ]
        if dropped:
            cells.append("; ".join(f"{station}: {reason}" for station, reason in (row.get("dropped") or {}).items()))
        table.add_row(*cells)
    return table
