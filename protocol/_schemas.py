"""Messages exchanged by hub, stations, trains and clients (pydantic v2).

Every model forbids unknown fields, so a typo or an injected field is an error, not
a silent no-op. Signed messages carry a ``signature`` over the canonical JSON of all
their other fields (see :mod:`protocol._crypto`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from protocol._grants import SignedGrant

__all__ = [
    "CollectionMetadata",
    "CollectionPublication",
    "CollectionSummary",
    "DiseaseCode",
    "FederatedPlan",
    "Job",
    "JobFailure",
    "JobStatus",
    "ModelUpdateRef",
    "NumericRange",
    "OutputSpec",
    "ResultEnvelope",
    "ResultPayload",
    "Role",
    "RoundSpec",
    "SealedBox",
    "SignedManifest",
    "StationEnrolled",
    "StationEnrolment",
    "TrainKind",
    "TrainManifest",
    "utc_now",
]

ContentAddress = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
PublicKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
RESOURCE_KEYS = ("cpu", "memory_mb", "gpu", "time_s")
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(StrEnum):
    """What a hub user may do."""

    RESEARCHER = "researcher"
    STEWARD = "steward"
    OPERATOR = "operator"
    ADMIN = "admin"


class TrainKind(StrEnum):
    """An analysis train returns aggregates; a federated train returns model updates."""

    ANALYSIS = "analysis"
    FEDERATED = "federated"


class JobStatus(StrEnum):
    """Where one train's job at one station stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StationEnrolment(_Message):
    """A station's first call: it redeems a one-time token and registers its public keys."""

    name: Slug
    enrolment_token: str = Field(min_length=16, max_length=256)
    signing_public_key: PublicKey
    encryption_public_key: PublicKey


class StationEnrolled(_Message):
    """The hub's answer to an enrolment: the station's id and its API token (shown once)."""

    station_id: str
    api_token: str


class NumericRange(_Message):
    """A disclosure-safe range of one acquisition parameter: percentiles over at least k subjects.

    Never a single patient's minimum or maximum: ``low`` and ``high`` are the 5th and 95th
    percentiles of the per-subject values, published only when ``subjects >= k``.
    """

    low: float
    median: float
    high: float
    unit: str = Field(default="", max_length=20)
    subjects: int = Field(ge=0)


class CollectionSummary(_Message):
    """Aggregate counts a station publishes; ``None`` means suppressed (between 1 and k-1).

    Breakdowns (``modalities`` … ``age_bands``) count **subjects** per value. ``quality``
    counts series per quality flag, ``coverage`` is the percentage of series carrying each
    header field, ``ranges`` hold acquisition-parameter percentiles (slice thickness, kVp,
    field strength).
    """

    k: int = Field(ge=2, le=20)
    subjects: int | None = Field(ge=0)
    studies: int | None = Field(ge=0)
    series: int | None = Field(ge=0)
    instances: int | None = Field(ge=0)
    modalities: dict[str, int | None]
    body_parts: dict[str, int | None]
    manufacturers: dict[str, int | None]
    sexes: dict[str, int | None] = Field(default_factory=dict)
    age_bands: dict[str, int | None] = Field(default_factory=dict)
    min_typical_age: int | None = Field(default=None, ge=0, le=150)
    max_typical_age: int | None = Field(default=None, ge=0, le=150)
    quality: dict[str, int | None] = Field(default_factory=dict)
    coverage: dict[str, float] = Field(default_factory=dict)
    ranges: dict[str, NumericRange] = Field(default_factory=dict)


class DiseaseCode(_Message):
    """A condition the collection is about, as a code of a coding system."""

    system: Annotated[str, StringConstraints(pattern=r"^(ICD-10|SNOMED-CT)$")]
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-]+$")
    label: str = Field(default="", max_length=200)


class CollectionMetadata(_Message):
    """What people say about a collection (``collection.toml``): never computed from images."""

    keywords: tuple[str, ...] = Field(default=(), max_length=50)
    disease_codes: tuple[DiseaseCode, ...] = Field(default=(), max_length=50)
    data_use: tuple[Annotated[str, StringConstraints(pattern=r"^DUO:[0-9]{7}$")], ...] = Field(
        default=(), max_length=20, description="GA4GH DUO codes: the data-use conditions"
    )
    license: str | None = Field(default=None, max_length=300)
    contact_name: str | None = Field(default=None, max_length=200)
    contact_email: str | None = Field(default=None, max_length=200)
    health_categories: tuple[str, ...] = Field(default=(), max_length=20)
    annotations: tuple[str, ...] = Field(
        default=(), max_length=20, description="annotation types present, e.g. segmentation, bounding-box, label"
    )


class CollectionPublication(_Message):
    """A station's description of one collection: DCAT metadata as Turtle plus the summary."""

    station: Slug
    collection: Slug
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=5000)
    turtle: str = Field(min_length=1, max_length=2_000_000)
    summary: CollectionSummary
    metadata: CollectionMetadata = Field(default_factory=CollectionMetadata)
    published_at: datetime
    signature: str = ""


class OutputSpec(_Message):
    """One output a train declares; the station refuses anything undeclared."""

    name: str
    type: Annotated[str, StringConstraints(pattern=r"^(json|csv|safetensors|text)$")] = "json"

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not _OUTPUT_NAME.match(value) or value in {".", ".."}:
            raise ValueError("output names are plain file names: letters, digits, '.', '_' or '-'")
        return value


class FederatedPlan(_Message):
    """How the hub runs a federated train: the strategy, its rounds and their guards (``[federated]``)."""

    strategy: Annotated[str, StringConstraints(pattern=r"^(fedavg|fedprox|fedbn|swt|cwt|ensemble)$")] = "fedavg"
    rounds: int = Field(default=3, ge=1, le=1000, description="rounds to run (swt/cwt: derived from the stations)")
    cycles: int = Field(default=1, ge=1, le=100, description="cwt: passes through the stations")
    min_stations: int = Field(default=1, ge=1, description="fewest updates a round may aggregate")
    fraction: float = Field(default=1.0, gt=0.0, le=1.0, description="share of the stations asked each round")
    round_deadline_s: float = Field(default=3600.0, gt=0.0, le=7 * 24 * 3600.0)
    max_staleness: int = Field(default=0, ge=0, le=10, description="rounds a late update may still be used")
    local_epochs: int = Field(default=1, ge=1, le=1000)
    learning_rate: float = Field(default=0.01, gt=0.0, le=10.0)
    batch_size: int = Field(default=32, ge=1, le=65536)
    proximal_mu: float = Field(default=0.01, ge=0.0, le=100.0, description="fedprox: the proximal coefficient")
    compression: Annotated[str, StringConstraints(pattern=r"^(none|fp16|topk|sign)$")] = "fp16"
    topk_fraction: float = Field(
        default=0.05, gt=0.0, le=1.0, description="topk: share of each tensor's entries sent (bench/fl chose 5 %)"
    )
    dp_clip_norm: float | None = Field(
        default=None, gt=0.0, description="DP: each station's change clipped to this L2 norm"
    )
    dp_noise_multiplier: float | None = Field(
        default=None, ge=0.0, description="DP: Gaussian noise std on the sum of changes, in clip norms"
    )
    dp_sgd_noise_multiplier: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description="DP-SGD at each station: Gaussian noise std on each batch's summed clipped gradients, in clips",
    )
    dp_sgd_clip: float = Field(
        default=1.0, gt=0.0, le=1e6, description="DP-SGD: each example's gradient clipped to this L2 norm"
    )
    dp_delta: float = Field(default=1e-5, gt=0.0, lt=1.0, description="DP (hub or stations): the δ of (ε, δ)")
    initial_model: ContentAddress | None = Field(
        default=None,
        description="the round-1 global model (an uploaded safetensors artifact); differential privacy needs it, "
        "since changes are clipped against the model the stations started from",
    )
    secagg: bool = Field(
        default=False, description="secure aggregation: pairwise-masked updates, the hub learns only their sum"
    )
    secagg_clip: float = Field(
        default=64.0, gt=0.0, le=1e6, description="secagg: each element of a station's change is clipped to this bound"
    )
    secagg_phase_s: float = Field(
        default=300.0, gt=0.0, le=24 * 3600.0, description="secagg: seconds each step after the keys waits for stations"
    )
    seed: int = Field(default=0, ge=0)
    early_stopping_metric: str | None = Field(default=None, max_length=64)
    early_stopping_mode: Annotated[str, StringConstraints(pattern=r"^(max|min)$")] = "max"
    early_stopping_patience: int = Field(default=0, ge=0, le=1000, description="0: never stop early")
    update_output: str = Field(default="update.safetensors", description="the declared output holding the update")


class RoundSpec(_Message):
    """What a federated job carries: its round, the global model by content address, the round config."""

    number: int = Field(ge=1)
    global_model: ContentAddress | None = Field(default=None, description="None in round 1: trains start from a seed")
    config: dict[str, Any] = Field(default_factory=dict)


class ModelUpdateRef(_Message):
    """A station's model update, uploaded as an artifact before its (signed) envelope names it."""

    address: ContentAddress
    size: int = Field(ge=0)
    num_examples: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)


class Recipient(_Message):
    """Someone besides the researcher for whom results are sealed: a member of the project."""

    name: str = Field(min_length=1, max_length=64)
    encryption_public_key: PublicKey


class TrainManifest(_Message):
    """What a researcher signs: the exact code (by hash), where it may run, who gets results."""

    name: Slug
    version: str = Field(default="0.1.0", max_length=40)
    kind: TrainKind = TrainKind.ANALYSIS
    entrypoint: str = Field(min_length=1, max_length=200)
    bundle_hash: ContentAddress
    image_digest: str | None = None
    outputs: tuple[OutputSpec, ...] = Field(min_length=1, max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict)
    project_id: str
    collections: tuple[str, ...] = Field(min_length=1)
    researcher: str
    signing_public_key: PublicKey
    encryption_public_key: PublicKey
    created_at: datetime
    nonce: str = Field(min_length=16, max_length=64)
    image_archive: ContentAddress | None = Field(
        default=None, description="content address of the image's 'docker save' archive on the hub"
    )
    image_ref: str | None = Field(
        default=None,
        max_length=400,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*@sha256:[0-9a-f]{64}$",
        description="where a station may pull the image instead: registry/repository@sha256:<manifest digest>; "
        "the pulled image's id must still be image_digest",
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="what the train asks for: cpu (cores), memory_mb, gpu (devices), time_s; stations cap each",
    )
    federated: FederatedPlan | None = Field(default=None, description="a federated train's round plan")
    co_recipients: tuple[Recipient, ...] = Field(
        default=(),
        max_length=20,
        description="project members who may also open the results: the station seals them for each",
    )

    @field_validator("resources")
    @classmethod
    def _known_resources(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(RESOURCE_KEYS))
        if unknown:
            raise ValueError(f"unknown resources {unknown}; known: {list(RESOURCE_KEYS)}")
        if any(amount < 0 for amount in value.values()):
            raise ValueError("resources are never negative")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _relative_entrypoint(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("the entrypoint is a path inside the train folder")
        return value


class SignedManifest(_Message):
    """A train manifest with the researcher's Ed25519 signature over its canonical JSON."""

    manifest: TrainManifest
    signature: str


class Job(_Message):
    """One train at one station and collection, as the station receives it."""

    job_id: str
    train_id: str
    station: Slug
    collection: Slug
    signed_manifest: SignedManifest
    issued_at: datetime
    grants: tuple[SignedGrant, ...] = Field(
        default=(), description="the stewards' signed grants the hub holds for this project and collection"
    )
    round: RoundSpec | None = Field(default=None, description="a federated train's round (None for analysis trains)")


class SealedBox(_Message):
    """Bytes sealed for one recipient: X25519 agreement, HKDF-SHA256, AES-256-GCM."""

    recipient_key_id: str
    ephemeral_public_key: PublicKey
    nonce: str
    ciphertext: str
    associated_data: str = ""


class JobFailure(_Message):
    """Why a job failed, in words the station chose; never raw train output."""

    reason: str = Field(max_length=2000)
    exit_code: int | None = None


class ResultPayload(_Message):
    """What the researcher finds inside the sealed box."""

    job_id: str
    station: Slug
    collection: Slug
    files: dict[str, str]
    executor: str
    started_at: datetime
    finished_at: datetime
    log_tail: str = Field(default="", max_length=4000, description="the train's last log lines, filtered")
    provenance: dict[str, Any] | None = Field(
        default=None, description="a PROV-O record (JSON-LD) of the run: train, parameters, station, collection, times"
    )


class ResultEnvelope(_Message):
    """A station's signed upload: the sealed payload, or a failure the hub may read."""

    job_id: str
    train_id: str
    station: Slug
    status: JobStatus
    sealed: SealedBox | None = None
    sealed_for: tuple[SealedBox, ...] = Field(
        default=(), description="the same payload sealed for each of the manifest's co-recipients"
    )
    failure: JobFailure | None = None
    update: ModelUpdateRef | None = None
    created_at: datetime
    signature: str = ""
