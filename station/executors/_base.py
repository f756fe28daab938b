"""The one interface every executor implements: ``run_train(spec) -> RunResult``.

Inside the train's environment the same paths hold for every executor:

========================  ===============================================
``/data``                 the collection, read-only
``/out``                  the only writable place; declared outputs go here
``/train``                the unpacked train bundle, read-only
``/job/job.json``         job id, station, collection, parameters, outputs
========================  ===============================================

and the variables ``TRAINYARD_DATA``, ``TRAINYARD_OUT``, ``TRAINYARD_TRAIN`` and
``TRAINYARD_JOB`` name them (the unisolated development mode points them at host paths).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = ["Executor", "ExecutorError", "RunResult", "RunSpec", "tree_size"]


class ExecutorError(Exception):
    """The executor cannot run trains here (engine missing, isolation unavailable)."""


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What to run, on which data, within which limits."""

    job_id: str
    train_dir: Path
    entrypoint: str
    data_dir: Path
    out_dir: Path
    job_file: Path
    timeout_s: float = 600.0
    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 256
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    gpus: int = 0
    max_out_bytes: int | None = None
    """The most the train may write to ``/out`` in all; beyond it the train is killed (``out_overflow``)."""
    stop: threading.Event | None = field(default=None, compare=False)
    """Set when the hub no longer wants the job (grant suspended, revoked or expired; train cancelled):
    the executor kills the train and reports ``stopped``."""


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """How a run ended; ``log_tail`` is raw train output and must be filtered before it leaves."""

    exit_code: int
    timed_out: bool
    log_tail: str
    duration_s: float
    executor: str
    devices: tuple[str, ...] = ()
    stopped: bool = False
    out_overflow: bool = False

    @property
    def succeeded(self) -> bool:
        """True when the train exited 0 within its time limit and was not stopped."""
        return self.exit_code == 0 and not self.timed_out and not self.stopped and not self.out_overflow


class Executor(Protocol):
    """Runs one train in isolation and reports how it ended."""

    name: str

    def run_train(self, spec: RunSpec) -> RunResult:
        """Run the train described by ``spec`` and wait for it to end."""
        ...


def tree_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links are not followed; a vanishing entry counts 0)."""
    total = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += tree_size(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total
