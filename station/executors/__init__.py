"""Executors run one train in isolation: ``run_train(spec) -> RunResult``.

:class:`SandboxExecutor` uses bubblewrap; ``station.executors.docker.DockerExecutor`` uses a
Docker engine and is imported only when chosen (:func:`executor_for`).
"""

from ._base import Executor as Executor
from ._base import ExecutorError as ExecutorError
from ._base import RunResult as RunResult
from ._base import RunSpec as RunSpec
from ._selection import executor_for as executor_for
from ._selection import is_docker_ready as is_docker_ready
from .sandbox import SandboxExecutor as SandboxExecutor

__all__ = [
    "Executor",
    "ExecutorError",
    "RunResult",
    "RunSpec",
    "SandboxExecutor",
    "executor_for",
    "is_docker_ready",
]
