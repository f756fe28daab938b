"""Run a train under bubblewrap: no network, read-only data, a throw-away root.

The sandbox gets fresh namespaces for everything (``--unshare-all``: user, network, pid,
ipc, uts, cgroup), runs as uid 65534 with every capability dropped, sees the host's system
folders and the station's Python installation read-only, and only these paths of the job:

=================  ==================  =============
host               sandbox             mode
=================  ==================  =============
``spec.data_dir``  ``/data``           read-only
``spec.train_dir`` ``/train``          read-only
job file folder    ``/job``            read-only
``spec.out_dir``   ``/out``            read-write
(tmpfs)            ``/tmp``            read-write
=================  ==================  =============

The environment is cleared; the train gets the ``TRAINYARD_*`` variables, ``PATH``,
``PYTHONPATH`` (the station's ``trainkit`` and ``protocol`` packages, bound read-only under
``/opt/trainyard/python``), ``HOME=/tmp`` and thread-count variables matching ``spec.cpus``.
Resource limits are rlimits set before ``bwrap`` starts (address space, processes, file
size, CPU time) plus a wall-clock timeout that kills the whole process group.

Without bubblewrap the executor refuses to run (:class:`ExecutorError`) unless
``allow_unisolated=True``, a development mode that runs the train as a plain subprocess with
the variables pointing at host paths.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ._base import ExecutorError, RunResult, RunSpec, tree_size

__all__ = ["SandboxExecutor"]

logger = logging.getLogger(__name__)

UNISOLATED_WARNING = (
    "!!! UNISOLATED MODE: bubblewrap is unavailable, so trains run as plain subprocesses WITH network "
    "access and the station's file-system rights. Use this only for development, never with real data. !!!"
)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
)
_LIB_MOUNT = "/opt/trainyard/python"
_OUR_PACKAGES = ("trainkit", "protocol")
_SANDBOX_UID = "65534"
_LOG_LINES = 200
_LOG_BYTES = 65536
_STOP_POLL_S = 0.25  # how often a running train checks whether the hub still wants it


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _read_tail(handle: IO[bytes]) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - _LOG_BYTES))
    text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-_LOG_LINES:])


def _count_own_tasks() -> int:
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def _limits_setter(spec: RunSpec, *, max_file_mb: int) -> Callable[[], None]:
    memory = spec.memory_mb * 1024 * 1024
    # RLIMIT_NPROC counts every task of the (host) user, so the cap is "what runs now + pids".
    tasks = _count_own_tasks() + spec.pids
    cpu_seconds = math.ceil(spec.timeout_s * max(spec.cpus, 1.0)) + 1
    file_size = max_file_mb * 1024 * 1024

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


class SandboxExecutor:
    """Runs trains under bubblewrap (see the module docstring for the isolation it gives).

    Parameters
    ----------
    allow_unisolated
        When bubblewrap is missing or cannot start, run trains as plain subprocesses (with a
        loud warning) instead of raising :class:`ExecutorError`. Development only.
    python
        The interpreter that runs ``.py`` entrypoints; its installation is bound read-only.
    bwrap
        The bubblewrap program (name on ``PATH`` or a path).
    max_file_mb
        The largest file a train may write (RLIMIT_FSIZE).

    Examples
    --------
    >>> SandboxExecutor().name
    'sandbox'
    """

    name = "sandbox"

    def __init__(
        self,
        *,
        allow_unisolated: bool = False,
        python: str = sys.executable,
        bwrap: str = "bwrap",
        max_file_mb: int = 256,
    ) -> None:
        self.allow_unisolated = allow_unisolated
        self.python = python
        self.bwrap = bwrap
        self.max_file_mb = max_file_mb
        self._isolation_error: str | None = None
        self._probed = False

    def __repr__(self) -> str:
        return f"SandboxExecutor(allow_unisolated={self.allow_unisolated}, bwrap={self.bwrap!r})"

    def isolation_error(self) -> str | None:
        """Return why bubblewrap cannot isolate trains here, or None when it can (probed once)."""
        if not self._probed:
            self._probed = True
            self._isolation_error = self._probe()
        return self._isolation_error

    def _probe(self) -> str | None:
        program = shutil.which(self.bwrap)
        if program is None:
            return f"bubblewrap ({self.bwrap!r}) is not installed or not on PATH"
        command = [program, "--unshare-all", "--die-with-parent", *self._system_args(), "--", "/usr/bin/true"]
        try:
            probe = subprocess.run(command, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap cannot start: {exc}"
        if probe.returncode != 0:
            detail = probe.stderr.decode("utf-8", errors="replace").strip()[:300]
            return f"bubblewrap cannot create a sandbox here (exit {probe.returncode}): {detail}"
        return None

    def run_train(self, spec: RunSpec) -> RunResult:
        """Run one train and wait for it to end.

        Raises
        ------
        ExecutorError
            When bubblewrap cannot isolate trains and unisolated mode is not allowed.
        """
        problem = self.isolation_error()
        if problem is None:
            command, env, cwd, executor = self._sandboxed_command(spec), self._sandbox_env(spec), None, self.name
        elif self.allow_unisolated:
            logger.warning(UNISOLATED_WARNING)
            logger.warning("reason: %s", problem)
            print(UNISOLATED_WARNING, file=sys.stderr)
            command, env, cwd = self._unisolated_command(spec), self._host_env(spec), spec.train_dir
            executor = "unisolated"
        else:
            raise ExecutorError(
                f"{problem}. The sandbox executor needs bubblewrap (apt-get install bubblewrap) and "
                "user namespaces; for development only, allow unisolated runs."
            )
        return self._run(command, env=env, cwd=cwd, spec=spec, executor=executor)

    def _run(
        self, command: list[str], *, env: dict[str, str], cwd: Path | None, spec: RunSpec, executor: str
    ) -> RunResult:
        started = time.monotonic()
        timed_out = False
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_limits_setter(spec, max_file_mb=self.max_file_mb),
            )
            stopped = overflow = False
            deadline = started + spec.timeout_s
            while True:
                try:
                    exit_code = proc.wait(timeout=max(0.0, min(_STOP_POLL_S, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    stopped = spec.stop is not None and spec.stop.is_set()
                    overflow = spec.max_out_bytes is not None and tree_size(spec.out_dir) > spec.max_out_bytes
                    timed_out = not (stopped or overflow) and time.monotonic() >= deadline
                    if stopped or overflow or timed_out:
                        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                            os.killpg(proc.pid, signal.SIGKILL)
                        exit_code = proc.wait()
                        break
            log_tail = _read_tail(log)
        if spec.max_out_bytes is not None and tree_size(spec.out_dir) > spec.max_out_bytes:
            overflow = True  # written between the last look and the end
        return RunResult(
            exit_code=exit_code,
            timed_out=timed_out,
            log_tail=log_tail,
            duration_s=time.monotonic() - started,
            executor=executor,
            stopped=stopped,
            out_overflow=overflow,
        )

    def _system_args(self) -> list[str]:
        args: list[str] = []
        for folder in _SYSTEM_DIRS:
            if os.path.islink(folder):
                args += ["--symlink", os.readlink(folder), folder]
            elif os.path.isdir(folder):
                args += ["--ro-bind", folder, folder]
        for path in _ETC_FILES:
            args += ["--ro-bind-try", path, path]
        return args

    def _python_dirs(self) -> list[Path]:
        candidates = {
            Path(sys.prefix),
            Path(sys.base_prefix),
            Path(sys.exec_prefix),
            Path(sys.base_exec_prefix),
            Path(self.python).absolute().parent.parent,
            Path(os.path.realpath(self.python)).parent.parent,
        }
        system = tuple(Path(folder) for folder in _SYSTEM_DIRS)
        for candidate in candidates:
            if not os.access(candidate, os.R_OK | os.X_OK) and os.path.lexists(candidate):
                raise ExecutorError(
                    f"the sandbox cannot read the Python installation at {candidate} as this user; "
                    "run the agent with a Python its user can read (e.g. the system's /usr/bin/python3)"
                )
        dirs = sorted(c for c in candidates if c.is_dir() and not any(c.is_relative_to(s) for s in system))
        return [d for d in dirs if not any(d != other and d.is_relative_to(other) for other in dirs)]

    def _sandboxed_command(self, spec: RunSpec) -> list[str]:
        args = [
            shutil.which(self.bwrap) or self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            _SANDBOX_UID,
            "--gid",
            _SANDBOX_UID,
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "train",
            *self._system_args(),
            # the sandbox's own /tmp first: Python or the project may live under the host's /tmp,
            # and binds made after it stay visible (bwrap applies its operations in order)
            "--tmpfs",
            "/tmp",  # noqa: S108
        ]
        for folder in self._python_dirs():
            args += ["--ro-bind", str(folder), str(folder)]
        for package in _OUR_PACKAGES:
            location = _package_dir(package)
            if location is not None:
                args += ["--ro-bind", str(location), f"{_LIB_MOUNT}/{package}"]
        args += [
            "--ro-bind",
            str(spec.data_dir.resolve()),
            "/data",
            "--ro-bind",
            str(spec.train_dir.resolve()),
            "/train",
            "--ro-bind",
            str(spec.job_file.resolve().parent),
            "/job",
            "--bind",
            str(spec.out_dir.resolve()),
            "/out",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--remount-ro",
            "/",
            "--chdir",
            "/train",
            "--clearenv",
        ]
        for key, value in self._sandbox_env(spec).items():
            args += ["--setenv", key, value]
        return [*args, "--", *self._entry_command(spec, train_root=Path("/train"))]

    def _entry_command(self, spec: RunSpec, *, train_root: Path) -> list[str]:
        target = str(train_root / spec.entrypoint)
        return [self.python, "-s", "-B", target] if spec.entrypoint.endswith(".py") else [target]

    def _unisolated_command(self, spec: RunSpec) -> list[str]:
        return self._entry_command(spec, train_root=spec.train_dir.resolve())

    def _common_env(self, spec: RunSpec) -> dict[str, str]:
        threads = str(max(1, math.ceil(spec.cpus)))
        env = {
            "PATH": f"{Path(self.python).absolute().parent}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }
        env.update(spec.env)
        return env

    def _sandbox_env(self, spec: RunSpec) -> dict[str, str]:
        env = self._common_env(spec)
        env.update(
            {
                "HOME": "/tmp",  # noqa: S108 - the sandbox's own tmpfs
                "PYTHONPATH": _LIB_MOUNT,
                "TRAINYARD_DATA": "/data",
                "TRAINYARD_OUT": "/out",
                "TRAINYARD_TRAIN": "/train",
                "TRAINYARD_JOB": f"/job/{spec.job_file.name}",
            }
        )
        return env

    def _host_env(self, spec: RunSpec) -> dict[str, str]:
        env = self._common_env(spec)
        paths = sorted({str(p.parent) for p in map(_package_dir, _OUR_PACKAGES) if p is not None})
        env.update(
            {
                "HOME": tempfile.gettempdir(),
                "PYTHONPATH": os.pathsep.join(paths),
                "TRAINYARD_DATA": str(spec.data_dir.resolve()),
                "TRAINYARD_OUT": str(spec.out_dir.resolve()),
                "TRAINYARD_TRAIN": str(spec.train_dir.resolve()),
                "TRAINYARD_JOB": str(spec.job_file.resolve()),
            }
        )
        return env
