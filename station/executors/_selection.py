"""Pick the executor a station's settings ask for."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from ..config import StationSettings
from ._base import Executor, ExecutorError
from .sandbox import SandboxExecutor

__all__ = ["executor_for", "is_docker_ready"]

logger = logging.getLogger(__name__)


def is_docker_ready(image: str) -> bool:
    """Tell whether a Docker engine answers and holds ``image`` (never raises)."""
    try:
        module: Any = importlib.import_module("station.executors.docker")
        return bool(module.docker_available(image))
    except Exception as exc:  # no SDK, no engine, no image: all mean "not ready"
        logger.debug("docker is not ready: %s", type(exc).__name__)
        return False


def _docker_executor(settings: StationSettings) -> Executor:
    try:
        module: Any = importlib.import_module("station.executors.docker")
    except ImportError as exc:
        raise ExecutorError(f"the docker executor is not available in this installation: {exc}") from exc
    executor: Executor = module.DockerExecutor(
        image=settings.train_image, gpus=settings.gpus, gpu_devices=settings.gpu_devices
    )
    return executor


def _kubernetes_executor(settings: StationSettings) -> Executor:
    try:
        module: Any = importlib.import_module("station.executors.kubernetes")
        importlib.import_module("kubernetes")
    except ImportError as exc:
        raise ExecutorError(
            f"the kubernetes executor needs the kubernetes client: pip install 'trainyard[kubernetes]' ({exc})"
        ) from exc
    cluster = module.KubernetesSettings(
        namespace=settings.kubernetes_namespace,
        image=settings.train_image,
        work_claim=settings.kubernetes_work_claim,
        work_root=settings.state_dir / "work",
        data_claim=settings.kubernetes_data_claim,
        data_root=settings.kubernetes_data_root,
        gpus=settings.gpus,
    )
    executor: Executor = module.KubernetesExecutor(cluster)
    return executor


def executor_for(settings: StationSettings) -> Executor:
    """Return the executor named by ``settings.executor``.

    Parameters
    ----------
    settings
        ``executor`` is ``"sandbox"``, ``"docker"`` or ``"auto"`` (Docker when an engine
        answers and ``train_image`` exists, else the sandbox).

    Raises
    ------
    ExecutorError
        When ``"docker"`` is asked for and the Docker executor cannot be loaded.

    Examples
    --------
    >>> from pathlib import Path
    >>> executor_for(StationSettings(state_dir=Path("s"), executor="sandbox")).name
    'sandbox'
    """
    if settings.executor == "docker":
        return _docker_executor(settings)
    if settings.executor == "kubernetes":
        return _kubernetes_executor(settings)
    if settings.executor == "auto" and is_docker_ready(settings.train_image):
        try:
            return _docker_executor(settings)
        except ExecutorError as exc:
            logger.warning("falling back to the sandbox executor: %s", exc)
    return SandboxExecutor(allow_unisolated=settings.allow_unisolated)
