"""Station settings, read from the environment (prefix ``TRAINYARD_STATION_``).

Every default is the safe one: k-anonymity 5, isolation required, tight run limits.
Settings are built when asked for, never at import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_STATE_DIR", "ExecutorName", "StationSettings"]

DEFAULT_STATE_DIR = Path("station-state")

ExecutorName = Literal["auto", "sandbox", "docker", "kubernetes"]


class StationSettings(BaseSettings):
    """How one station runs.

    Parameters
    ----------
    state_dir
        Where the station keeps its identity, keys, index, collections, work and outbox.
    k_anonymity
        Counts between 1 and ``k - 1`` are published as suppressed.
    executor
        ``"sandbox"`` (bubblewrap), ``"docker"``, or ``"auto"``: Docker when an engine answers
        and the train image exists, else the sandbox.
    allow_unisolated
        Development only: run trains as a plain subprocess when bubblewrap cannot start.
    train_image
        The image Docker runs when a manifest names no image digest.
    poll_wait_s
        How long one long-poll for the next job waits at the hub.
    timeout_s, memory_mb, cpus, pids
        Limits of every train run.
    max_bundle_mb, max_output_mb
        Size caps of a downloaded train bundle (unpacked) and of the outputs of one job.

    Examples
    --------
    >>> StationSettings(state_dir=Path("/tmp/s")).k_anonymity
    5
    """

    model_config = SettingsConfigDict(env_prefix="TRAINYARD_STATION_", extra="ignore")

    state_dir: Path = DEFAULT_STATE_DIR
    k_anonymity: int = Field(default=5, ge=3, le=11, description="smallest published count (3 to 11)")
    executor: ExecutorName = "auto"
    allow_unisolated: bool = False
    train_image: str = "trainyard/train-base:0.1"
    registry_pull: bool = Field(
        default=False,
        description="pull a train's image from a registry by digest when the manifest names one and no archive "
        "(the engine must reach the registry; the pulled image's id must be the signed one)",
    )
    federated_image: str = Field(
        default="trainyard/train-torch:0.1",
        description="the image federated trains run in at a Docker station when their manifest names none "
        "(the train base image plus PyTorch: bash docker/build-train-torch.sh)",
    )
    gpus: int = Field(
        default=0,
        ge=0,
        le=16,
        description="GPUs one train may have (Docker device requests or nvidia.com/gpu); 0: this station lends "
        "none; a train gets GPUs only when its train.toml asks",
    )
    gpu_devices: tuple[str, ...] = Field(
        default=(),
        max_length=16,
        description="the device ids (e.g. '0', '1' or GPU UUIDs) Docker may hand out; empty: any",
    )
    poll_wait_s: int = Field(default=25, ge=0, le=60)
    timeout_s: float = Field(default=600.0, gt=0)
    memory_mb: int = Field(default=2048, ge=64)
    cpus: float = Field(default=1.0, gt=0)
    pids: int = Field(default=256, ge=8)
    max_bundle_mb: int = Field(default=256, ge=1)
    max_output_mb: int = Field(default=64, ge=1)
    max_model_mb: int = Field(default=4096, ge=1, description="largest global model or update of a federated round")
    kubernetes_namespace: str = "trainyard-trains"
    kubernetes_work_claim: str = Field(
        default="trainyard-work", description="PVC holding the state's work folder, shared with train pods"
    )
    kubernetes_data_claim: str = Field(default="trainyard-data", description="PVC holding the collections")
    kubernetes_data_root: Path = Field(
        default=Path("/var/lib/trainyard/data"), description="where the agent sees the data claim"
    )
    harvest_workers: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=64, description="processes reading headers"
    )
    heartbeat_s: float = Field(default=30.0, gt=0, description="how often a running job's lease is renewed")
    max_train_age_days: int = Field(
        default=90,
        ge=0,
        le=3650,
        description="refuse trains the researcher signed longer ago than this (0: no limit); with the job "
        "ledger this bounds what a compromised hub can replay",
    )
    output_max_items: int = Field(
        default=1000, ge=10, description="longest list (or CSV) an output may hold: longer is per-record data"
    )
    require_grants: bool = Field(
        default=True,
        description="run a job only with a grant signed by a steward key in stewards.json (keep on in production)",
    )
