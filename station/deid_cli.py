"""``trainyard station deidentify SRC DST``: de-identified copies of DICOM files (PS3.15 Annex E)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from pydicom import dcmread
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .deid import DeidOptions, annex_e_table, deidentify_dataset
from .indexer import iter_dicom_paths
from .state import StationState

__all__ = ["deidentify_command"]

_console = Console()


def deidentify_command(
    source: Annotated[Path, typer.Argument(help="A folder of DICOM files.", exists=True, file_okay=False)],
    target: Annotated[Path, typer.Argument(help="Where the de-identified copies go (same sub-folders).")],
    state: Annotated[Path, typer.Option("--state", help="The station's state (its secret keys the UIDs).")] = Path(
        "./station-state"
    ),
    retain_dates_modified: Annotated[
        bool, typer.Option("--retain-dates-modified", help="Shift dates per patient instead of removing them.")
    ] = False,
    clean_descriptors: Annotated[
        bool, typer.Option("--clean-descriptors", help="Clean descriptors instead of the basic action.")
    ] = False,
    retain_device_identity: Annotated[
        bool, typer.Option("--retain-device-identity", help="Keep device identity attributes.")
    ] = False,
) -> None:
    """De-identify every DICOM file under SOURCE into TARGET (the Basic Profile plus the options chosen)."""
    if target.resolve().is_relative_to(source.resolve()):
        raise typer.BadParameter("the target must not lie inside the source", param_hint="TARGET")
    options = DeidOptions(
        retain_dates_modified=retain_dates_modified,
        clean_descriptors=clean_descriptors,
        retain_device_identity=retain_device_identity,
    )
    station_state = StationState(state)
    station_state.ensure()
    key = station_state.load_or_create_pseudonym_key()
    paths = list(iter_dicom_paths(source))
    skipped: list[tuple[Path, str]] = []
    written = 0
    with Progress(TextColumn("de-identifying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as progress:
        task = progress.add_task("deid", total=len(paths))
        for path in paths:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dataset = dcmread(path)
                    deidentify_dataset(dataset, options, key=key)
                    out = target / path.relative_to(source)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    dataset.save_as(out)
                written += 1
            except Exception as exc:  # a broken file is reported, never fatal
                skipped.append((path, type(exc).__name__))
            progress.update(task, advance=1)
    _console.print(f"{annex_e_table()['edition']}: wrote {written} files to {target}, skipped {len(skipped)}")
    for path, reason in skipped[:20]:
        _console.print(f"  skipped {path}: {reason}")
