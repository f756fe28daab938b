"""The station agent: every connection to the hub is opened here, by the station.

- :func:`enrol` redeems a one-time token and registers the station's public keys;
- :func:`publish_collections` sends each harvested collection's signed description;
- :func:`run_agent` long-polls for jobs and, for each, verifies it itself (the researcher's
  signature, that the job is for this station and a collection it holds, the bundle's content
  address), runs it with an executor, keeps only declared outputs, seals them for the
  researcher, signs the envelope and uploads it.

Every envelope goes to the outbox before it is uploaded, and every received job is written
to ``work/<job_id>/`` before it runs, so a crash loses no job and no result. A refused or
failed job is still answered: with a signed envelope carrying a reason the station wrote
(never raw train output). Network errors make the loop back off and retry, never stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

import protocol
from protocol import (
    CollectionMetadata,
    CollectionPublication,
    Job,
    JobFailure,
    JobStatus,
    KeyPair,
    ResultEnvelope,
    ResultPayload,
    StationEnrolled,
    StationEnrolment,
    TrainyardError,
)

from .approvals import Approvals, Gate
from .audit import append_audit
from .bundle import unpack_bundle
from .catalog import build_publication
from .config import StationSettings
from .executors import Executor, ExecutorError, RunResult, RunSpec, executor_for
from .indexer import DicomIndex, iter_dicom_paths, pseudonym_for_patient_id, token_for_name_part
from .ledger import JobLedger
from .outbox import Outbox, file_name_for_job
from .output_policy import DisclosureRules, OutputViolation, check_disclosure, filter_log_tail
from .outputs import collect_outputs
from .policy import check_acceptance, check_resources, code_approved, read_policy, write_policy
from .rounds import GLOBAL_MODEL_FILE, keep_station_state, prepare_round, take_update
from .secagg import SecAggRefused, forget_round, mask_round_update
from .state import StationIdentity, StationState
from .stewards import check_job_grants, read_stewards
from .summary import summarise_collection
from .transfer import TransferError, TransferRefused, answer_summary, download_file, upload_file

__all__ = ["HubError", "StationAgent", "enrol", "hub_client", "publish_collections", "run_agent"]

logger = logging.getLogger(__name__)

_ACCEPTED = {200, 201, 202}
_REFUSED_FOR_GOOD = {400, 403, 404, 409, 410, 422}  # retrying the same envelope cannot help
_MB = 1024 * 1024


class HubError(TrainyardError):
    """The hub refused a request of the station, or answered something unexpected."""


class _Refusal(Exception):
    """A job the station will not (or could not) complete; ``reason`` is the station's words."""

    def __init__(self, reason: str, *, exit_code: int | None = None, rule: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.rule = rule


class _Held(Exception):
    """A job that waits for the station's operator (the code or the release gate is manual)."""

    def __init__(self, gate: Gate, reason: str) -> None:
        super().__init__(reason)
        self.gate = gate
        self.reason = reason


class StationSignature(httpx.Auth):
    """Sign every request to the hub with the station's key (HTTP message signatures, RFC 9421)."""

    requires_request_body = True

    def __init__(self, keys: KeyPair) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return f"StationSignature(key_id={self._keys.key_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add Content-Digest, Signature-Input and Signature to ``request``."""
        request.headers.update(
            protocol.sign_request(
                method=request.method,
                path=request.url.path,
                query=request.url.query.decode("ascii"),
                body=request.content,
                key=self._keys.signing,
                key_id=self._keys.key_id,
            )
        )
        yield request


def hub_client(
    identity: StationIdentity,
    keys: KeyPair,
    *,
    read_timeout_s: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """Return an HTTP client for the hub: the station's API token, and every request signed with its key."""
    return httpx.Client(
        base_url=identity.hub_url,
        headers={"Authorization": f"Bearer {identity.api_token}"},
        auth=StationSignature(keys),
        timeout=httpx.Timeout(30.0, read=read_timeout_s),
        transport=transport,
    )


def enrol(
    *, state: StationState, hub_url: str, name: str, token: str, transport: httpx.BaseTransport | None = None
) -> StationIdentity:
    """Enrol the station at a hub with a one-time token and remember its identity.

    Parameters
    ----------
    state
        The station's state directory; keys are created there on first use.
    hub_url
        The hub's base URL.
    name
        The station's slug.
    token
        The enrolment token a hub admin issued.
    transport
        An httpx transport (tests).

    Returns
    -------
    StationIdentity
        Written to ``station.json`` (mode 0600).

    Raises
    ------
    HubError
        When the hub cannot be reached or refuses the token.
    """
    state.ensure()
    keys = state.load_or_create_keys()
    enrolment = StationEnrolment(
        name=name,
        enrolment_token=token,
        signing_public_key=keys.signing_public,
        encryption_public_key=keys.encryption_public,
    )
    try:
        with httpx.Client(base_url=hub_url, timeout=30.0, transport=transport) as client:
            response = client.post("/stations/enrol", json=enrolment.model_dump(mode="json"))
    except httpx.HTTPError as exc:
        raise HubError(f"cannot reach the hub at {hub_url}: {exc}") from exc
    if response.status_code not in _ACCEPTED:
        raise HubError(f"the hub refused the enrolment: {answer_summary(response)}")
    enrolled = StationEnrolled.model_validate_json(response.content)
    identity = StationIdentity(name=name, hub_url=hub_url, station_id=enrolled.station_id, api_token=enrolled.api_token)
    state.write_identity(identity)
    append_audit(state.audit_file, "station.enrolled", station=name, station_id=enrolled.station_id)
    return identity


def publish_collections(settings: StationSettings, *, client: httpx.Client | None = None) -> list[str]:
    """Publish the signed description of every harvested collection to the hub.

    Returns
    -------
    list of str
        The ids (``station/collection``) published.

    Raises
    ------
    HubError
        When the hub cannot be reached or refuses a publication.
    """
    state = StationState(settings.state_dir)
    identity = state.read_identity()
    keys = state.load_keys()
    published: list[str] = []
    owned = client is None
    http = client or hub_client(identity, keys)
    try:
        with DicomIndex(state.index_file) as index:
            for record in state.list_collections():
                summary = summarise_collection(index, collection=record.slug, k=settings.k_anonymity)
                publication: CollectionPublication = build_publication(
                    station=identity.name,
                    collection=record.slug,
                    title=record.title,
                    description=record.description,
                    summary=summary,
                    keys=keys,
                    metadata=CollectionMetadata.model_validate(record.metadata),
                )
                try:
                    response = http.put(
                        f"/stations/me/collections/{record.slug}", json=publication.model_dump(mode="json")
                    )
                except httpx.HTTPError as exc:
                    raise HubError(f"cannot reach the hub at {identity.hub_url}: {exc}") from exc
                if response.status_code not in _ACCEPTED:
                    raise HubError(f"the hub refused the collection {record.slug!r}: {answer_summary(response)}")
                append_audit(state.audit_file, "collection.published", collection=record.slug)
                published.append(f"{identity.name}/{record.slug}")
    finally:
        if owned:
            http.close()
    return published


def provenance_record(
    job: Job,
    *,
    station: str,
    run: RunResult,
    started: Any,
    finished: Any,
    outputs: list[str],
    collection_version: str | None = None,
) -> dict[str, Any]:
    """A PROV-O record (JSON-LD) of one run: the train (by digest) used the collection (as indexed at
    ``collection_version``) at the station."""
    manifest = job.signed_manifest.manifest
    activity = f"urn:trainyard:job:{job.job_id}"
    return {
        "@context": {"prov": "http://www.w3.org/ns/prov#", "ty": "urn:trainyard:vocab:"},
        "@id": activity,
        "@type": "prov:Activity",
        "prov:startedAtTime": started.isoformat(),
        "prov:endedAtTime": finished.isoformat(),
        "prov:used": [
            {
                "@id": f"urn:trainyard:train:{manifest.bundle_hash}",
                "@type": "prov:Plan",
                "ty:name": manifest.name,
                "ty:version": manifest.version,
                "ty:bundle": manifest.bundle_hash,
                "ty:image": manifest.image_digest,
            },
            {
                "@id": f"urn:trainyard:collection:{station}/{job.collection}",
                "@type": "prov:Collection",
                "ty:collectionVersion": collection_version,
            },
        ],
        "prov:wasAssociatedWith": {"@id": f"urn:trainyard:station:{station}", "@type": "prov:SoftwareAgent"},
        "prov:generated": [{"@id": f"{activity}/{name}", "@type": "prov:Entity"} for name in outputs],
        "ty:train": job.train_id,
        "ty:parameters": manifest.parameters,
        "ty:executor": run.executor,
        "ty:devices": list(run.devices),
        "ty:durationSeconds": round(run.duration_s, 3),
    }


class StationAgent:
    """Receives, verifies, runs and answers jobs (see the module docstring).

    Parameters
    ----------
    settings
        The station's settings.
    client
        The HTTP client for the hub; by default one made from ``station.json``.
    executor
        Runs the trains; by default :func:`station.executors.executor_for`.
    retry_delays
        Seconds between the attempts of one upload; what still fails stays in the outbox.
    sleep
        How to wait between upload attempts (tests pass a no-op).
    """

    def __init__(
        self,
        settings: StationSettings,
        *,
        client: httpx.Client | None = None,
        executor: Executor | None = None,
        retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.state = StationState(settings.state_dir)
        self.state.ensure()
        self.identity = self.state.read_identity()
        self.keys = self.state.load_keys()
        self.outbox = Outbox(self.state.outbox_dir)
        self.ledger = JobLedger(self.state.root / "answered.jsonl")
        self.approvals = Approvals(self.state.root / "approvals")
        self.client = client or hub_client(self.identity, self.keys, read_timeout_s=settings.poll_wait_s + 15.0)
        self._executor = executor
        self.retry_delays = retry_delays
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"StationAgent(station={self.identity.name!r})"

    def _audit(self, event: str, **fields: Any) -> None:
        append_audit(self.state.audit_file, event, actor=self.identity.name, **fields)

    def poll_next_job(self) -> Job | None:
        """Long-poll the hub once; return the next job, or None when there is none."""
        response = self.client.get("/stations/me/jobs/next", params={"wait": self.settings.poll_wait_s})
        if response.status_code == 204:
            return None
        if response.status_code != 200:
            raise HubError(f"the hub refused the job poll: {answer_summary(response)}")
        try:
            return Job.model_validate_json(response.content)
        except ValidationError as exc:
            logger.error("the hub sent a job that does not follow the contract (%d errors)", exc.error_count())
            self._audit("job.malformed", errors=exc.error_count())
            return None

    def process_job(self, job: Job) -> ResultEnvelope | None:
        """Handle one job end to end: remember it, answer it, queue and upload the envelope.

        Returns None when the job waits in the operator's queue (a manual code or release gate).
        """
        work = self.state.work_dir / file_name_for_job(job.job_id)
        if self.outbox.has(job.job_id):
            logger.info("job %s was answered already; uploading the queued envelope", job.job_id)
            envelope = next(e for e in self.outbox.pending() if e.job_id == job.job_id)
        elif self.approvals.get(job.job_id) is not None:
            logger.info("job %s waits for the station's operator already", job.job_id)
            shutil.rmtree(work, ignore_errors=True)
            return None
        else:
            work.mkdir(parents=True, exist_ok=True)
            (work / "message.json").write_text(job.model_dump_json(), encoding="utf-8")
            self._audit("job.received", job_id=job.job_id, train_id=job.train_id, collection=job.collection)
            try:
                envelope = self.answer_job(job, work)
            except _Held as held:
                self.approvals.hold(job, held.gate, held.reason)
                self._audit("job.held", job_id=job.job_id, gate=held.gate.value, reason=held.reason)
                logger.info("job %s waits for the operator (%s gate): %s", job.job_id, held.gate.value, held.reason)
                shutil.rmtree(work, ignore_errors=True)
                return None
            if self.approvals.get(job.job_id) is not None:  # the result waits for release
                self.ledger.record(job, "held")
                shutil.rmtree(work, ignore_errors=True)
                return None
            self.outbox.put(envelope)
            self._audit("result.queued", job_id=job.job_id, status=envelope.status.value)
        self.ledger.record(job, envelope.status.value)  # after the envelope is durable, before the work goes
        shutil.rmtree(work, ignore_errors=True)
        self.upload(envelope)
        return envelope

    def answer_job(self, job: Job, work: Path) -> ResultEnvelope:
        """Verify and run one job; return its signed envelope (succeeded or failed)."""
        started = protocol.utc_now()
        try:
            files, run = self._run_verified(job, work)
        except _Held:
            raise
        except _Refusal as refusal:
            logger.warning("job %s failed: %s", job.job_id, refusal.reason)
            self._audit(
                "job.failed", job_id=job.job_id, reason=refusal.reason, exit_code=refusal.exit_code, rule=refusal.rule
            )
            return self._envelope(
                job, JobStatus.FAILED, failure=JobFailure(reason=refusal.reason[:2000], exit_code=refusal.exit_code)
            )
        except Exception as exc:  # a station bug or an input nobody foresaw: this job fails, the station goes on
            # the frames, not the message: an exception's text may quote the data it choked on
            logger.error(
                "job %s: unexpected %s while handling it:\n%s",
                job.job_id,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            reason = (
                f"the station could not handle this job ({type(exc).__name__}); nothing left the station, "
                "and its operator has the details in the station log"
            )
            self._audit("job.failed", job_id=job.job_id, reason=reason, rule="station error")
            return self._envelope(job, JobStatus.FAILED, failure=JobFailure(reason=reason))
        manifest = job.signed_manifest.manifest
        finished = protocol.utc_now()
        update_ref = None
        if job.round is not None:
            try:
                update, update_ref, files = take_update(job, files, k=self.settings.k_anonymity)
            except protocol.PolicyError as exc:
                self._audit("job.failed", job_id=job.job_id, reason=str(exc), rule="update")
                return self._envelope(job, JobStatus.FAILED, failure=JobFailure(reason=str(exc)[:2000]))
            if (manifest.federated or protocol.FederatedPlan()).secagg:
                try:
                    update, update_ref = self._mask_update(job, work, update, update_ref)
                except SecAggRefused as exc:
                    self._audit("job.failed", job_id=job.job_id, reason=str(exc), rule="secure aggregation")
                    reason = f"secure aggregation did not complete: {exc}"
                    return self._envelope(job, JobStatus.FAILED, failure=JobFailure(reason=reason[:2000]))
            self.outbox.put_update(job.job_id, update)  # durable before the envelope that names it
            forget_round(self.state.root, job.job_id)
        payload = ResultPayload(
            job_id=job.job_id,
            station=self.identity.name,
            collection=job.collection,
            files=files,
            executor=run.executor,
            started_at=started,
            finished_at=finished,
            log_tail=run.log_tail,
            provenance=provenance_record(
                job,
                station=self.identity.name,
                run=run,
                started=started,
                finished=finished,
                outputs=sorted(files),
                collection_version=self._collection_version(job.collection),
            ),
        )
        plain = payload.model_dump_json().encode("utf-8")
        sealed = protocol.seal(plain, manifest.encryption_public_key, associated_data=job.job_id)
        sealed_for = tuple(  # the project members the researcher named, each with their own box
            protocol.seal(plain, recipient.encryption_public_key, associated_data=job.job_id)
            for recipient in manifest.co_recipients
        )
        self._audit("job.succeeded", job_id=job.job_id, outputs=sorted(files), recipients=1 + len(sealed_for))
        envelope = self._envelope(job, JobStatus.SUCCEEDED, sealed=sealed, sealed_for=sealed_for, update=update_ref)
        if job.round is None and read_policy(self.state.root).release_gate == "manual":
            self.approvals.keep_result(job.job_id, envelope, files)
            self.approvals.hold(job, Gate.RELEASE, "the station's operator releases each result by hand")
            self._audit("result.held", job_id=job.job_id, outputs=sorted(files))
        return envelope

    def _mask_update(
        self, job: Job, work: Path, update: bytes, ref: protocol.ModelUpdateRef
    ) -> tuple[bytes, protocol.ModelUpdateRef]:
        """Secure aggregation: the masked update (and its reference, with the plain update's metrics) to send."""
        base_file = work / "job" / GLOBAL_MODEL_FILE
        base = (
            base_file.read_bytes() if job.round is not None and job.round.global_model and base_file.is_file() else None
        )
        self._audit("secagg.started", job_id=job.job_id, round=job.round.number if job.round else None)
        masked, masked_ref = mask_round_update(
            client=self.client,
            job=job,
            keys=self.keys,
            state_root=self.state.root,
            update=update,
            num_examples=ref.num_examples,
            base=base,
        )
        self._audit("secagg.masked", job_id=job.job_id, update=masked_ref.address)
        return masked, masked_ref.model_copy(update={"metrics": dict(ref.metrics)})

    def _envelope(
        self,
        job: Job,
        status: JobStatus,
        *,
        sealed: protocol.SealedBox | None = None,
        sealed_for: tuple[protocol.SealedBox, ...] = (),
        failure: JobFailure | None = None,
        update: protocol.ModelUpdateRef | None = None,
    ) -> ResultEnvelope:
        envelope = ResultEnvelope(
            job_id=job.job_id,
            train_id=job.train_id,
            station=self.identity.name,
            status=status,
            sealed=sealed,
            sealed_for=sealed_for,
            failure=failure,
            update=update,
            created_at=protocol.utc_now(),
        )
        return protocol.sign_envelope(envelope, self.keys.signing)

    def _verify(self, job: Job) -> Path:
        """Check the job is signed, for this station and for a collection it holds; return the data folder."""
        if job.station != self.identity.name:
            raise _Refusal(f"the job is addressed to station {job.station!r}, not to {self.identity.name!r}")
        try:
            manifest = protocol.verify_manifest(job.signed_manifest)
        except protocol.SignatureError as exc:
            raise _Refusal(f"the train manifest's signature does not verify: {exc}") from exc
        collection_id = f"{self.identity.name}/{job.collection}"
        if collection_id not in manifest.collections:
            raise _Refusal(f"the signed manifest does not name the collection {collection_id!r}")
        replay = self.ledger.replay_of(job)
        if replay is not None:
            self._audit("job.refused", job_id=job.job_id, project=manifest.project_id, reason="replay")
            raise _Refusal(f"refused by the station: {replay.reason(job)}", rule="replay")
        age_days = (protocol.utc_now() - manifest.created_at).total_seconds() / 86400
        if self.settings.max_train_age_days and age_days > self.settings.max_train_age_days:
            self._audit("job.refused", job_id=job.job_id, project=manifest.project_id, reason="train too old")
            raise _Refusal(
                f"refused by the station: the train was signed {age_days:.0f} days ago, more than the station's "
                f"limit of {self.settings.max_train_age_days} days (sign and submit it again)",
                rule="replay",
            )
        if self.settings.require_grants:
            try:
                grant = check_job_grants(job, station=self.identity.name, stewards=read_stewards(self.state.root))
            except protocol.PolicyError as exc:
                self._audit("job.refused", job_id=job.job_id, project=manifest.project_id, reason=str(exc))
                raise _Refusal(f"refused by the station: {exc}") from exc
            self._audit("grant.verified", job_id=job.job_id, grant=grant.grant_id, steward=grant.steward)
        try:
            policy = read_policy(self.state.root)
            check_acceptance(job, policy)
        except protocol.PolicyError as exc:
            self._audit("job.refused", job_id=job.job_id, project=manifest.project_id, reason=str(exc))
            raise _Refusal(f"refused by the station: {exc}", rule="acceptance") from exc
        if policy.code_gate == "manual" and not code_approved(job, policy):
            what = f"train bundle {manifest.bundle_hash}" + (
                f" and image {manifest.image_digest}" if manifest.image_digest else ""
            )
            raise _Held(Gate.CODE, f"the {what} is not yet approved by this station's operator")
        try:
            check_resources(
                job,
                cpus=self.settings.cpus,
                memory_mb=self.settings.memory_mb,
                timeout_s=self.settings.timeout_s,
                gpus=self._station_gpus(manifest.resources.get("gpu", 0)),
            )
        except protocol.PolicyError as exc:
            self._audit("job.refused", job_id=job.job_id, project=manifest.project_id, reason=str(exc))
            raise _Refusal(f"refused by the station: {exc}", rule="resources") from exc
        record = self.state.read_collection(job.collection)
        if record is None:
            raise _Refusal(f"this station holds no collection {job.collection!r}")
        data_dir = Path(record.root)
        if not data_dir.is_dir():
            raise _Refusal(f"the data folder of the collection {job.collection!r} is missing at the station")
        self._audit("job.verified", job_id=job.job_id, researcher=manifest.researcher, bundle=manifest.bundle_hash)
        return data_dir

    def _download_bundle(self, address: str) -> bytes:
        return self._download_artifact(address, what="train bundle", limit=self.settings.max_bundle_mb * _MB)

    def _download_artifact(self, address: str, *, what: str, limit: int) -> bytes:
        """Download an artifact and check its sha256 against the signed address before anything uses it."""
        chunks: list[bytes] = []
        size = 0
        with self.client.stream("GET", f"/artifacts/{address}") as response:
            if response.status_code != 200:
                raise _Refusal(f"the hub does not deliver the {what} {address}: {answer_summary(response)}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _Refusal(f"the {what} is larger than the station's limit of {limit} bytes")
                chunks.append(chunk)
        data = b"".join(chunks)
        try:
            protocol.verify_content_address(data, address)
        except protocol.ContentHashError as exc:
            raise _Refusal(f"the {what} does not match the signed manifest: {exc}", rule="content-address") from exc
        return data

    def _download_to_file(self, address: str, target: Path, *, what: str, limit: int) -> Path:
        """Stream an artifact to ``target`` (resuming a broken download), checked against its signed address."""
        try:
            return download_file(self.client, f"/artifacts/{address}", target, address=address, max_bytes=limit)
        except TransferRefused as exc:
            if exc.status == 413:
                raise _Refusal(f"the {what} is larger than the station's limit of {limit} bytes") from exc
            raise _Refusal(f"the hub does not deliver the {what} {address}: {exc}") from exc
        except protocol.ContentHashError as exc:
            raise _Refusal(f"the {what} does not match the signed manifest: {exc}", rule="content-address") from exc
        except TransferError as exc:
            raise httpx.HTTPError(str(exc)) from exc

    def _station_gpus(self, asked: float) -> int:
        """How many GPUs one job may have here: the station's ``gpus`` with an executor that gives GPUs
        (Docker, Kubernetes); the sandbox gives none."""
        if not asked:
            return 0
        try:
            return int(getattr(self.executor(), "gpus", 0) or 0) and self.settings.gpus
        except ExecutorError:
            return 0

    def _ensure_image(self, manifest: protocol.TrainManifest) -> str | None:
        """The image to run: the manifest's (downloaded, verified and loaded once), else the station's
        (``federated_image`` for a federated train: it needs PyTorch)."""
        if manifest.image_digest is None:
            if manifest.kind == protocol.TrainKind.FEDERATED:
                return self.settings.federated_image
            return self.settings.train_image
        executor = self.executor()
        if executor.name == "kubernetes":  # the kubelet pulls: only by the digest the researcher signed
            if manifest.image_ref is None or not self.settings.registry_pull:
                raise _Refusal(
                    f"this Kubernetes station runs train images from a registry by digest: the manifest must name "
                    f"image_ref (registry/repository@sha256:...) and the station allow registry_pull "
                    f"(image {manifest.image_digest})",
                    rule="image",
                )
            self._audit("image.ready", image=manifest.image_ref)
            return manifest.image_ref
        engine = getattr(executor, "_engine", None)
        if engine is None:
            return None  # not a Docker executor: the source bundle runs in the sandbox
        from .executors.docker import ensure_image

        def fetch() -> bytes:
            assert manifest.image_archive is not None
            return self._download_artifact(
                manifest.image_archive, what="train image archive", limit=self.settings.max_bundle_mb * 4 * _MB
            )

        pull_ref = None
        if manifest.image_archive is None:
            if manifest.image_ref is None:
                raise _Refusal(f"the train image {manifest.image_digest} is not here and the manifest names no archive")
            if not self.settings.registry_pull:
                raise _Refusal(
                    f"the train image {manifest.image_digest} is not here, and this station pulls no images from "
                    f"registries ({manifest.image_ref}): submit the train with its image archive",
                    rule="image",
                )
            pull_ref = manifest.image_ref
        try:
            image = ensure_image(engine(), manifest.image_digest, None if pull_ref else fetch, pull_ref=pull_ref)
        except ExecutorError as exc:
            self._audit("image.refused", image=manifest.image_digest, reason=str(exc))
            raise _Refusal(f"the train image is refused: {exc}", rule="image") from exc
        self._audit("image.ready", image=image)
        return image

    def executor(self) -> Executor:
        """The executor, chosen at first use."""
        if self._executor is None:
            self._executor = executor_for(self.settings)
        return self._executor

    def _data_view(self, collection: str, data_dir: Path, work: Path) -> Path:
        """The collection as the train sees it: without the files of withdrawn subjects.

        With no withdrawal the folder itself is mounted; otherwise a view of hard links (copies
        across file systems) leaves the withdrawn subjects' files out.
        """
        with DicomIndex(self.state.index_file) as index:
            hidden = index.withdrawn_paths(collection)
        if not hidden:
            return data_dir
        view = work / "data"
        shutil.rmtree(view, ignore_errors=True)
        for path in iter_dicom_paths(data_dir):
            if str(path) in hidden:
                continue
            target = view / path.relative_to(data_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
        self._audit("job.data_view", collection=collection, withdrawn_files=len(hidden))
        return view

    def _run_verified(self, job: Job, work: Path) -> tuple[dict[str, str], RunResult]:
        data_dir = self._data_view(job.collection, self._verify(job), work)
        manifest = job.signed_manifest.manifest
        bundle = self._download_bundle(manifest.bundle_hash)
        train_dir, job_dir, out_dir = work / "train", work / "job", work / "out"
        for folder in (train_dir, job_dir, out_dir):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        try:
            unpack_bundle(bundle, train_dir, max_bytes=self.settings.max_bundle_mb * _MB)
        except protocol.PolicyError as exc:
            raise _Refusal(str(exc)) from exc
        if not (train_dir / manifest.entrypoint).is_file():
            raise _Refusal(f"the train bundle has no entrypoint {manifest.entrypoint!r}")
        job_file = job_dir / "job.json"
        job_document = {
            "job_id": job.job_id,
            "station": self.identity.name,
            "collection": job.collection,
            "parameters": manifest.parameters,
            "outputs": [spec.model_dump(mode="json") for spec in manifest.outputs],
        }
        if job.round is not None:
            job_document["round"] = prepare_round(
                job,
                job_dir,
                state_root=self.state.root,
                download=lambda address, target: self._download_to_file(
                    address, target, what="global model", limit=self.settings.max_model_mb * _MB
                ),
            )
        job_file.write_bytes(protocol.canonical_json(job_document))
        asked = manifest.resources
        try:
            image = self._ensure_image(manifest)
        except ExecutorError as exc:
            raise _Refusal(f"the station cannot run trains: {exc}") from exc
        stop = threading.Event()  # set by the heartbeat when the hub cancels the job
        limit_mb = self.settings.max_output_mb + (self.settings.max_model_mb if job.round is not None else 0)
        spec = RunSpec(
            job_id=job.job_id,
            train_dir=train_dir,
            entrypoint=manifest.entrypoint,
            data_dir=data_dir,
            out_dir=out_dir,
            job_file=job_file,
            timeout_s=min(self.settings.timeout_s, asked.get("time_s", self.settings.timeout_s)),
            memory_mb=int(min(self.settings.memory_mb, asked.get("memory_mb", self.settings.memory_mb))),
            cpus=min(self.settings.cpus, asked.get("cpu", self.settings.cpus)),
            pids=self.settings.pids,
            image=image or self.settings.train_image,
            gpus=int(asked.get("gpu", 0)),
            max_out_bytes=limit_mb * _MB,
            stop=stop,
        )
        try:
            executor = self.executor()
            with self._heartbeats(job.job_id, stop) as why_stopped:
                result = executor.run_train(spec)
        except ExecutorError as exc:
            raise _Refusal(f"the station cannot run trains: {exc}") from exc
        if result.stopped:
            reason = why_stopped[0] if why_stopped else "the hub no longer expects the job"
            self._audit("job.stopped", job_id=job.job_id, executor=result.executor, reason=reason)
            raise _Refusal(f"the station stopped the train: {reason}", rule="stopped")
        self._audit(
            "job.run",
            job_id=job.job_id,
            executor=result.executor,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            duration_s=round(result.duration_s, 3),
        )
        rules = self._disclosure_rules(job.collection)
        tail = filter_log_tail(result.log_tail, rules.is_patient, is_name=rules.is_name)
        result = dataclasses.replace(result, log_tail=tail)
        said = f"; last lines (filtered):\n{tail}" if tail else ""
        if result.out_overflow:
            raise _Refusal(
                f"the train wrote more than the station's limit of {limit_mb} MB to /out and was stopped{said}",
                rule="output size",
            )
        if result.timed_out:
            raise _Refusal(
                f"the train ran longer than the station's limit of {spec.timeout_s:g} s and was stopped{said}",
                rule="time limit",
            )
        if result.exit_code != 0:
            raise _Refusal(f"the train exited with code {result.exit_code}{said}", exit_code=result.exit_code)
        try:
            if job.round is not None:
                keep_station_state(job, out_dir, state_root=self.state.root)
            files = collect_outputs(out_dir, manifest.outputs, max_bytes=limit_mb * _MB)
        except protocol.PolicyError as exc:
            raise _Refusal(str(exc), rule="outputs") from exc
        self._check_disclosure(job, files)
        return files, result

    def _collection_version(self, collection: str) -> str | None:
        """The collection as it was used: when it was last indexed (a harvest or a withdrawal changes it)."""
        record = self.state.read_collection(collection)
        return record.indexed_at.isoformat() if record is not None else None

    def _disclosure_rules(self, collection: str) -> DisclosureRules:
        secret = self.state.load_or_create_pseudonym_key()
        with DicomIndex(self.state.index_file) as index:
            patients = frozenset(index.subjects_for_collection(collection))
            names = index.name_tokens_for_collection(collection)
        return DisclosureRules(
            k=self.settings.k_anonymity,
            max_array=self.settings.output_max_items,
            max_keys=2 * self.settings.output_max_items,
            max_values=20 * self.settings.output_max_items,
            is_patient=lambda text: pseudonym_for_patient_id(text, secret) in patients,
            is_name=lambda word: bool(names) and token_for_name_part(word, secret) in names,
        )

    def _check_disclosure(self, job: Job, files: dict[str, str]) -> None:
        """Withhold outputs that break a disclosure rule: keep them for the steward and say which rule."""
        kinds = {spec.name: spec.type for spec in job.signed_manifest.manifest.outputs}
        decoded = [(name, kinds[name], protocol.b64decode(data)) for name, data in sorted(files.items())]
        try:
            check_disclosure(decoded, self._disclosure_rules(job.collection))
        except OutputViolation as exc:
            review = self.state.root / "review" / file_name_for_job(job.job_id)
            review.mkdir(parents=True, exist_ok=True)
            review.chmod(0o700)
            for name, _kind, data in decoded:
                (review / name).write_bytes(data)
            (review / "withheld.json").write_text(
                json.dumps({"job_id": job.job_id, "output": exc.output, "rule": exc.rule, "reason": str(exc)}),
                encoding="utf-8",
            )
            self._audit("result.withheld", job_id=job.job_id, output=exc.output, rule=exc.rule)
            raise _Refusal(f"the result is withheld for the steward's review: {exc}", rule=exc.rule) from exc

    @contextlib.contextmanager
    def _heartbeats(self, job_id: str, stop_train: threading.Event) -> Iterator[list[str]]:
        """Tell the hub the job is alive while it runs, so its lease does not expire.

        When the hub answers 409 (the job was cancelled: its grant was suspended, revoked or
        expired, or the researcher cancelled the train) ``stop_train`` is set, and the hub's
        reason is the one item of the yielded list.
        """
        done = threading.Event()
        reasons: list[str] = []
        path = f"/stations/me/jobs/{quote(job_id, safe='')}/heartbeat"

        def beat() -> None:
            while not done.wait(self.settings.heartbeat_s):
                try:
                    response = self.client.post(path)
                except httpx.HTTPError as exc:
                    logger.warning("heartbeat for job %s failed: %s", job_id, type(exc).__name__)
                    continue
                if response.status_code == 409:
                    reasons.append(f"the hub no longer expects the job ({answer_summary(response)})")
                    logger.warning("stopping job %s: %s", job_id, reasons[0])
                    stop_train.set()
                    return

        thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
        thread.start()
        try:
            yield reasons
        finally:
            done.set()
            thread.join(timeout=5)

    def upload(self, envelope: ResultEnvelope) -> bool:
        """Upload one queued envelope, retrying; return True when the hub has it (or refused it for good)."""
        path = f"/stations/me/jobs/{quote(envelope.job_id, safe='')}/result"
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            if delay:
                self._sleep(delay)
            try:
                if envelope.update is not None and not self._upload_update(envelope):
                    return True  # refused for good: the envelope was dropped
                response = self.client.post(path, json=envelope.model_dump(mode="json"))
            except httpx.HTTPError as exc:
                logger.warning(
                    "uploading the result of job %s failed (attempt %d): %s", envelope.job_id, attempt + 1, exc
                )
                continue
            if response.status_code in _ACCEPTED:
                self.outbox.remove(envelope.job_id)
                self._audit("result.uploaded", job_id=envelope.job_id, status=envelope.status.value)
                return True
            if response.status_code == 409 or (
                400 <= response.status_code < 500 and response.status_code not in {408, 429}
            ):
                detail = answer_summary(response)
                logger.error("the hub refused the result of job %s for good: %s", envelope.job_id, detail)
                self._audit("result.rejected", job_id=envelope.job_id, detail=detail)
                self.outbox.remove(envelope.job_id)
                return True
            logger.warning("the hub answered %s to the result of job %s", answer_summary(response), envelope.job_id)
        return False

    def _upload_update(self, envelope: ResultEnvelope) -> bool:
        """PUT the kept model update before its envelope (idempotent); False when refused for good."""
        assert envelope.update is not None
        kept = self.outbox.update_file(envelope.job_id)
        path = f"/stations/me/jobs/{quote(envelope.job_id, safe='')}/update/{envelope.update.address}"
        if kept is None:
            logger.error("the model update of job %s is no longer at the station", envelope.job_id)
            return True  # the hub may hold it already; the envelope upload will tell
        if kept.stat().st_size > protocol.DEFAULT_CHUNK_BYTES:
            return self._upload_update_in_chunks(envelope, kept)
        # One signed request covers the body's digest: only an update of at most one chunk goes whole.
        response = self.client.put(
            path, content=kept.read_bytes(), headers={"content-type": "application/octet-stream"}
        )
        if response.status_code in (200, 201):
            return True
        if response.status_code == 413:  # the hub takes smaller requests: send it in its chunk size
            return self._upload_update_in_chunks(envelope, kept)
        if 400 <= response.status_code < 500 and response.status_code not in {408, 429}:
            logger.error("the hub refused the model update of job %s: %s", envelope.job_id, answer_summary(response))
            self._audit("result.rejected", job_id=envelope.job_id, detail=answer_summary(response))
            self.outbox.remove(envelope.job_id)
            return False
        raise httpx.HTTPError(f"the hub answered {response.status_code} to the model update")

    def _upload_update_in_chunks(self, envelope: ResultEnvelope, kept: Path) -> bool:
        """Send a large update as a resumable upload (chunks on the hub's disk); False when refused for good."""
        assert envelope.update is not None
        try:
            upload_file(self.client, envelope.job_id, kept, address=envelope.update.address)
        except TransferRefused as refused:
            logger.error("the hub refused the model update of job %s: %s", envelope.job_id, refused)
            self._audit("result.rejected", job_id=envelope.job_id, detail=str(refused))
            self.outbox.remove(envelope.job_id)
            return False
        except TransferError as exc:  # the retry goes on from the offset the hub holds
            raise httpx.HTTPError(str(exc)) from exc
        return True

    def flush_outbox(self) -> int:
        """Try to upload every queued envelope once; return how many are still waiting."""
        waiting = 0
        for envelope in self.outbox.pending():
            if not self.upload(envelope):
                waiting += 1
        return waiting

    # -- the operator's queue (manual code and release gates) -------------------------------------

    def heartbeat_held(self) -> int:
        """Keep the leases of jobs waiting for the operator; mark those the hub no longer wants.

        Returns how many are still waiting.
        """
        waiting = 0
        for held in self.approvals.all():
            if held.decision is not None:
                continue
            try:
                response = self.client.post(f"/stations/me/jobs/{quote(held.job_id, safe='')}/heartbeat")
            except httpx.HTTPError as exc:
                logger.warning("heartbeat for held job %s failed: %s", held.job_id, type(exc).__name__)
                waiting += 1
                continue
            if response.status_code == 409:
                self.approvals.mark(held.job_id, "cancelled", by="hub", comment=answer_summary(response))
                continue
            waiting += 1
        return waiting

    def _keep_held_leases(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.heartbeat_s):
            try:
                self.heartbeat_held()
            except Exception as exc:  # the loop must outlive any one bad answer
                logger.warning("heartbeats for held jobs failed: %s", type(exc).__name__)

    def carry_out_decisions(self) -> int:
        """Carry out the operator's decisions on held jobs; return how many were carried out."""
        done = 0
        for held in self.approvals.all():
            if held.decision is None:
                continue
            done += 1
            job, by, comment = held.job, held.decided_by or "operator", held.comment
            if held.decision == "cancelled":
                self._audit("job.dropped", job_id=job.job_id, gate=held.gate.value, reason="the hub cancelled it")
                self.approvals.remove(job.job_id)
                continue
            if held.gate == Gate.CODE and held.decision == "approved":
                policy = read_policy(self.state.root)
                manifest = job.signed_manifest.manifest
                if manifest.bundle_hash not in policy.bundles:
                    policy.bundles.append(manifest.bundle_hash)
                if manifest.image_digest and manifest.image_digest not in policy.images:
                    policy.images.append(manifest.image_digest)
                write_policy(self.state.root, policy)
                self._audit("code.approved", job_id=job.job_id, by=by, bundle=manifest.bundle_hash)
                self.approvals.remove(job.job_id)
                self.process_job(job)
                continue
            if held.gate == Gate.RELEASE and held.decision == "approved":
                envelope = self.approvals.envelope(job.job_id)
                if envelope is None:  # pragma: no cover - kept with the hold
                    reason = "the station lost the held result; run the train again"
                    envelope = self._envelope(job, JobStatus.FAILED, failure=JobFailure(reason=reason))
                self._audit("result.released", job_id=job.job_id, by=by)
            else:
                what = "this train's code" if held.gate == Gate.CODE else "the result"
                verb = "did not approve" if held.gate == Gate.CODE else "withheld"
                reason = f"the station's operator {verb} {what}: {comment or 'no reason given'}"
                envelope = self._envelope(job, JobStatus.FAILED, failure=JobFailure(reason=reason[:2000]))
                self._audit(
                    "code.denied" if held.gate == Gate.CODE else "result.withheld",
                    job_id=job.job_id,
                    by=by,
                    rule="operator",
                )
            self.outbox.put(envelope)
            self.ledger.record(job, envelope.status.value)
            self.approvals.remove(job.job_id)
            self.upload(envelope)
        return done

    def resume_received_jobs(self) -> int:
        """Answer jobs received before a crash but never answered; return how many."""
        resumed = 0
        for message in sorted(self.state.work_dir.glob("*/message.json")):
            try:
                job = Job.model_validate_json(message.read_bytes())
            except ValidationError:
                shutil.rmtree(message.parent, ignore_errors=True)
                continue
            logger.info("resuming job %s received before a restart", job.job_id)
            self.process_job(job)
            resumed += 1
        return resumed

    def run(self, *, once: bool = False, stop_event: threading.Event | None = None) -> None:
        """Loop: flush the outbox, long-poll, answer each job; back off on hub errors."""
        stop = stop_event or threading.Event()
        failures = 0
        started = False
        while not stop.is_set():
            try:
                if not started:
                    self.flush_outbox()
                    self.resume_received_jobs()
                    started = True
                    if not once:
                        threading.Thread(
                            target=self._keep_held_leases, args=(stop,), name="held-heartbeats", daemon=True
                        ).start()
                self.flush_outbox()
                self.carry_out_decisions()
                if once:
                    self.heartbeat_held()
                job = self.poll_next_job()
                if job is not None:
                    self.process_job(job)
                failures = 0
            except (httpx.HTTPError, HubError) as exc:
                failures += 1
                delay = min(60.0, 2.0 ** min(failures, 6)) * (0.5 + random.random() / 2)
                logger.warning("the hub cannot be reached or refused (%s); retrying in %.1f s", exc, delay)
                if not once:
                    stop.wait(delay)
            if once:
                break


def run_agent(
    settings: StationSettings,
    *,
    once: bool = False,
    stop_event: threading.Event | None = None,
    client: httpx.Client | None = None,
    executor: Executor | None = None,
) -> None:
    """Run the station agent until ``stop_event`` is set (or one poll with ``once``).

    Parameters
    ----------
    settings
        The station's settings; the state directory must hold an enrolled station.
    once
        Flush the outbox, poll once, answer at most one job, and return.
    stop_event
        Set it to stop the loop between polls.
    client, executor
        Overrides for tests.

    Raises
    ------
    FileNotFoundError
        When the station has not enrolled.
    """
    agent = StationAgent(settings, client=client, executor=executor)
    logger.info("station %s polling %s", agent.identity.name, agent.identity.hub_url)
    try:
        agent.run(once=once, stop_event=stop_event)
    finally:
        if client is None:
            agent.client.close()
