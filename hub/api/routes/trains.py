"""Trains: a researcher's signed manifest becomes one job per granted collection."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlmodel import Session

from hub import audit, crud
from hub.api.deps import (
    ArtifactsDep,
    EngineDep,
    OwnedTrain,
    ReadableTrain,
    ResearcherUser,
    RoundsDep,
    SessionDep,
    WakeupsDep,
)
from hub.models import Collection, FLRunPublic, Job, Train, TrainPublic, TrainsPublic
from protocol import FederatedPlan, SignatureError, SignedManifest, TrainKind, TrainManifest, verify_manifest

router = APIRouter(prefix="/trains", tags=["trains"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_train(
    signed: SignedManifest,
    session: SessionDep,
    user: ResearcherUser,
    artifacts: ArtifactsDep,
    wakeups: WakeupsDep,
    engine: EngineDep,
    rounds: RoundsDep,
) -> TrainPublic:
    """Accept a signed train and queue one job per target collection (a federated train: its first round)."""
    if not user.signing_public_key:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="register your public keys first (PUT /users/me/keys), then sign again"
        )
    try:
        manifest = verify_manifest(signed, expected_public_key=user.signing_public_key)
    except SignatureError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc
    if manifest.researcher != user.username:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"the manifest names researcher {manifest.researcher!r}, not you"
        )
    project = crud.get_project(session=session, project_id=manifest.project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no project {manifest.project_id!r}")
    if not project.has_member(user.username):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="only the project's owner or members may submit trains for it"
        )
    for recipient in manifest.co_recipients:
        member = crud.get_user_by_username(session=session, username=recipient.name)
        if recipient.name == user.username or not project.has_member(recipient.name) or member is None:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"co-recipient {recipient.name!r} is not another member of project {project.id!r}",
            )
        if member.encryption_public_key != recipient.encryption_public_key:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"co-recipient {recipient.name!r}: the key in the manifest is not their registered "
                "encryption key (GET /projects/{id} lists the members' keys)",
            )
    if not artifacts.has(manifest.bundle_hash):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"the train bundle {manifest.bundle_hash} is not uploaded: PUT /artifacts/{manifest.bundle_hash}",
        )
    if manifest.image_archive is not None and not artifacts.has(manifest.image_archive):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"the train image archive {manifest.image_archive} is not uploaded: "
            f"PUT /artifacts/{manifest.image_archive}",
        )
    if manifest.image_archive is not None and manifest.image_digest is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="an image archive needs the image's digest")
    collections: list[Collection] = []
    for collection_id in dict.fromkeys(manifest.collections):
        collection = crud.get_collection(session=session, collection_id=collection_id)
        if collection is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no collection {collection_id!r} in the catalog")
        if not crud.has_grant(session=session, project_id=project.id, collection_id=collection_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"project {project.id!r} holds no active grant on collection {collection_id!r} "
                "(never approved, or suspended, revoked or expired: GET /grants)",
            )
        collections.append(collection)
    earlier = crud.get_train_by_manifest_hash(session=session, manifest_hash=crud.manifest_hash_for(signed))
    if earlier is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"this signed manifest was already submitted as train {earlier.id!r}: sign a new one to run again",
        )
    first_jobs = None
    if manifest.kind == TrainKind.FEDERATED:
        _check_federated(manifest, artifacts)

        def first_jobs(session: Session, train: Train) -> list[Job]:
            return rounds.start_run(session=session, train=train, collections=collections)

    train, jobs = crud.create_train(
        session=session, signed=signed, owner=user, collections=collections, first_jobs=first_jobs
    )
    audit.record_event(
        engine,
        actor=user.username,
        role=user.role.value,
        action="train.submitted",
        subject=train.id,
        details={
            "project": project.id,
            "train": f"{manifest.name}@{manifest.version}",
            "bundle": manifest.bundle_hash,
            "jobs": [job.id for job in jobs],
        },
    )
    wakeups.notify(job.station_id for job in jobs)
    return TrainPublic.from_rows(train, jobs)


@router.get("")
def read_trains(session: SessionDep, user: ResearcherUser) -> TrainsPublic:
    """List the calling researcher's trains with their jobs."""
    data = [
        TrainPublic.from_rows(train, jobs) for train, jobs in crud.list_trains(session=session, owner=user.username)
    ]
    return TrainsPublic(data=data, count=len(data))


@router.get("/{train_id}")
def read_train(train: ReadableTrain, session: SessionDep) -> TrainPublic:
    """Read one of the caller's trains with its jobs."""
    return TrainPublic.from_rows(train, crud.jobs_for_train(session=session, train_id=train.id))


@router.post("/{train_id}/cancel")
def cancel_train(
    train: OwnedTrain, session: SessionDep, user: ResearcherUser, engine: EngineDep, rounds: RoundsDep
) -> TrainPublic:
    """Cancel the train's jobs that have not finished; stations stop hearing about them."""
    cancelled = crud.cancel_train(session=session, train_id=train.id)
    rounds.cancel(train.id, reason=f"cancelled by {user.username}")
    audit.record_event(
        engine,
        actor=user.username,
        role=user.role.value,
        action="train.cancelled",
        subject=train.id,
        details={"jobs": ",".join(cancelled)},
    )
    return TrainPublic.from_rows(train, crud.jobs_for_train(session=session, train_id=train.id))


@router.get("/{train_id}/rounds")
def read_train_rounds(train: ReadableTrain, session: SessionDep, rounds: RoundsDep) -> FLRunPublic:
    """Read a federated train's rounds: who took part, the aggregated and per-station metrics, bytes moved."""
    run = rounds.read_run(session=session, train_id=train.id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"train {train.id!r} is not a federated train")
    return run


def _check_secagg(plan: FederatedPlan) -> None:
    """Secure aggregation sums masked updates: only averaging strategies, dense updates and no noise at the hub."""
    problem = None
    if plan.strategy not in ("fedavg", "fedprox", "fedbn"):
        problem = (
            f"secure aggregation (secagg = true) works with fedavg, fedprox and fedbn, not {plan.strategy}: the hub "
            "would need each station's own model"
        )
    elif plan.compression in ("topk", "sign"):
        problem = (
            f"secure aggregation (secagg = true) cannot use {plan.compression} compression: masked updates are dense; "
            'use compression = "fp16" or "none"'
        )
    elif plan.dp_clip_norm is not None or plan.dp_noise_multiplier is not None:
        problem = (
            "secure aggregation (secagg = true) cannot be combined with the hub's differential privacy: the hub "
            "never sees a station's change to clip it, and the noise would have to be added at the stations"
        )
    elif plan.max_staleness:
        problem = (
            "secure aggregation (secagg = true) needs max_staleness = 0: a late update's masks belong to its round"
        )
    if problem is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=problem)


def _check_dp_sgd(plan: FederatedPlan) -> None:
    """DP-SGD at the stations: one kind of differential privacy per plan, and no batch norm to keep."""
    problem = None
    if plan.dp_clip_norm is not None or plan.dp_noise_multiplier is not None:
        problem = (
            "choose one kind of differential privacy: DP-SGD at each station (dp_sgd_noise_multiplier) or the hub's "
            "noise at aggregation (dp_clip_norm and dp_noise_multiplier), not both"
        )
    elif plan.strategy == "fedbn":
        problem = (
            "DP-SGD (dp_sgd_noise_multiplier) cannot train batch norm, which mixes the examples of a batch, so fedbn "
            "has nothing to keep at the stations: use fedavg or fedprox with GroupNorm or LayerNorm"
        )
    if problem is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=problem)


def _check_federated(manifest: TrainManifest, artifacts: ArtifactsDep) -> None:
    """A federated train declares the safetensors output its update travels in; a private one starts from a
    known model."""
    plan = manifest.federated
    if plan is not None and plan.secagg:
        _check_secagg(plan)
    if plan is not None and (plan.dp_clip_norm is None) != (plan.dp_noise_multiplier is None):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail="differential privacy needs both dp_clip_norm and dp_noise_multiplier in [federated]",
        )
    if plan is not None and plan.dp_sgd_noise_multiplier is not None:
        _check_dp_sgd(plan)
    if plan is not None and plan.dp_clip_norm is not None and plan.initial_model is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail="differential privacy clips each station's change against the model it started from: "
            "upload the initial model (safetensors) and name it as initial_model in [federated]",
        )
    if plan is not None and plan.initial_model is not None and not artifacts.has(plan.initial_model):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"the initial model {plan.initial_model} is not uploaded: PUT /artifacts/{plan.initial_model}",
        )
    wanted = plan.update_output if plan else "update.safetensors"
    kinds = {spec.name: spec.type for spec in manifest.outputs}
    if kinds.get(wanted) != "safetensors":
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"a federated train declares its update as a safetensors output named {wanted!r} in train.toml",
        )
