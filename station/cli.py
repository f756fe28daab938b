"""``trainyard station ...``: synthesise, enrol, harvest, publish and run a station.

The client's ``trainyard`` CLI mounts :data:`app`; this module adds no console script.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from protocol import CollectionSummary, ProtocolError, utc_now

from .agent import HubError, enrol, publish_collections, run_agent
from .audit import append_audit
from .collections import COLLECTION_FILE, read_collection_config
from .config import ExecutorName, StationSettings
from .executors import ExecutorError, SandboxExecutor, executor_for
from .executors.sandbox import UNISOLATED_WARNING
from .indexer import DicomIndex, index_collection, iter_dicom_paths, pseudonym_for_patient_id
from .state import CollectionRecord, StationState
from .summary import summarise_collection
from .synthetic import write_synthetic_collection

__all__ = ["app"]

app = typer.Typer(name="station", help="Run a Trainyard station next to the images.", no_args_is_help=True)
_console = Console()
_errors = Console(stderr=True)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_SKIPPED_SHOWN = 20

StateOption = Annotated[Path, typer.Option("--state", help="The station's state directory.")]


def _check_slug(value: str, option: str) -> str:
    if not _SLUG.match(value):
        raise typer.BadParameter(
            f"{value!r} is not a slug: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
            param_hint=option,
        )
    return value


def _enrolled_state(state_dir: Path) -> StationState:
    state = StationState(state_dir)
    if not state.identity_file.is_file():
        raise typer.BadParameter(
            f"{state_dir} holds no enrolled station: run `trainyard station enrol` first", param_hint="--state"
        )
    return state


def _fail(message: str) -> typer.Exit:
    _errors.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the synthetic DICOM files to.")],
    site_index: Annotated[int, typer.Option("--site-index", min=0, help="0 SIEMENS, 1 GE, 2 Philips.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same files.")] = 0,
    patients: Annotated[int, typer.Option("--patients", min=1, max=10_000)] = 16,
) -> None:
    """Write a realistic synthetic DICOM collection of one site."""
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} exists and is not a folder", param_hint="OUT")
    written = write_synthetic_collection(out, site_index=site_index, seed=seed, patients=patients)
    _console.print(
        f"wrote {written.instances} instances in {written.series} series, {written.studies} studies, "
        f"{written.patients} patients to {out}"
    )


@app.command(name="enrol")
def enrol_station(
    state: StateOption,
    hub: Annotated[str, typer.Option("--hub", help="The hub's base URL, e.g. http://127.0.0.1:8000.")],
    name: Annotated[str, typer.Option("--name", help="The station's slug.")],
    token: Annotated[str, typer.Option("--token", help="The one-time enrolment token from the hub admin.")],
) -> None:
    """Enrol this station at a hub and keep its identity in the state directory."""
    _check_slug(name, "--name")
    if not hub.startswith(("http://", "https://")):
        raise typer.BadParameter("the hub URL must start with http:// or https://", param_hint="--hub")
    if len(token) < 16:
        raise typer.BadParameter("an enrolment token has at least 16 characters", param_hint="--token")
    station_state = StationState(state)
    if station_state.identity_file.is_file():
        enrolled = station_state.read_identity()
        raise typer.BadParameter(f"{state} is already enrolled as {enrolled.name!r}", param_hint="--state")
    try:
        identity = enrol(state=station_state, hub_url=hub.rstrip("/"), name=name, token=token)
    except HubError as exc:
        raise _fail(str(exc)) from None
    _console.print(f"enrolled station [bold]{identity.name}[/bold] (id {identity.station_id}) at {identity.hub_url}")


def _summary_table(collection: str, summary: CollectionSummary) -> Table:
    table = Table(title=f"{collection} (k = {summary.k}; suppressed counts shown as '<k')")
    table.add_column("what")
    table.add_column("count", justify="right")

    def shown(count: int | None) -> str:
        return f"<{summary.k}" if count is None else str(count)

    for label, count in (
        ("subjects", summary.subjects),
        ("studies", summary.studies),
        ("series", summary.series),
        ("instances", summary.instances),
    ):
        table.add_row(label, shown(count))
    for label, values in (
        ("modality", summary.modalities),
        ("body part", summary.body_parts),
        ("manufacturer", summary.manufacturers),
        ("sex", summary.sexes),
        ("age band", summary.age_bands),
    ):
        for value, count in sorted(values.items()):
            table.add_row(f"{label}: {value} (subjects)", shown(count))
    if summary.min_typical_age is not None:
        table.add_row("typical age (5th-95th percentile)", f"{summary.min_typical_age}-{summary.max_typical_age}")
    for flag, count in summary.quality.items():
        table.add_row(f"quality: {flag.replace('_', ' ')} (series)", shown(count))
    for name, numeric in summary.ranges.items():
        spread = f"{numeric.low:g} / {numeric.median:g} / {numeric.high:g} {numeric.unit}"
        table.add_row(f"{name.replace('_', ' ')} p5 / median / p95 ({numeric.subjects} subjects)", spread)
    for name, percent in summary.coverage.items():
        table.add_row(f"coverage: {name.replace('_', ' ')}", f"{percent:g} %")
    return table


@app.command()
def harvest(
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, dir_okay=True, help="Folder with the DICOM files.")
    ],
    state: StateOption,
    collection: Annotated[str, typer.Option("--collection", help="The collection's slug.")],
    title: Annotated[
        str | None, typer.Option("--title", help="A human-readable title (else collection.toml's).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            exists=True,
            dir_okay=False,
            help="The collection.toml (rule and metadata); default: FOLDER/collection.toml when present.",
        ),
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Write every skipped file and its reason (TSV) here.")
    ] = None,
) -> None:
    """Index a folder of DICOM files as a collection (incrementally) and show its disclosure-controlled summary."""
    _check_slug(collection, "--collection")
    config_file = config if config is not None else folder / COLLECTION_FILE
    try:
        described = read_collection_config(config_file) if config_file.is_file() else None
    except ProtocolError as exc:
        raise _fail(str(exc)) from None
    title = title if title is not None else (described.title if described else None)
    if title is None or not title.strip() or len(title) > 300:
        raise typer.BadParameter(
            "the title must have 1 to 300 characters (--title, or title in collection.toml)", param_hint="--title"
        )
    if description is None:
        description = (described.description if described else None) or ""
    root = described.rule.folder if described else folder
    rule = described.rule if described else None
    settings = StationSettings(state_dir=state)
    station_state = StationState(state)
    station_state.ensure()
    secret = station_state.load_or_create_pseudonym_key()
    total = sum(1 for _ in iter_dicom_paths(root))
    with DicomIndex(station_state.index_file) as index:
        with Progress(
            TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=_console
        ) as progress:
            task = progress.add_task("index", total=total)
            report = index_collection(
                root,
                index,
                collection=collection,
                secret=secret,
                on_progress=lambda _path, seen: progress.update(task, completed=seen),
                workers=settings.harvest_workers,
                exclude=rule.excludes if rule else None,
                rule_key=f"{rule.modality}|{rule.body_part}" if rule else "",
            )
        summary = summarise_collection(index, collection=collection, k=settings.k_anonymity)
    metadata = described.metadata.model_dump(mode="json") if described else {}
    station_state.write_collection(
        CollectionRecord(
            slug=collection,
            title=title,
            description=description,
            root=str(root.resolve()),
            indexed_at=utc_now(),
            metadata=metadata,
        )
    )
    _console.print(_summary_table(collection, summary))
    _console.print(
        f"indexed {report.indexed} files, unchanged {report.unchanged}, removed {report.removed}, "
        f"skipped {len(report.skipped)}"
    )
    if report_file is not None:
        lines = [f"{skipped.path}\t{skipped.reason}\n" for skipped in report.skipped]
        report_file.write_text("path\treason\n" + "".join(lines), encoding="utf-8")
        _console.print(f"wrote the skipped-file report to {report_file}")
    for skipped in report.skipped[:_SKIPPED_SHOWN]:
        _console.print(f"  skipped {skipped.path}: {skipped.reason}")
    if len(report.skipped) > _SKIPPED_SHOWN:
        _console.print(f"  ... and {len(report.skipped) - _SKIPPED_SHOWN} more")


@app.command()
def withdraw(
    subject: Annotated[str, typer.Argument(help="The subject's local Patient ID (as in the DICOM files).")],
    state: StateOption,
    publish_now: Annotated[
        bool, typer.Option("--publish/--no-publish", help="Republish the affected collections' summaries.")
    ] = True,
) -> None:
    """Withdraw a subject (GDPR): remove them from the index, from every later harvest and train, and republish."""
    if not subject.strip():
        raise typer.BadParameter("the Patient ID is empty", param_hint="SUBJECT")
    station_state = StationState(state)
    if not station_state.index_file.is_file():
        raise _fail(f"{state} has no index yet: nothing to withdraw from")
    secret = station_state.load_or_create_pseudonym_key()
    with DicomIndex(station_state.index_file) as index:
        removed = index.withdraw(subject, secret=secret)
    pseudonym = pseudonym_for_patient_id(subject, secret)
    append_audit(station_state.audit_file, "subject.withdrawn", subject=pseudonym[:16], collections=sorted(removed))
    if not removed:
        _console.print("no indexed file belongs to that subject; later harvests will keep them out")
    for collection, instances in sorted(removed.items()):
        _console.print(f"withdrew {instances} instance(s) from {collection}")
        record = station_state.read_collection(collection)
        if record is not None:  # the collection changed: its version (what provenance records) moves on
            station_state.write_collection(dataclasses.replace(record, indexed_at=utc_now()))
    if removed and publish_now:
        try:
            identity = station_state.read_identity()
        except (OSError, ValueError, KeyError):
            identity = None
        if identity is None:
            _console.print("not enrolled: publish the collections when the station is enrolled")
            return
        try:
            published = publish_collections(StationSettings(state_dir=state))
        except (HubError, ProtocolError) as exc:
            raise _fail(f"withdrawn here, but republishing failed (run `publish` again): {exc}") from None
        for collection_id in published:
            _console.print(f"republished {collection_id}")


@app.command()
def api(
    state: StateOption,
    host: Annotated[str, typer.Option(help="Where to listen: keep it on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port.")] = 8700,
) -> None:
    """Serve the operator's approval queue as HTTP on this machine (the token is in STATE/operator.token)."""
    import uvicorn

    from .api import create_station_api, operator_token

    station_state = StationState(state)
    station_state.ensure()
    operator_token(station_state.root)
    if host not in {"127.0.0.1", "localhost", "::1"}:
        _errors.print(f"[bold yellow]listening on {host}: the queue is reachable beyond this machine[/bold yellow]")
    token_file = station_state.root / "operator.token"
    _console.print(f"station API on http://{host}:{port} (operator token: {token_file}); Ctrl-C stops it")
    uvicorn.run(create_station_api(station_state.root), host=host, port=port, log_level="warning")


@app.command()
def publish(state: StateOption) -> None:
    """Publish every harvested collection's signed description to the hub."""
    station_state = _enrolled_state(state)
    if not station_state.list_collections():
        raise typer.BadParameter(f"{state} holds no harvested collection: run `harvest` first", param_hint="--state")
    try:
        published = publish_collections(StationSettings(state_dir=state))
    except (HubError, ProtocolError) as exc:
        raise _fail(str(exc)) from None
    for collection_id in published:
        _console.print(f"published {collection_id}")


@app.command()
def run(
    state: StateOption,
    executor: Annotated[
        ExecutorName | None, typer.Option("--executor", help="auto, sandbox, docker or kubernetes.")
    ] = None,
    allow_unisolated: Annotated[
        bool, typer.Option("--allow-unisolated", help="DEVELOPMENT ONLY: run trains unisolated without bubblewrap.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Poll once, answer at most one job, then exit.")] = False,
    gpus: Annotated[
        int | None,
        typer.Option(min=0, max=16, help="GPUs one train may have (Docker or Kubernetes executor); default none."),
    ] = None,
    gpu_device: Annotated[
        list[str] | None, typer.Option(help="A GPU device id Docker may hand out (repeat); default any.")
    ] = None,
) -> None:
    """Run the station agent: long-poll the hub for jobs and answer them."""
    _enrolled_state(state)
    overrides: dict[str, object] = {"state_dir": state}
    if gpus is not None:
        overrides["gpus"] = gpus
    if gpu_device:
        overrides["gpu_devices"] = tuple(gpu_device)
    if executor is not None:
        overrides["executor"] = executor
    if allow_unisolated:
        overrides["allow_unisolated"] = True
    settings = StationSettings.model_validate(overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        chosen = executor_for(settings)
    except ExecutorError as exc:
        raise _fail(str(exc)) from None
    if isinstance(chosen, SandboxExecutor):
        problem = chosen.isolation_error()
        if problem is not None and not settings.allow_unisolated:
            raise _fail(
                f"{problem}; install bubblewrap, use --executor docker, or (development only) --allow-unisolated"
            )
        if problem is not None:
            _errors.print(f"[bold red]{UNISOLATED_WARNING}[/bold red]")
    _console.print(f"station agent running with the {chosen.name} executor; Ctrl-C stops it")
    try:
        run_agent(settings, once=once, executor=chosen)
    except KeyboardInterrupt:
        _console.print("stopped")


from .approvals_cli import approvals_app as _approvals_app  # noqa: E402  (command groups of their own modules)
from .approvals_cli import review_app as _review_app  # noqa: E402
from .audit_cli import audit_app as _audit_app  # noqa: E402
from .deid_cli import deidentify_command as _deidentify_command  # noqa: E402
from .policy_cli import policy_app as _policy_app  # noqa: E402
from .stewards_cli import stewards_app as _stewards_app  # noqa: E402

app.add_typer(_audit_app)
app.add_typer(_stewards_app)
app.add_typer(_policy_app)
app.add_typer(_approvals_app)
app.add_typer(_review_app)
app.command("deidentify")(_deidentify_command)
