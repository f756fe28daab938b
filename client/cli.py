"""The ``trainyard`` command: the researcher's commands, plus ``hub`` and ``station`` groups."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.cli import app as hub_app
from protocol import (
    AuditHead,
    TrainyardError,
    audit_entries_from_jsonl,
    b64decode,
    content_address,
    verify_audit_chain,
)
from station.cli import app as station_app

from ._bundle import build_bundle, read_train_config
from ._client import TrainyardClient
from ._demo import explain_failure, print_results, run_demo
from ._keyring import Keyring
from ._rounds import rounds_table
from ._trains import DEFAULT_BASE_IMAGE, build_image, image_id_of_archive, write_template

__all__ = ["app", "main"]

app = typer.Typer(
    name="trainyard",
    help="Trainyard: a federated imaging catalog that sends analysis and training trains to the data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(hub_app, name="hub", help="Run and administer a hub.")
app.add_typer(station_app, name="station", help="Run a station next to a hospital's DICOM export.")
keys_app = typer.Typer(help="Your signing and encryption keys (they never leave this machine).", no_args_is_help=True)
train_app = typer.Typer(help="Submit trains and follow their jobs.", no_args_is_help=True)
results_app = typer.Typer(help="Fetch, verify and decrypt results.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(train_app, name="train")
app.add_typer(results_app, name="results")
requests_app = typer.Typer(
    help="Access requests: researchers check, create and follow them; stewards decide, signing grants here.",
    no_args_is_help=True,
)
app.add_typer(requests_app, name="requests")
audit_app = typer.Typer(help="Verify exported audit chains (hub or station).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
tokens_app = typer.Typer(help="API tokens for scripts and CI: scoped, expiring, revocable.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")

console = Console()
err_console = Console(stderr=True)


def _config_dir() -> Path:
    return Path(os.environ.get("TRAINYARD_CONFIG_DIR", Path.home() / ".config" / "trainyard"))


def _profile() -> dict[str, Any]:
    path = _config_dir() / "profile.json"
    if not path.exists():
        raise typer.BadParameter("not logged in: run 'trainyard login --hub URL --user NAME' first")
    profile: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return profile


def _client() -> TrainyardClient:
    profile = _profile()
    return TrainyardClient(profile["hub"], token=profile["token"])


_MIN_PASSPHRASE = 8
PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file", help="Read the key passphrase from this file (for scripts; else TRAINYARD_KEY_PASSPHRASE)."
    ),
]
NoPassphraseOption = Annotated[
    bool, typer.Option("--no-passphrase", help="Write the private keys unencrypted (not recommended).")
]


def _passphrase(passphrase_file: Path | None = None) -> bytes | None:
    """The passphrase a script gave (a file, else TRAINYARD_KEY_PASSPHRASE); ``None`` when none."""
    if passphrase_file is not None:
        try:
            value = passphrase_file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {passphrase_file}: {exc}", param_hint="--passphrase-file") from exc
        if not value:
            raise typer.BadParameter(f"{passphrase_file} is empty", param_hint="--passphrase-file")
        return value
    env = os.environ.get("TRAINYARD_KEY_PASSPHRASE")
    return env.encode() if env else None


def _is_interactive() -> bool:
    return sys.stdin.isatty()


def _ask_passphrase() -> bytes:
    return getpass.getpass("Passphrase of your keys: ").encode()


def _new_passphrase(passphrase_file: Path | None, *, no_passphrase: bool) -> bytes | None:
    """The passphrase for keys about to be written: given by a script, or typed twice at the prompt."""
    given = _passphrase(passphrase_file)
    if given is not None or no_passphrase:
        return given
    if not _is_interactive():
        raise typer.BadParameter(
            "no passphrase for your private keys: set TRAINYARD_KEY_PASSPHRASE, pass --passphrase-file, "
            "or --no-passphrase to store them unencrypted"
        )
    first = getpass.getpass("New passphrase for your private keys: ")
    if len(first) < _MIN_PASSPHRASE:
        raise typer.BadParameter(f"the passphrase needs at least {_MIN_PASSPHRASE} characters")
    if getpass.getpass("The same passphrase again: ") != first:
        raise typer.BadParameter("the two passphrases differ")
    return first.encode()


def _keyring(directory: Path | None, passphrase: bytes | None = None) -> Keyring:
    """The keyring in ``directory`` (default: the config folder's ``keys``), prompting when it must."""
    return Keyring(
        directory or _config_dir() / "keys",
        passphrase=passphrase if passphrase is not None else _passphrase(),
        ask_passphrase=_ask_passphrase if _is_interactive() else None,
        warn=lambda message: err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False),
    )


def _fail(error: TrainyardError) -> NoReturn:
    err_console.print(f"[bold red]error:[/bold red] {escape(str(error))}")
    raise typer.Exit(code=1)


@app.command()
def demo(
    state: Annotated[Path, typer.Option(help="Where the demo federation keeps its state.")] = Path("demo-state"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic collections.")] = 7,
    executor: Annotated[str, typer.Option(help="Station executor: sandbox, docker or auto.")] = "sandbox",
    patients: Annotated[int, typer.Option(min=5, max=500, help="Synthetic patients per station.")] = 16,
) -> None:
    """Run a hub and three stations on loopback and a researcher's flow end to end."""
    if executor not in {"sandbox", "docker", "auto"}:
        raise typer.BadParameter("choose sandbox, docker or auto", param_hint="--executor")
    console.rule("[bold]Trainyard demo[/bold]")
    try:
        result = run_demo(state, seed=seed, executor=executor, patients=patients, console=console)
    except TrainyardError as error:
        explain_failure(error, console)
        raise typer.Exit(code=1) from error
    console.rule("[bold]Decrypted cohort statistics (aggregates only; counts below k suppressed)[/bold]")
    print_results(result, console)
    console.print(f"\nDone in {result.seconds:.1f} s. The federation's state is in [bold]{state}[/bold].")
    console.print(f"Explore it again: [bold]trainyard hub serve --state {state / 'hub'}[/bold] → /docs, /graphql")
    console.print(f"Demo log-ins are in {state / 'credentials.json'}.")
    if len(result.results) != len(result.job_status):
        raise typer.Exit(code=1)


@app.command()
def login(
    hub: Annotated[str, typer.Option(help="The hub's URL.")],
    user: Annotated[str, typer.Option(help="Your user name.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="TRAINYARD_PASSWORD")],
) -> None:
    """Log in to a hub and remember the token for later commands."""
    client = TrainyardClient(hub)
    try:
        answer = client.login(user, password)
    except TrainyardError as error:
        _fail(error)
    directory = _config_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "profile.json"
    path.write_text(json.dumps({"hub": hub, "token": answer["access_token"], "user": user}), encoding="utf-8")
    path.chmod(0o600)
    console.print(f"Logged in to {hub} as {user} ({answer['user']['role']}).")


@keys_app.command("init")
def keys_init(
    directory: Annotated[Path | None, typer.Option("--dir", help="Where to keep the private keys.")] = None,
    register: Annotated[bool, typer.Option(help="Register the public keys with the hub you are logged in to.")] = True,
    passphrase_file: PassphraseFileOption = None,
    no_passphrase: NoPassphraseOption = False,
) -> None:
    """Create your Ed25519 signing and X25519 encryption keys, encrypted with a passphrase (asked twice)."""
    keyring = _keyring(directory)
    if keyring.exists():
        raise typer.BadParameter(
            f"{keyring.directory} already holds keys; 'trainyard keys rotate' replaces them", param_hint="--dir"
        )
    passphrase = _new_passphrase(passphrase_file, no_passphrase=no_passphrase)
    keys = _keyring(directory, passphrase).create()
    protection = "passphrase-protected" if passphrase else "[yellow]unencrypted[/yellow]"
    console.print(f"Keys written to {keyring.directory}, {protection} (key id {keys.key_id}).")
    if register:
        try:
            _client().update_keys(keys)
        except TrainyardError as error:
            _fail(error)
        console.print("Public keys registered with the hub (the private keys stay here).")


@keys_app.command("rotate")
def keys_rotate(
    directory: Annotated[Path | None, typer.Option("--dir", help="Your key folder.")] = None,
    register: Annotated[bool, typer.Option(help="Register the new public keys with the hub.")] = True,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Replace your keys; the old pair is kept (retired) so results sealed for it stay readable."""
    keyring = _keyring(directory, _passphrase(passphrase_file))
    try:
        old, new = keyring.rotate()
    except TrainyardError as error:
        _fail(error)
    console.print(f"Key {old.key_id} retired to {keyring.retired_dir}; new key id {new.key_id}.")
    if register:
        try:
            _client().update_keys(new)
        except TrainyardError as error:
            _fail(error)
        console.print("New public keys registered with the hub; stewards' new grants will name the new key.")


@keys_app.command("protect")
def keys_protect(
    directory: Annotated[Path | None, typer.Option("--dir", help="Your key folder.")] = None,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Encrypt an older, unencrypted keyring (current and retired pairs) with a passphrase."""
    keyring = _keyring(directory)
    try:
        if keyring.exists() and keyring.is_protected():
            raise typer.BadParameter(f"the keys in {keyring.directory} are already passphrase-protected")
        passphrase = _new_passphrase(passphrase_file, no_passphrase=False)
        count = _keyring(directory, passphrase).protect()
    except TrainyardError as error:
        _fail(error)
    console.print(f"{count} key pair(s) in {keyring.directory} are now passphrase-protected.")


@app.command()
def search(
    modality: Annotated[list[str] | None, typer.Option(help="DICOM modality, e.g. CT; repeat for more.")] = None,
    body_part: Annotated[list[str] | None, typer.Option(help="DICOM body part, e.g. CHEST; repeat for more.")] = None,
    disease: Annotated[
        list[str] | None, typer.Option(help="Disease code: ICD-10:C34.1, C34.1 or a category such as C34.")
    ] = None,
    station: Annotated[list[str] | None, typer.Option(help="Station id; repeat for more.")] = None,
    annotation: Annotated[list[str] | None, typer.Option(help="Annotation type, e.g. Segmentation.")] = None,
    min_subjects: Annotated[int | None, typer.Option(min=0, help="At least this many subjects.")] = None,
    max_subjects: Annotated[int | None, typer.Option(min=0, help="At most this many subjects.")] = None,
    min_age: Annotated[int | None, typer.Option(min=0, help="Typical ages reaching at least this age.")] = None,
    max_age: Annotated[int | None, typer.Option(min=0, help="Typical ages starting at most at this age.")] = None,
    purpose: Annotated[
        str | None, typer.Option(help="Your research purpose as a DUO code, e.g. DUO:0000006 (HMB).")
    ] = None,
    text: Annotated[str | None, typer.Option(help="Words of the title, description or keywords.")] = None,
    first: Annotated[int, typer.Option(min=1, max=100, help="How many hits to show.")] = 20,
    facets: Annotated[bool, typer.Option(help="Also print the facet counts.")] = False,
) -> None:
    """Search the catalog: filters, hits sorted by subjects, and (with --facets) counts per value."""
    try:
        found = _client().search(
            first=first,
            modality=modality,
            body_part=body_part,
            disease=disease,
            station=station,
            annotation=annotation,
            min_subjects=min_subjects,
            max_subjects=max_subjects,
            min_age=min_age,
            max_age=max_age,
            purpose=purpose,
            text=text,
        )
    except TrainyardError as error:
        _fail(error)
    table = Table("collection", "title", "subjects", "modalities", "diseases", "ages", "data use")
    for hit in found["nodes"]:
        ages = f"{hit['minAge']}-{hit['maxAge']}" if hit["minAge"] is not None else ""
        subjects = str(hit["subjects"]) if hit["subjects"] is not None else "<k"
        row = (hit["id"], hit["title"], subjects, ", ".join(hit["modalities"]), ", ".join(hit["diseases"]))
        table.add_row(*row, ages, ", ".join(hit["dataUse"]))
    console.print(table)
    more = " (more: narrow the search or raise --first)" if found["pageInfo"]["hasNextPage"] else ""
    console.print(f"{found['totalCount']} collection(s) found{more}")
    if facets:
        for name, values in found["facets"].items():
            if values:
                console.print(f"  {name}: " + ", ".join(f"{item['value']} ({item['count']})" for item in values[:10]))


@train_app.command("submit")
def train_submit(
    train_dir: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="The train folder (with train.toml).")
    ],
    project: Annotated[str, typer.Option(help="The project id.")],
    collection: Annotated[list[str], typer.Option(help="A collection id 'station/collection'; repeat for more.")],
    keys_dir: Annotated[Path | None, typer.Option("--keys", help="Your key folder.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="NAME=VALUE (VALUE as JSON, else text); repeat for more.")
    ] = None,
    image_archive: Annotated[
        Path | None,
        typer.Option("--image-archive", exists=True, dir_okay=False, help="The image tar 'train build' wrote."),
    ] = None,
    image_ref: Annotated[
        str | None,
        typer.Option(help="Or a registry reference, registry/repository@sha256:..., for stations that pull."),
    ] = None,
    image_id: Annotated[
        str | None, typer.Option(help="With --image-ref: the image's id (sha256:...), which stations check.")
    ] = None,
    co_recipient: Annotated[
        list[str] | None,
        typer.Option(help="Another project member who may also open the results (user name); repeat for more."),
    ] = None,
) -> None:
    """Bundle, sign and submit a train to the collections your project may use."""
    try:
        parameters = _parse_params(param or [])
        archive = image_archive.read_bytes() if image_archive is not None else None
        train = _client().submit_train(
            train_dir,
            keys=_keyring(keys_dir).current(),
            researcher=_profile()["user"],
            project_id=project,
            collections=collection,
            parameters=parameters,
            image_archive=archive,
            image_digest=image_id_of_archive(archive) if archive is not None else image_id,
            image_ref=image_ref,
            co_recipients=co_recipient or (),
        )
    except TrainyardError as error:
        _fail(error)
    also = f" Results are sealed for you and {', '.join(co_recipient)}." if co_recipient else ""
    console.print(f"Train {train['id']} submitted: {len(train['jobs'])} jobs.{also}")


def _parse_params(items: list[str]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        try:
            parameters[name] = json.loads(text)
        except ValueError:
            parameters[name] = text
    return parameters


@train_app.command("init")
def train_init(
    name: Annotated[str, typer.Argument(help="The train's name (lower-case letters, digits, '.', '_', '-').")],
    kind: Annotated[str, typer.Option(help="analysis or federated.")] = "analysis",
    directory: Annotated[Path | None, typer.Option("--dir", help="Where to create it (default ./NAME).")] = None,
) -> None:
    """Create a train folder from a template: train.toml and main.py."""
    try:
        written = write_template(directory or Path(name), name=name, kind=kind)
    except TrainyardError as error:
        _fail(error)
    for path in written:
        console.print(f"wrote {path}")
    console.print("Edit main.py, then: trainyard train build " + str(written[0].parent))


@train_app.command("build")
def train_build(
    train_dir: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="The train folder (with train.toml).")
    ] = Path("."),
    out: Annotated[Path, typer.Option(help="Where to write the bundle (and image archive).")] = Path("dist"),
    image: Annotated[
        bool, typer.Option(help="Also build an OCI image FROM the train base image (needs Docker).")
    ] = False,
    base_image: Annotated[str, typer.Option(help="The train base image.")] = DEFAULT_BASE_IMAGE,
) -> None:
    """Check train.toml, pack the content-addressed source bundle and (with --image) the image; print digests."""
    try:
        config = read_train_config(train_dir)
        bundle = build_bundle(train_dir)
        out.mkdir(parents=True, exist_ok=True)
        address = content_address(bundle)
        bundle_path = out / f"{config.name}-{config.version}.tar.gz"
        bundle_path.write_bytes(bundle)
        console.print(f"bundle {address} → {bundle_path}")
        if image:
            image_id, archive = build_image(train_dir, bundle, base_image=base_image)
            archive_path = out / f"{config.name}-{config.version}.image.tar"
            archive_path.write_bytes(archive)
            console.print(f"image {image_id} (archive {content_address(archive)}) → {archive_path}")
    except TrainyardError as error:
        _fail(error)


@train_app.command("logs")
def train_logs(
    train_id: Annotated[str, typer.Argument(help="The train id.")],
    keys_dir: Annotated[
        Path | None, typer.Option("--keys", help="Your key folder (to read finished jobs' logs).")
    ] = None,
) -> None:
    """Show the filtered log tail each station sent: in a failure's reason, or sealed inside a result."""
    try:
        client = _client()
        keys = _keyring(keys_dir).all_pairs()
        for job in client.read_train(train_id)["jobs"]:
            console.rule(f"{job['station']}/{job['collection']}: {job['status']}")
            if job["status"] == "succeeded":
                payload = client.fetch_result(job["id"], keys=keys).payload
                console.print(payload.log_tail or "(no output)", markup=False, highlight=False)
            elif job.get("failure"):
                failure = job["failure"]
                code = f" (exit code {failure['exit_code']})" if failure.get("exit_code") is not None else ""
                console.print(f"{failure['reason']}{code}", markup=False, highlight=False)
    except TrainyardError as error:
        _fail(error)


@train_app.command("cancel")
def train_cancel(train_id: Annotated[str, typer.Argument(help="The train id.")]) -> None:
    """Cancel the train's jobs that have not finished."""
    try:
        train = _client().cancel_train(train_id)
    except TrainyardError as error:
        _fail(error)
    cancelled = [job for job in train["jobs"] if job["status"] == "cancelled"]
    console.print(f"Train {train_id}: {len(cancelled)} of {len(train['jobs'])} jobs cancelled.")


@train_app.command("status")
def train_status(train_id: Annotated[str, typer.Argument(help="The train id.")]) -> None:
    """Show the status of a train's jobs."""
    try:
        train = _client().read_train(train_id)
    except TrainyardError as error:
        _fail(error)
    table = Table("job", "station", "collection", "status", "reason")
    for job in train["jobs"]:
        table.add_row(
            job["id"], job["station"], job["collection"], job["status"], (job.get("failure") or {}).get("reason", "")
        )
    console.print(table)


@train_app.command("rounds")
def train_rounds(train_id: Annotated[str, typer.Argument(help="The federated train's id.")]) -> None:
    """Show a federated train's rounds: stations, aggregated metrics, bytes uploaded, dropouts."""
    try:
        run = _client().read_train_rounds(train_id)
    except TrainyardError as error:
        _fail(error)
    console.print(rounds_table(run))
    if run.get("model_id"):
        console.print(f"model {run['model_id']} is in the registry: trainyard models get {run['model_id']}")


models_app = typer.Typer(help="The model registry: trained models with provenance.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(project: Annotated[str | None, typer.Option(help="Only this project's models.")] = None) -> None:
    """List the registered models of your projects."""
    try:
        models = _client().read_models(project)["data"]
    except TrainyardError as error:
        _fail(error)
    table = Table("model", "name", "version", "strategy", "rounds", "size", "created")
    for model in models:
        provenance = model.get("provenance") or {}
        table.add_row(
            model["id"],
            model["name"],
            str(model["version"]),
            str(provenance.get("strategy", "")),
            str(len(provenance.get("rounds") or [])),
            str(model["size"]),
            model["created_at"],
        )
    console.print(table)


@models_app.command("get")
def models_get(
    model_id: Annotated[str, typer.Argument(help="The model id from 'trainyard models list'.")],
    out: Annotated[Path, typer.Option(help="Folder for the weights and provenance.")] = Path("models"),
) -> None:
    """Download a model's safetensors weights (streamed, checked against their content address) and its provenance."""
    try:
        client = _client()
        model = client.read_model(model_id)
        stem = f"{model['name']}-v{model['version']}"
        weights = client.download_model_weights(model_id, out / f"{stem}.safetensors")
    except TrainyardError as error:
        _fail(error)
    (out / f"{stem}.provenance.json").write_text(json.dumps(model, indent=2), encoding="utf-8")
    console.print(f"{stem}: {weights.stat().st_size} bytes → {weights} (+ provenance.json)")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise typer.BadParameter(f"{text!r} is not a shape such as 1,1,64,64 (batch first)")
    return shape


@models_app.command("export-onnx")
def models_export_onnx(
    model: Annotated[
        str, typer.Argument(help="A model id from 'trainyard models list', or a downloaded .safetensors file.")
    ],
    train: Annotated[
        Path, typer.Option("--train", help="The train folder whose entrypoint defines the model builder.")
    ],
    input_shape: Annotated[
        str, typer.Option("--input-shape", help="An example input's shape, batch first, e.g. 1,1,64,64.")
    ],
    builder: Annotated[str, typer.Option(help="The entrypoint's function that builds the model.")] = "build_model",
    out: Annotated[Path, typer.Option(help="Folder for the weights (when downloaded) and the .onnx file.")] = Path(
        "models"
    ),
    tolerance: Annotated[float, typer.Option(help="Largest difference allowed between ONNX Runtime and torch.")] = 1e-4,
) -> None:
    """Export a registered model to ONNX here, with the train's own model code; checked in ONNX Runtime.

    The hub never runs a researcher's code, so the export happens on your machine: the weights load
    into the train's build_model(), torch.onnx.export writes the graph (batch dimension dynamic) and
    ONNX Runtime must match torch within --tolerance on random inputs before the file is kept.
    """
    from client._onnx import export_onnx

    shape = _shape(input_shape)
    weights = Path(model)
    try:
        if not weights.is_file():
            client = _client()
            row = client.read_model(model)
            weights = client.download_model_weights(model, out / f"{row['name']}-v{row['version']}.safetensors")
        report = export_onnx(
            weights, train, out / f"{weights.stem}.onnx", input_shape=shape, builder=builder, tolerance=tolerance
        )
    except TrainyardError as error:
        _fail(error)
    console.print(
        f"{report.path}: ONNX opset {report.opset}; ONNX Runtime matches torch on {report.inputs_checked} inputs "
        f"(largest difference {report.max_abs_diff:.2e})"
    )


@results_app.command("get")
def results_get(
    train_id: Annotated[str, typer.Argument(help="The train id.")],
    out: Annotated[Path, typer.Option(help="Where to write the decrypted outputs.")] = Path("results"),
    keys_dir: Annotated[Path | None, typer.Option("--keys", help="Your key folder.")] = None,
) -> None:
    """Download every finished job's result, verify the station's signature and decrypt it here."""
    try:
        keys = _keyring(keys_dir).all_pairs()
        client = _client()
        for job in client.read_train(train_id)["jobs"]:
            if job["status"] != "succeeded":
                console.print(f"{job['station']}: {job['status']}")
                continue
            result = client.fetch_result(job["id"], keys=keys)
            target = out / job["station"]
            target.mkdir(parents=True, exist_ok=True)
            for name, data in result.payload.files.items():
                (target / name).write_bytes(b64decode(data))
            console.print(f"{job['station']}: {', '.join(result.payload.files)} → {target}")
    except TrainyardError as error:
        _fail(error)


projects_app = typer.Typer(help="Your projects: the unit that holds grants and submits trains.", no_args_is_help=True)
app.add_typer(projects_app, name="projects")
grants_app = typer.Typer(
    help="Grants: what approved decisions give; stewards suspend, resume, revoke.", no_args_is_help=True
)
app.add_typer(grants_app, name="grants")

UseOption = Annotated[
    list[str] | None,
    typer.Option(
        "--use",
        help="Intended use as a DUO code: DUO:0000042 (GRU), DUO:0000006 (HMB), DUO:0000007 (DS), "
        "DUO:0000031 (methods development, e.g. training a model); repeat for more.",
    ),
]
DiseaseOption = Annotated[
    list[str] | None, typer.Option("--disease", help="An ICD-10 code the use is about, e.g. C34; repeat for more.")
]
EthicsOption = Annotated[str | None, typer.Option("--ethics", help="The ethics approval's reference.")]
EndDateOption = Annotated[
    datetime | None, typer.Option("--end-date", formats=["%Y-%m-%d"], help="The project's last day, YYYY-MM-DD.")
]
MemberOption = Annotated[
    list[str] | None, typer.Option("--member", help="Another researcher (user name) on it; repeat for more.")
]
RequestArg = Annotated[str, typer.Argument(help="The access request.")]
DecisionArg = Annotated[str, typer.Argument(help="The decision on one collection (see 'trainyard requests show').")]
KeysOption = Annotated[Path | None, typer.Option("--keys", help="Your key folder.")]
DaysOption = Annotated[
    int, typer.Option(min=1, max=3650, help="How long the grant is valid (at most to the project's end).")
]


def _list(value: list[str] | None) -> str:
    return ", ".join(value or []) or "-"


def _day(value: str | None) -> str:
    return (value or "")[:10] or "-"


def _moment(value: str | None) -> str:
    return (value or "").replace("T", " ")[:19]


def _label(state: str) -> str:
    return state.replace("_", " ")


def _print_project(project: dict[str, Any]) -> None:
    console.print(f"project {project['id']}: {escape(project['title'])}", highlight=False)
    console.print(
        f"  data use {_list(project['data_use'])}; diseases {_list(project['diseases'])}; "
        f"ethics {escape(project['ethics_reference'] or '-')}; ends {_day(project['end_date'])}; "
        f"members {_list(project['members'])}",
        highlight=False,
    )


@projects_app.command("create")
def projects_create(
    title: Annotated[str, typer.Option(help="A short title.")],
    purpose: Annotated[str, typer.Option(help="What the data is for (stewards read this).")],
    use: UseOption = None,
    disease: DiseaseOption = None,
    ethics: EthicsOption = None,
    end_date: EndDateOption = None,
    member: MemberOption = None,
) -> None:
    """Create a project with its intended use (screening matches it against each collection's conditions)."""
    try:
        project = _client().create_project(
            title,
            purpose,
            data_use=use or (),
            diseases=disease or (),
            ethics_reference=ethics,
            end_date=end_date.date() if end_date else None,
            members=member or (),
        )
    except TrainyardError as error:
        _fail(error)
    _print_project(project)
    if not project["data_use"]:
        console.print(
            f"  No data use yet: requests are returned until you add one: "
            f"trainyard projects update {project['id']} --use DUO:…",
            highlight=False,
        )
    console.print(f"Next: trainyard requests check --project {project['id']} --collection STATION/COLLECTION")


@projects_app.command("list")
def projects_list() -> None:
    """The projects you own or work on."""
    try:
        projects = _client().read_projects()
    except TrainyardError as error:
        _fail(error)
    table = Table("project", "title", "owner", "data use", "diseases", "ethics", "ends", "members")
    for project in projects:
        table.add_row(
            project["id"],
            escape(project["title"]),
            project["owner"],
            _list(project["data_use"]),
            _list(project["diseases"]),
            escape(project["ethics_reference"] or "-"),
            _day(project["end_date"]),
            _list(project["members"]),
        )
    console.print(table)


@projects_app.command("update")
def projects_update(
    project_id: Annotated[str, typer.Argument(help="The project (you own it).")],
    title: Annotated[str | None, typer.Option(help="A new title.")] = None,
    purpose: Annotated[str | None, typer.Option(help="A new purpose text.")] = None,
    use: UseOption = None,
    disease: DiseaseOption = None,
    ethics: EthicsOption = None,
    end_date: EndDateOption = None,
    member: MemberOption = None,
) -> None:
    """Change a project: a repeated option replaces its whole list; options left out stay as they are."""
    try:
        project = _client().update_project(
            project_id,
            title=title,
            purpose=purpose,
            data_use=use,
            diseases=disease,
            ethics_reference=ethics,
            end_date=end_date.date() if end_date else None,
            members=member,
        )
    except TrainyardError as error:
        _fail(error)
    _print_project(project)
    console.print("Grants already given keep their purpose and period; resubmit a returned request to screen again.")


def _findings_table(findings: list[dict[str, Any]]) -> Table:
    table = Table("collection", "severity", "code", "finding", title="Screening", title_justify="left")
    for finding in findings:
        severity = "[red]problem[/red]" if finding["severity"] == "problem" else "note"
        table.add_row(finding["collection"], severity, finding["code"], escape(finding["message"]))
    return table


def _print_screening(report: dict[str, Any] | None) -> None:
    if report is None:
        return
    if report["findings"]:
        console.print(_findings_table(report["findings"]))
    problems = sum(finding["severity"] == "problem" for finding in report["findings"])
    console.print("Screening passed." if report["passed"] else f"Screening found {problems} problem(s).")


_REQUEST_NEXT = {
    "draft": "Submit it when ready: trainyard requests submit {id}",
    "returned": "Fix what screening found (trainyard projects update {project} --use …, --ethics …), then resubmit: "
    "trainyard requests submit {id} (with --collection … to change the collections)",
    "forwarded": "The stations' stewards decide now; follow it with: trainyard requests show {id}",
    "active": "Approved collections may run trains; follow the rest with: trainyard requests show {id}",
}


def _print_request(request: dict[str, Any]) -> None:
    """A request's state, its screening and what to do next."""
    open_decisions = sum(
        d["status"] in {"pending", "information_requested", "conditions_offered"} for d in request["decisions"]
    )
    console.print(
        f"request {request['id']}: {_label(request['status'])} — {len(request['decisions'])} collection(s), "
        f"{open_decisions} decision(s) open",
        highlight=False,
    )
    _print_screening(request.get("screening"))
    hint = _REQUEST_NEXT.get(request["status"])
    if hint:
        console.print(hint.format(id=request["id"], project=request["project_id"]), highlight=False)


@requests_app.command("check")
def requests_check(
    project: Annotated[str, typer.Option(help="The project that would ask.")],
    collection: Annotated[list[str], typer.Option(help="A collection id station/collection; repeat for more.")],
) -> None:
    """Screen a request before sending it (DUO match, conditions); nothing is stored."""
    try:
        report = _client().check_access_request(project_id=project, collections=collection)
    except TrainyardError as error:
        _fail(error)
    _print_screening(report)
    if report["passed"]:
        console.print(
            f"Next: trainyard requests create --project {project} " + " ".join(f"--collection {c}" for c in collection),
            highlight=False,
        )
    else:
        console.print(f"Fix the problems first, e.g. trainyard projects update {project} --use DUO:…", highlight=False)


@requests_app.command("create")
def requests_create(
    project: Annotated[str, typer.Option(help="The project asking.")],
    collection: Annotated[list[str], typer.Option(help="A collection id station/collection; repeat for more.")],
    draft: Annotated[bool, typer.Option("--draft", help="Keep it a draft: submit it later.")] = False,
) -> None:
    """Ask for access to collections (one decision per collection); it is screened at once unless a draft."""
    try:
        request = _client().create_access_request(project_id=project, collections=collection, submit=not draft)
    except TrainyardError as error:
        _fail(error)
    _print_request(request)


@requests_app.command("submit")
def requests_submit(
    request_id: RequestArg,
    collection: Annotated[
        list[str] | None, typer.Option(help="Replace the request's collections first; repeat for more.")
    ] = None,
) -> None:
    """Submit a draft, or resubmit a returned request: screening runs again."""
    try:
        client = _client()
        if collection:
            client.update_access_request(request_id, collections=collection)
        request = client.submit_access_request(request_id)
    except TrainyardError as error:
        _fail(error)
    _print_request(request)


@requests_app.command("withdraw")
def requests_withdraw(
    request_id: RequestArg,
    comment: Annotated[str, typer.Option(help="Why, for the stewards.")] = "",
) -> None:
    """Withdraw your request: its open decisions end (grants already given stay)."""
    try:
        request = _client().withdraw_access_request(request_id, comment=comment)
    except TrainyardError as error:
        _fail(error)
    console.print(f"request {request['id']}: {_label(request['status'])}", highlight=False)


@requests_app.command("show")
def requests_show(request_id: RequestArg) -> None:
    """A request: its state, screening findings, every decision, and its history (who, when, why)."""
    try:
        client = _client()
        request = client.read_access_request(request_id)
        events = client.read_access_request_events(request_id)
    except TrainyardError as error:
        _fail(error)
    console.print(
        f"request {request['id']} by {request['requester']} for project {request['project_id']}: "
        f"{_label(request['status'])}",
        highlight=False,
    )
    console.print(
        f"  project data use {_list(request.get('project_data_use'))}; ends {_day(request.get('project_end_date'))}",
        highlight=False,
    )
    _print_screening(request.get("screening"))
    decisions = Table(
        "decision", "collection", "status", "by", "comment / conditions", title="Decisions", title_justify="left"
    )
    for decision in request["decisions"]:
        said = decision.get("conditions") or decision.get("comment") or ""
        decisions.add_row(
            decision["id"],
            f"{decision['station']}/{decision['collection']}",
            _label(decision["status"]),
            decision.get("decided_by") or "",
            escape(said),
        )
    console.print(decisions)
    history = Table("at", "who", "object", "action", "from → to", "comment", title="History", title_justify="left")
    names = {decision["id"]: f"{decision['station']}/{decision['collection']}" for decision in request["decisions"]}
    for event in events:
        where = names.get(event["subject"]) or event.get("station") or ""
        subject = event["kind"] if event["kind"] == "request" else f"{event['kind']} {where}".strip()
        history.add_row(
            _moment(event["at"]),
            f"{event['actor']} ({event['role']})",
            subject,
            _label(event["action"]),
            f"{_label(event['from_state'] or '-')} → {_label(event['to_state'])}",
            escape(event.get("comment") or ""),
        )
    console.print(history)
    hint = _REQUEST_NEXT.get(request["status"])
    if hint:
        console.print(hint.format(id=request["id"], project=request["project_id"]), highlight=False)


@requests_app.command("list")
def requests_list(
    state: Annotated[str | None, typer.Option(help="Only requests in this state, e.g. forwarded or returned.")] = None,
) -> None:
    """Your access requests (a researcher's own; a steward's station's) with every decision."""
    try:
        requests = _client().read_access_requests(state)
    except TrainyardError as error:
        _fail(error)
    table = Table("request", "state", "project", "researcher (key)", "decision", "collection", "status")
    for request in requests:
        for decision in request["decisions"]:
            table.add_row(
                request["id"],
                _label(request["status"]),
                request["project_id"][:8],
                f"{request['requester']} ({request.get('requester_key_id') or 'no key'})",
                decision["id"],
                f"{decision['station']}/{decision['collection']}",
                _label(decision["status"]),
            )
    console.print(table)
    console.print(f"{len(requests)} request(s)")


def _find_decision(client: TrainyardClient, request_id: str, decision_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    request = client.read_access_request(request_id)
    return request, _decision_in(request, decision_id)


def _decision_in(request: dict[str, Any], decision_id: str) -> dict[str, Any]:
    decisions: list[dict[str, Any]] = request["decisions"]
    for decision in decisions:
        if decision["id"] == decision_id:
            return decision
    raise typer.BadParameter(f"no decision {decision_id} in request {request['id']}")


_DECISION_NEXT = {
    "information_requested": "The researcher answers: trainyard requests answer {request} {decision} --comment …",
    "pending": "The steward decides next.",
    "conditions_offered": "The researcher accepts (trainyard requests accept {request} {decision}) "
    "or declines (trainyard requests decline-offer {request} {decision}).",
    "approved": "The project may now run trains on {collection}.",
}


def _print_decision(request: dict[str, Any], decision_id: str) -> None:
    decision = _decision_in(request, decision_id)
    collection = f"{decision['station']}/{decision['collection']}"
    console.print(
        f"{collection}: {_label(decision['status'])} (request {request['id']} is {_label(request['status'])})",
        highlight=False,
    )
    hint = _DECISION_NEXT.get(decision["status"])
    if hint:
        console.print(hint.format(request=request["id"], decision=decision_id, collection=collection), highlight=False)


def _move(request_id: str, decision_id: str, verb: str, comment: str) -> None:
    try:
        request = _client().move(request_id, decision_id, verb, comment=comment)
    except TrainyardError as error:
        _fail(error)
    _print_decision(request, decision_id)


@requests_app.command("approve")
def requests_approve(
    request_id: RequestArg,
    decision_id: DecisionArg,
    days: DaysOption = 365,
    comment: Annotated[str, typer.Option(help="A note for the researcher.")] = "",
    keys_dir: KeysOption = None,
) -> None:
    """Approve: sign a grant with your own key (stations run jobs only with grants their stewards signed)."""
    try:
        keys = _keyring(keys_dir).current()
        client = _client()
        steward = client.read_user_me()["username"]
        request, decision = _find_decision(client, request_id, decision_id)
        client.approve_with_grant(request, decision, keys=keys, steward=steward, valid_days=days, comment=comment)
    except TrainyardError as error:
        _fail(error)
    console.print(
        f"Approved {decision['station']}/{decision['collection']} for {request['requester']} "
        f"(researcher key {request.get('requester_key_id')}); grant signed with your key {keys.key_id}."
    )


@requests_app.command("offer")
def requests_offer(
    request_id: RequestArg,
    decision_id: DecisionArg,
    conditions: Annotated[str, typer.Option(help="The conditions the researcher accepts or declines.")],
    days: DaysOption = 365,
    keys_dir: KeysOption = None,
) -> None:
    """Offer a grant on conditions, signed with your key; it starts when the researcher accepts."""
    try:
        keys = _keyring(keys_dir).current()
        client = _client()
        steward = client.read_user_me()["username"]
        request, decision = _find_decision(client, request_id, decision_id)
        answer = client.offer_conditions_with_grant(
            request, decision, conditions, keys=keys, steward=steward, valid_days=days
        )
    except TrainyardError as error:
        _fail(error)
    console.print(f"Grant signed with your key {keys.key_id}, offered on your conditions.")
    _print_decision(answer, decision_id)


@requests_app.command("decline")
def requests_decline(
    request_id: RequestArg,
    decision_id: DecisionArg,
    comment: Annotated[str, typer.Option(help="Why, for the researcher.")],
) -> None:
    """Decline access to your station's collection (say why)."""
    _move(request_id, decision_id, "decline", comment)


@requests_app.command("reject", hidden=True)
def requests_reject(
    request_id: RequestArg,
    decision_id: DecisionArg,
    comment: Annotated[str, typer.Option(help="Why, for the researcher.")],
) -> None:
    """Decline (the older name)."""
    _move(request_id, decision_id, "decline", comment)


@requests_app.command("ask")
def requests_ask(
    request_id: RequestArg,
    decision_id: DecisionArg,
    comment: Annotated[str, typer.Option(help="Your question for the researcher.")],
) -> None:
    """Ask the researcher a question before deciding."""
    _move(request_id, decision_id, "request-information", comment)


@requests_app.command("answer")
def requests_answer(
    request_id: RequestArg,
    decision_id: DecisionArg,
    comment: Annotated[str, typer.Option(help="Your answer to the steward's question.")],
) -> None:
    """Answer a steward's question: the decision is theirs again."""
    _move(request_id, decision_id, "answer", comment)


@requests_app.command("accept")
def requests_accept(
    request_id: RequestArg,
    decision_id: DecisionArg,
    comment: Annotated[str, typer.Option(help="A note for the steward.")] = "",
) -> None:
    """Accept a steward's conditions: the grant starts."""
    _move(request_id, decision_id, "accept", comment)


@requests_app.command("decline-offer")
def requests_decline_offer(
    request_id: RequestArg,
    decision_id: DecisionArg,
    comment: Annotated[str, typer.Option(help="Why, for the steward.")] = "",
) -> None:
    """Decline a steward's conditions: no grant on that collection."""
    _move(request_id, decision_id, "decline-offer", comment)


@requests_app.command("digest")
def requests_digest(
    since: Annotated[
        datetime | None, typer.Option(help="Count your station's events after this time (UTC), e.g. 2026-05-01.")
    ] = None,
) -> None:
    """What waits for your station (stewards): counts by state and the decisions waiting, oldest first."""
    try:
        digest = _client().read_steward_digest(since)
    except TrainyardError as error:
        _fail(error)
    counts = ", ".join(f"{_label(state)} {count}" for state, count in digest["counts"].items()) or "nothing yet"
    console.print(f"station {digest['station']}: {counts}", highlight=False)
    after = f" since {_moment(digest['since'])}" if digest.get("since") else ""
    console.print(f"{digest['events_since']} event(s) at your station{after}", highlight=False)
    if not digest["waiting"]:
        console.print("No decision waits for you.")
        return
    table = Table("request", "decision", "project", "researcher", "collection", "waiting since", "expires")
    for item in digest["waiting"]:
        table.add_row(
            item["access_request_id"],
            item["decision_id"],
            escape(item["project_title"]),
            item["requester"],
            item["collection"],
            _moment(item["waiting_since"]),
            _moment(item["expires_at"]),
        )
    console.print(table)
    console.print("Decide with: trainyard requests approve|offer|decline|ask REQUEST DECISION")


@grants_app.command("list")
def grants_list(
    state: Annotated[
        str | None, typer.Option(help="Only grants in this state: active, suspended, revoked, expired.")
    ] = None,
) -> None:
    """Grants: your projects' (researchers) or your station's (stewards)."""
    try:
        grants = _client().read_grants(state)
    except TrainyardError as error:
        _fail(error)
    table = Table("grant", "state", "project", "collection", "researcher", "steward", "purpose", "until", "conditions")
    for grant in grants:
        table.add_row(
            grant["id"],
            grant["status"],
            grant["project_id"][:8],
            f"{grant['station']}/{grant['collection']}",
            grant["researcher"],
            grant["steward"],
            _list(grant["purpose"]),
            _moment(grant["not_after"]),
            escape(grant.get("conditions") or ""),
        )
    console.print(table)
    console.print(f"{len(grants)} grant(s)")


def _grant_move(grant_id: str, action: str, comment: str) -> None:
    try:
        client = _client()
        moves = {"suspend": client.suspend_grant, "resume": client.resume_grant, "revoke": client.revoke_grant}
        grant = moves[action](grant_id, comment=comment)
    except TrainyardError as error:
        _fail(error)
    console.print(
        f"grant {grant['id']} ({grant['station']}/{grant['collection']}, project {grant['project_id']}): "
        f"{grant['status']}",
        highlight=False,
    )


@grants_app.command("suspend")
def grants_suspend(
    grant_id: Annotated[str, typer.Argument(help="The grant (see 'trainyard grants list').")],
    comment: Annotated[str, typer.Option(help="Why, for the researcher.")],
) -> None:
    """Pause a grant: the project's jobs on the collection stop and none start until you resume it."""
    _grant_move(grant_id, "suspend", comment)


@grants_app.command("resume")
def grants_resume(
    grant_id: Annotated[str, typer.Argument(help="The grant (see 'trainyard grants list').")],
    comment: Annotated[str, typer.Option(help="A note for the researcher.")] = "",
) -> None:
    """End a grant's pause: the project may run trains on the collection again."""
    _grant_move(grant_id, "resume", comment)


@grants_app.command("revoke")
def grants_revoke(
    grant_id: Annotated[str, typer.Argument(help="The grant (see 'trainyard grants list').")],
    comment: Annotated[str, typer.Option(help="Why, for the researcher.")],
) -> None:
    """End a grant for good: the project's jobs on the collection stop."""
    _grant_move(grant_id, "revoke", comment)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'ci'.")],
    scope: Annotated[
        list[str],
        typer.Option(help="catalog:read, trains:submit, results:read or requests:decide; repeat for more."),
    ],
    days: Annotated[int, typer.Option(min=1, max=365, help="Days until the token expires.")] = 30,
) -> None:
    """Create an API token; its secret is printed this once and never again."""
    try:
        created = _client().create_token(name=name, scopes=scope, ttl_days=days)
    except TrainyardError as error:
        _fail(error)
    console.print(
        f"token {created['id']} ({', '.join(created['scopes'])}) expires {created['expires_at']}", highlight=False
    )
    console.print("Copy the secret now; the hub keeps only its hash and cannot show it again:")
    print(created["token"])


@tokens_app.command("list")
def tokens_list() -> None:
    """Your API tokens with their scopes and state (never their secrets)."""
    try:
        tokens = _client().read_tokens()
    except TrainyardError as error:
        _fail(error)
    table = Table("id", "name", "scopes", "expires", "state")
    for token in tokens:
        state = f"revoked {token['revoked_at'][:19]}" if token["revoked_at"] else "live"
        table.add_row(token["id"], token["name"], ", ".join(token["scopes"] or []), token["expires_at"][:19], state)
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token id from 'trainyard tokens list'.")]) -> None:
    """Revoke one of your API tokens now."""
    try:
        revoked = _client().revoke_token(token_id)
    except TrainyardError as error:
        _fail(error)
    console.print(f"Revoked token {revoked['id']} ({revoked['name']}).")


@audit_app.command("verify")
def audit_verify(
    export: Annotated[Path, typer.Argument(help="A JSON-lines export (hub: GET /audit or 'hub audit export').")],
    head: Annotated[
        str | None,
        typer.Option("--head", help="The head you noted earlier, as SEQ:HASH; a cut-off or rewritten tail shows."),
    ] = None,
) -> None:
    """Verify an exported audit chain: exit 1 naming every edited, deleted, inserted or reordered entry."""
    try:
        expected = None
        if head is not None:
            seq, _, digest = head.partition(":")
            expected = AuditHead(seq=int(seq), hash=digest)
        entries = list(audit_entries_from_jsonl(export.read_text("utf-8").splitlines()))
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]cannot read {export}:[/red] {exc}")
        raise typer.Exit(code=2) from None
    except TrainyardError as error:
        _fail(error)
    result = verify_audit_chain(entries, head=expected)
    first, *problems = result.report(str(export))
    (console if result.ok else err_console).print(first, highlight=False, markup=False)
    for line in problems:
        err_console.print(line, highlight=False, markup=False)
    if not result.ok:
        raise typer.Exit(code=1)


def main() -> None:
    """Entry point of the ``trainyard`` console script."""
    app()


if __name__ == "__main__":
    main()
