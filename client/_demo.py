"""``trainyard demo``: a hub and three stations on loopback, and a researcher's whole flow.

Synthetic DICOM collections → harvest and publish → catalog search → a project with its
intended use (DUO) → screening → access request → steward digests and approvals with signed
grants → the cohort-stats train at every station → results fetched, verified and decrypted on
the researcher's side → a federated training run (fed-bodypart, FedAvg) whose rounds and
per-round validation accuracy are shown, ending in the model registry.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from protocol import KeyPair, TrainyardError, generate_key_pair, save_key_pair, utc_now

from ._client import TrainyardClient
from ._federation import FederationError, LocalFederation
from ._rounds import rounds_table

__all__ = ["DEMO_SITES", "DemoResult", "default_fl_train_dir", "default_train_dir", "run_demo"]


@dataclass(frozen=True)
class DemoSite:
    """One fictional hospital of the demo federation."""

    station: str
    collection: str
    title: str


_COLLECTION_TOML = """description = "Synthetic thorax CT and neuro MR of {title}."
keywords = ["synthetic", "thorax", "neuro"]
data_use = ["{duo}"]
annotations = ["label"]
contact = {{ name = "Imaging biobank", email = "biobank@{station}.example" }}

[[disease]]
system = "ICD-10"
code = "{code}"
label = "{label}"
"""
_DEMO_METADATA = {  # station → (DUO condition, ICD-10 code, label)
    "northvale": ("DUO:0000006", "C34.1", "Malignant neoplasm of upper lobe, bronchus or lung"),
    "riverside": ("DUO:0000042", "J44.9", "Chronic obstructive pulmonary disease, unspecified"),
    "lakeshore": ("DUO:0000006", "C34.9", "Malignant neoplasm of bronchus or lung, unspecified"),
}

DEMO_SITES = (
    DemoSite("northvale", "thorax-neuro", "Northvale University Hospital — thorax CT and neuro MR"),
    DemoSite("riverside", "thorax-neuro", "Riverside Medical Centre — thorax CT and neuro MR"),
    DemoSite("lakeshore", "thorax-neuro", "Lakeshore Clinic — thorax CT and neuro MR"),
)
_RESEARCHER = "rosa"
# health/medical research (the collections permit HMB or GRU) and methods development (the model).
_DEMO_USE = ["DUO:0000006", "DUO:0000031"]
_JOB_TIMEOUT_S = 300.0


@dataclass
class DemoResult:
    """What the demo's researcher ends up with."""

    state_dir: Path
    hub_url: str
    search_hits: list[dict[str, Any]] = field(default_factory=list)
    job_status: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    fl_run: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def default_train_dir() -> Path:
    """The cohort-stats example train of this source tree."""
    return Path(__file__).resolve().parents[1] / "examples" / "trains" / "cohort-stats"


def default_fl_train_dir() -> Path:
    """The fed-bodypart federated example train of this source tree."""
    return Path(__file__).resolve().parents[1] / "examples" / "trains" / "fed-bodypart"


def _wait_for_rounds(
    client: TrainyardClient, federation: LocalFederation, train_id: str, console: Console
) -> dict[str, Any]:
    """Follow a federated run round by round until it ends; return its rounds."""
    deadline = time.monotonic() + _JOB_TIMEOUT_S
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    )
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as progress:
        run = client.read_train_rounds(train_id)
        task = progress.add_task("federated rounds", total=run["total_rounds"])
        while True:
            run = client.read_train_rounds(train_id)
            done = [row for row in run["rounds"] if row["status"] != "open"]
            last = (done[-1]["metrics"] if done else {}).get("val_accuracy")
            said = f", last val_accuracy {last:.3f}" if last is not None else ""
            progress.update(
                task, completed=len(done), description=f"round {run['current_round']} ({run['status']}{said})"
            )
            if run["status"] != "running":
                return run
            if time.monotonic() > deadline:
                raise FederationError(f"the federated run did not finish within {_JOB_TIMEOUT_S:.0f} s")
            federation.check_alive()
            time.sleep(0.3)


def _prepare_state(state_dir: Path, console: Console) -> None:
    if state_dir.exists():
        if not (state_dir / "demo.json").exists():
            raise FederationError(f"{state_dir} exists and is not a demo state; choose another --state")
        console.print(f"[dim]Replacing the earlier demo state in {state_dir}[/dim]")
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    (state_dir / "demo.json").write_text(json.dumps({"kind": "trainyard-demo"}), encoding="utf-8")


def _prepare_station(
    federation: LocalFederation,
    site: DemoSite,
    index: int,
    *,
    seed: int,
    token: str,
    patients: int,
    steward_key: str,
) -> str:
    # The operator trusts the station's own steward: only grants this key signs let jobs run.
    federation.prepare_station(
        site.station,
        token=token,
        collection=site.collection,
        title=site.title,
        site_index=index,
        seed=seed,
        patients=patients,
        steward=(f"steward-{site.station}", steward_key),
        collection_toml=_collection_toml(site),
    )
    return site.station


def _collection_toml(site: DemoSite) -> str | None:
    if site.station not in _DEMO_METADATA:
        return None
    duo, code, label = _DEMO_METADATA[site.station]
    return _COLLECTION_TOML.format(title=site.title, duo=duo, station=site.station, code=code, label=label)


def _step(console: Console, text: str) -> None:
    console.print(f"\n[bold cyan]▶ {text}[/bold cyan]")


def _search_table(hits: list[dict[str, Any]]) -> Table:
    table = Table(title="Catalog search: modality CT", title_justify="left")
    table.add_column("collection", no_wrap=True)
    for column in ("subjects", "studies", "series"):
        table.add_column(column, justify="right")
    table.add_column("modalities")
    table.add_column("manufacturer")

    def _values(items: list[dict[str, Any]]) -> str:
        return ", ".join(f"{item['value']} ({item['count'] if item['count'] is not None else '<k'})" for item in items)

    for hit in hits:
        counts = [str(hit[key]) if hit[key] is not None else "<k" for key in ("subjects", "studies", "series")]
        manufacturers = ", ".join(item["value"] for item in hit["manufacturers"])
        table.add_row(hit["id"], *counts, _values(hit["modalities"]), manufacturers)
    return table


def _print_screening(report: dict[str, Any], console: Console) -> None:
    problems = [finding for finding in report["findings"] if finding["severity"] == "problem"]
    verdict = "[green]passed[/green]" if report["passed"] else f"[red]{len(problems)} problem(s)[/red]"
    console.print(f"  screening before submitting: {verdict}")
    for finding in report["findings"]:
        console.print(f"    {finding['severity']} {finding['collection']}: {finding['message']}", highlight=False)


def _history_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title="The request's history", title_justify="left")
    for column in ("at", "who", "what", "from → to"):
        table.add_column(column)
    for event in events:
        where = f" ({event['station']})" if event.get("station") else ""
        who = event["actor"] if event["role"] in event["actor"] else f"{event['actor']} ({event['role']})"
        table.add_row(
            event["at"][11:19],
            who,
            event["action"].replace("_", " ") + where,
            f"{event['from_state'] or '-'} → {event['to_state']}".replace("_", " "),
        )
    return table


def _wait_for_jobs(
    client: TrainyardClient, federation: LocalFederation, train_id: str, console: Console
) -> dict[str, str]:
    done = {"succeeded", "failed", "cancelled"}
    deadline = time.monotonic() + _JOB_TIMEOUT_S
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    )
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as progress:
        train = client.read_train(train_id)
        task = progress.add_task("cohort-stats running at the stations", total=len(train["jobs"]))
        while True:
            train = client.read_train(train_id)
            statuses = {job["station"]: job["status"] for job in train["jobs"]}
            finished = sum(status in done for status in statuses.values())
            running = ", ".join(f"{station}: {status}" for station, status in sorted(statuses.items()))
            progress.update(task, completed=finished, description=f"cohort-stats — {running}")
            if finished == len(statuses):
                return statuses
            if time.monotonic() > deadline:
                raise FederationError(f"jobs did not finish within {_JOB_TIMEOUT_S:.0f} s: {statuses}")
            federation.check_alive()
            time.sleep(0.3)


def run_demo(
    state_dir: Path,
    *,
    seed: int = 7,
    executor: str = "sandbox",
    patients: int = 16,
    train_dir: Path | None = None,
    fl_train_dir: Path | None = None,
    console: Console | None = None,
    on_result: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """Run the whole federation flow once and leave its state in ``state_dir``.

    Parameters
    ----------
    state_dir
        Where the hub, the stations and the researcher keep their state.
    seed
        Seeds the synthetic collections, so two runs print the same statistics.
    executor
        The stations' executor: ``sandbox``, ``docker`` or ``auto``.
    """
    console = console or Console()
    train_dir = train_dir or default_train_dir()
    started = time.monotonic()
    _prepare_state(state_dir, console)
    admin_password = f"demo-admin-{seed}"
    passwords = {_RESEARCHER: f"demo-{_RESEARCHER}-{seed}"} | {
        f"steward-{site.station}": f"demo-steward-{site.station}-{seed}" for site in DEMO_SITES
    }
    credentials = {"admin": admin_password} | passwords
    credentials_path = state_dir / "credentials.json"
    credentials_path.write_text(json.dumps(credentials, indent=2), encoding="utf-8")
    credentials_path.chmod(0o600)

    with LocalFederation(state_dir) as federation:
        result = DemoResult(state_dir=state_dir, hub_url=federation.hub_url)
        _step(console, f"Starting the hub on {federation.hub_url}")
        federation.start_hub(admin_password=admin_password)
        admin = TrainyardClient(federation.hub_url)
        admin.login("admin", admin_password)
        for site in DEMO_SITES:
            steward = f"steward-{site.station}"
            admin.create_user(username=steward, password=passwords[steward], role="steward", station=site.station)
        admin.create_user(username=_RESEARCHER, password=passwords[_RESEARCHER], role="researcher")
        steward_keys: dict[str, KeyPair] = {}
        for site in DEMO_SITES:
            steward = f"steward-{site.station}"
            steward_keys[steward] = generate_key_pair()  # on the steward's own machine
            save_key_pair(steward_keys[steward], state_dir / "stewards" / steward / "keys")
            with TrainyardClient(federation.hub_url) as steward_client:
                steward_client.login(steward, passwords[steward])
                steward_client.update_keys(steward_keys[steward])
        console.print(f"  admin, researcher '{_RESEARCHER}' and one steward per station (with signing keys) created")

        _step(console, "Stations: synthesise DICOM, enrol, harvest headers, publish collections")
        tokens = [admin.create_enrolment_token(site.station) for site in DEMO_SITES]
        with ThreadPoolExecutor(max_workers=len(DEMO_SITES)) as pool:
            futures = [
                pool.submit(
                    _prepare_station,
                    federation,
                    site,
                    index,
                    seed=seed,
                    token=tokens[index],
                    patients=patients,
                    steward_key=steward_keys[f"steward-{site.station}"].signing_public,
                )
                for index, site in enumerate(DEMO_SITES)
            ]
            for future in futures:
                console.print(f"  [green]✓[/green] {future.result()} published its collection")
        for site in DEMO_SITES:
            federation.start_station(site.station, executor=executor)
        console.print(f"  station agents long-polling the hub (executor: {executor})")

        _step(console, f"Researcher '{_RESEARCHER}' creates keys on her machine and searches the catalog")
        keys = generate_key_pair()
        save_key_pair(keys, state_dir / "researcher" / "keys")
        researcher = TrainyardClient(federation.hub_url)
        researcher.login(_RESEARCHER, passwords[_RESEARCHER])
        researcher.update_keys(keys)
        result.search_hits = researcher.search_collections(modality="CT", min_subjects=5)
        console.print(_search_table(result.search_hits))
        if not result.search_hits:
            raise FederationError("the catalog search found no collection")
        faceted = researcher.search(disease=["C34"], purpose="DUO:0000006", first=5)
        console.print(
            f"  faceted: lung cancer (ICD-10 C34) collections usable for health research: {faceted['totalCount']} — "
            + ", ".join(f"{item['value']} ({item['count']})" for item in faceted["facets"]["disease"])
        )

        _step(console, "Project with its intended use (DUO), screening, access request")
        project = researcher.create_project(
            "Cohort overview and a body-part model for lung screening",
            "Describe age, sex and modality mix per site; train a chest-vs-abdomen CT classifier",
            data_use=_DEMO_USE,
            diseases=["C34"],
            end_date=(utc_now() + timedelta(days=365)).date(),
        )
        console.print(
            f"  project {project['id'][:8]}: data use {', '.join(project['data_use'])}, "
            f"diseases {', '.join(project['diseases'])}, ends {project['end_date']}"
        )
        collection_ids = [hit["id"] for hit in result.search_hits]
        report = researcher.check_access_request(project_id=project["id"], collections=collection_ids)
        _print_screening(report, console)
        request = researcher.create_access_request(project_id=project["id"], collections=collection_ids)
        if request["status"] != "forwarded":
            raise FederationError(f"the access request was {request['status']}, not forwarded to the stewards")
        console.print(
            f"  request {request['id'][:8]}: {request['status']} → {len(request['decisions'])} decisions, "
            "one per station's steward"
        )

        _step(console, "Stewards read their digest and approve, signing grants on their own machines")
        for site in DEMO_SITES:
            steward = f"steward-{site.station}"
            with TrainyardClient(federation.hub_url) as approver:
                approver.login(steward, passwords[steward])
                digest = approver.read_steward_digest()
                waiting = ", ".join(f"{item['collection']} for {item['requester']}" for item in digest["waiting"])
                console.print(f"  {site.station}'s digest: {len(digest['waiting'])} decision(s) waiting ({waiting})")
                for item in digest["waiting"]:
                    pending = approver.read_access_request(item["access_request_id"])
                    decision = next(d for d in pending["decisions"] if d["id"] == item["decision_id"])
                    approver.approve_with_grant(
                        pending, decision, keys=steward_keys[steward], steward=steward, comment="Approved"
                    )
                    console.print(
                        f"  [green]✓[/green] {site.station}/{decision['collection']}: "
                        f"grant signed by {steward} (key {steward_keys[steward].key_id[:8]})"
                    )
        console.print(_history_table(researcher.read_access_request_events(request["id"])))

        _step(console, "Submitting the signed cohort-stats train")
        train = researcher.submit_train(
            train_dir, keys=keys, researcher=_RESEARCHER, project_id=project["id"], collections=collection_ids
        )
        console.print(f"  train {train['id'][:8]} → {len(train['jobs'])} jobs")
        result.job_status = _wait_for_jobs(researcher, federation, train["id"], console)

        _step(console, "Fetching, verifying and decrypting the results on the researcher's machine")
        for job in researcher.read_train(train["id"])["jobs"]:
            if job["status"] != "succeeded":
                reason = (job.get("failure") or {}).get("reason", "no reason given")
                console.print(f"  [red]✗[/red] {job['station']}: {job['status']} — {reason}")
                continue
            fetched = researcher.fetch_result(job["id"], keys=keys)
            result.results[job["station"]] = fetched.json_output("cohort.json")

        _step(console, "Federated training: fed-bodypart (chest vs abdomen CT), FedAvg across the stations")
        fl_train = researcher.submit_train(
            fl_train_dir or default_fl_train_dir(),
            keys=keys,
            researcher=_RESEARCHER,
            project_id=project["id"],
            collections=collection_ids,
        )
        console.print(f"  train {fl_train['id'][:8]}: round 1 → {len(fl_train['jobs'])} jobs, one per station")
        result.fl_run = _wait_for_rounds(researcher, federation, fl_train["id"], console)
        console.print(rounds_table(result.fl_run))
        if result.fl_run.get("model_id"):
            model = researcher.read_model(result.fl_run["model_id"])
            console.print(
                f"  model {model['name']} v{model['version']} ({model['size']} bytes of safetensors) is in the "
                f"registry with its provenance: trainyard models get {model['id']}"
            )
        researcher.close()
        admin.close()
    result.seconds = time.monotonic() - started
    if on_result:
        on_result(result)
    return result


def _fmt(value: Any) -> str:
    if value is None:
        return "<k"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_fmt(item)}" for key, item in value.items())
    return str(value)


def _total(values: list[Any]) -> str:
    """Sum across stations; a suppressed count makes the total a lower bound."""
    counts = [value for value in values if isinstance(value, int) and not isinstance(value, bool)]
    return str(sum(counts)) if len(counts) == len(values) else f"≥{sum(counts)}"


def _intensity(value: Any) -> str:
    if not isinstance(value, dict) or value.get("mean") is None:
        return _fmt(value)
    return f"{value['mean']:.1f} ± {value.get('sd') or 0:.1f} (n={_fmt(value.get('n_series'))})"


# cohort.json's sections in the order a researcher reads them; anything else follows as is.
_SECTIONS = (
    ("subjects_by_sex", "Subjects by sex"),
    ("subjects_by_age_band", "Subjects by age band"),
    ("series_by_modality", "Series by modality"),
    ("instances_by_modality", "Instances by modality"),
    ("mean_intensity_by_modality", "Mean intensity per series, by modality (mean ± sd over series)"),
)
_HIDDEN = {"train", "files", "station", "collection", "k"}


def _station_table(title: str, stations: list[str], *, total: bool) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("")
    for station in stations:
        table.add_column(station, justify="right")
    if total:
        table.add_column("all stations", justify="right", style="bold")
    return table


def print_results(result: DemoResult, console: Console) -> None:
    """Print the decrypted cohort statistics as tables: one column per station and their total."""
    stations = sorted(result.results)
    if not stations:
        console.print("[red]No results were decrypted.[/red]")
        return
    cohorts = [result.results[station] for station in stations]

    overview = _station_table("Cohort", stations, total=True)
    for key in ("subjects", "studies", "series", "instances"):
        values = [cohort.get(key) for cohort in cohorts]
        overview.add_row(key, *(_fmt(value) for value in values), _total(values))
    console.print(overview)

    known = dict(_SECTIONS)
    extra = sorted(
        key for cohort in cohorts for key, value in cohort.items() if isinstance(value, dict) and key not in known
    )
    for section in [key for key, _ in _SECTIONS] + [key for key in dict.fromkeys(extra) if key not in _HIDDEN]:
        rows = sorted({key for cohort in cohorts for key in (cohort.get(section) or {})})
        if not rows:
            continue
        is_intensity = section == "mean_intensity_by_modality"
        table = _station_table(known.get(section, section.replace("_", " ")), stations, total=not is_intensity)
        for row in rows:
            values = [(cohort.get(section) or {}).get(row) for cohort in cohorts]
            if is_intensity:
                table.add_row(row, *(_intensity(value) for value in values))
            else:
                table.add_row(row, *(_fmt(value) for value in values), _total(values))
        console.print(table)

    k = {cohort.get("k") for cohort in cohorts} - {None}
    files = [cohort.get("files") or {} for cohort in cohorts]
    unreadable = sum(item.get("unreadable") or 0 for item in files)
    console.print(
        f"[dim]<k: a count between 1 and k-1 (k = {', '.join(map(str, sorted(k))) or '?'}), suppressed at the station; "
        f"≥: a total over suppressed counts. Files read: {sum(item.get('read') or 0 for item in files)}, "
        f"unreadable and skipped: {unreadable}.[/dim]"
    )


def explain_failure(error: TrainyardError, console: Console) -> None:
    """Print a failed demo's reason without a traceback."""
    console.print(f"\n[bold red]The demo stopped:[/bold red] {error}")
