"""Run a train in a locked-down Docker container, through the Docker SDK.

The container gets no network, a read-only root file system, a non-root user
(uid/gid 10001), no capabilities, ``no-new-privileges``, memory / CPU / pids limits and a
small ``/tmp`` tmpfs. The collection, the train and the job file are bind-mounted
read-only; only the output folder is writable. A wall-clock timeout kills the container,
and the container is always removed, whatever happens.

No image is ever pulled: the train base image is built offline by
``docker/build-train-base.sh``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from docker.client import DockerClient
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import DeviceRequest, Ulimit

from ._base import ExecutorError, RunResult, RunSpec, tree_size

__all__ = ["DEFAULT_IMAGE", "TRAIN_UID", "DockerExecutor", "docker_available"]

DEFAULT_IMAGE = "trainyard/train-base:0.1"
TRAIN_UID = 10001
LOG_TAIL_LINES = 200
LOG_TAIL_CHARS = 20_000
TMPFS_SIZE = "64m"
JOB_LABEL = "org.trainyard.job"
NO_ENGINE = "no Docker engine answers ({detail}); start one with `bash docker/ensure-engine.sh`"
NO_IMAGE = (
    "the train image {image!r} is not on this Docker engine; build it with `bash docker/build-train-base.sh` "
    "(and `bash docker/build-train-torch.sh` for federated trains)"
)

# Where the train sees its folders; the same for every executor (see ``_base``).
DATA_MOUNT = "/data"
OUT_MOUNT = "/out"
TRAIN_MOUNT = "/train"
JOB_DIR_MOUNT = "/job"  # the job file, and a federated round's inputs (global model, station state)
JOB_MOUNT = "/job/job.json"

Container = Any  # docker.models.containers.Container; the SDK ships no type hints


def _connect(client: DockerClient | None, *, timeout: int = 30) -> DockerClient:
    """Return ``client`` or a client from the environment, checked with a ping."""
    try:
        connected = client or DockerClient.from_env(timeout=timeout)
        connected.ping()
    except DockerException as exc:
        raise ExecutorError(NO_ENGINE.format(detail=exc)) from exc
    except OSError as exc:  # a socket that exists but refuses
        raise ExecutorError(NO_ENGINE.format(detail=exc)) from exc
    return connected


def docker_available(image: str = DEFAULT_IMAGE, *, client: DockerClient | None = None) -> bool:
    """Tell whether a Docker engine answers here and holds ``image``.

    Parameters
    ----------
    image
        The train image that must be present (nothing is pulled).
    client
        An existing client; by default one is made from the environment.

    Returns
    -------
    bool
        True when trains can run through :class:`DockerExecutor` now.

    Examples
    --------
    >>> executor = DockerExecutor() if docker_available() else None  # doctest: +SKIP
    """
    try:
        connected = _connect(client, timeout=5)
        connected.images.get(image)
    except (ExecutorError, DockerException, OSError):
        return False
    return True


def _entrypoint_in_container(entrypoint: str) -> str:
    """Map the train's relative entrypoint to its path under /train, refusing escapes."""
    relative = PurePosixPath(entrypoint)
    if not entrypoint or relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ExecutorError(f"the entrypoint {entrypoint!r} must be a relative path inside the train folder")
    return str(PurePosixPath(TRAIN_MOUNT) / relative)


def _prepare_out_dir(out_dir: Path) -> None:
    """Create the output folder and make it writable by the train's uid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if os.geteuid() == 0:
            os.chown(out_dir, TRAIN_UID, TRAIN_UID)
            out_dir.chmod(0o755)
        else:
            out_dir.chmod(0o777)
    except OSError as exc:
        raise ExecutorError(f"cannot make the output folder {out_dir} writable for uid {TRAIN_UID}: {exc}") from exc


def _make_readable(path: Path) -> None:
    """Let the train's uid read the job folder: the job file and a round's inputs (no secrets; stations
    may write them 0600). The folder is the job's own, under the station's owner-only work folder."""
    if path.is_dir():
        mode = path.stat().st_mode
        wanted = mode | stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
        if wanted != mode:
            path.chmod(wanted)
        for child in path.iterdir():
            if child.is_file() and not child.is_symlink():
                _make_readable(child)
        return
    mode = path.stat().st_mode
    wanted = mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    if wanted != mode:
        path.chmod(wanted)


def _log_tail(container: Container) -> str:
    """The last lines of the container's stdout and stderr, bounded in size."""
    try:
        raw: bytes = container.logs(stdout=True, stderr=True, tail=LOG_TAIL_LINES)
    except (DockerException, OSError):
        return ""
    return raw.decode("utf-8", errors="replace")[-LOG_TAIL_CHARS:]


class DockerExecutor:
    """Runs trains in Docker containers with no network and read-only data.

    Parameters
    ----------
    image
        The default train image, used when a spec names none. It must already exist on the
        engine; nothing is pulled.
    client
        A Docker SDK client; by default one is made from the environment at the first run.
    gpus
        The most GPUs one train may have (device requests, only for trains that ask); 0: none.
    gpu_devices
        The device ids Docker may hand out (a train asking for n gets the first n); empty: any n.
    on_start
        Called with the SDK container object right after it started, before the executor
        waits for it (for audit records and for tests that inspect the container).

    Examples
    --------
    >>> result = DockerExecutor().run_train(spec)  # doctest: +SKIP
    >>> result.succeeded  # doctest: +SKIP
    True
    """

    name = "docker"

    def __init__(
        self,
        *,
        image: str = DEFAULT_IMAGE,
        client: DockerClient | None = None,
        gpus: int = 0,
        gpu_devices: tuple[str, ...] = (),
        on_start: Callable[[Container], None] | None = None,
    ) -> None:
        self.image = image
        self.gpus = int(gpus)
        self.gpu_devices = tuple(gpu_devices)
        self._client = client
        self._on_start = on_start

    def __repr__(self) -> str:
        return f"DockerExecutor(image={self.image!r}, gpus={self.gpus!r})"

    def _engine(self) -> DockerClient:
        """The connected client, made on first use."""
        self._client = _connect(self._client)
        return self._client

    def container_options(self, spec: RunSpec, image: str) -> dict[str, Any]:
        """The ``containers.create`` keyword arguments for ``spec``: isolation and limits."""
        for label, path in (("train folder", spec.train_dir), ("data folder", spec.data_dir)):
            if not path.is_dir():
                raise ExecutorError(f"the {label} {path} does not exist or is not a folder")
        if not spec.job_file.is_file():
            raise ExecutorError(f"the job file {spec.job_file} does not exist")
        memory = f"{int(spec.memory_mb)}m"
        environment = {
            **spec.env,
            "TRAINYARD_DATA": DATA_MOUNT,
            "TRAINYARD_OUT": OUT_MOUNT,
            "TRAINYARD_TRAIN": TRAIN_MOUNT,
            "TRAINYARD_JOB": f"{JOB_DIR_MOUNT}/{spec.job_file.name}",
            "HOME": "/tmp",  # noqa: S108 - the container's own tmpfs
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        options: dict[str, Any] = {
            "image": image,
            "command": ["python3", _entrypoint_in_container(spec.entrypoint)],
            "working_dir": TRAIN_MOUNT,
            "user": f"{TRAIN_UID}:{TRAIN_UID}",
            "environment": environment,
            "volumes": {
                str(spec.data_dir.resolve()): {"bind": DATA_MOUNT, "mode": "ro"},
                str(spec.train_dir.resolve()): {"bind": TRAIN_MOUNT, "mode": "ro"},
                str(spec.job_file.parent.resolve()): {"bind": JOB_DIR_MOUNT, "mode": "ro"},
                str(spec.out_dir.resolve()): {"bind": OUT_MOUNT, "mode": "rw"},
            },
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,noexec,nosuid,nodev,size={TMPFS_SIZE}"},  # noqa: S108
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": memory,
            "memswap_limit": memory,
            "nano_cpus": int(spec.cpus * 1e9),
            "pids_limit": int(spec.pids),
            # one file can never outgrow the /out limit; the run is watched for the total
            "ulimits": [Ulimit(name="fsize", soft=spec.max_out_bytes, hard=spec.max_out_bytes)]
            if spec.max_out_bytes is not None
            else [],
            "ipc_mode": "private",
            "labels": {JOB_LABEL: spec.job_id},
            "detach": True,
        }
        if spec.gpus > 0:
            if not self.gpus:
                raise ExecutorError(f"the train asks {spec.gpus} GPU(s); this station's Docker executor gives none")
            if spec.gpus > self.gpus:
                raise ExecutorError(f"the train asks {spec.gpus} GPU(s); this station gives at most {self.gpus}")
            if self.gpu_devices:
                if spec.gpus > len(self.gpu_devices):
                    raise ExecutorError(
                        f"the train asks {spec.gpus} GPU(s); this station has {len(self.gpu_devices)} to hand out"
                    )
                chosen = list(self.gpu_devices[: spec.gpus])
                options["device_requests"] = [DeviceRequest(device_ids=chosen, capabilities=[["gpu"]])]
            else:
                options["device_requests"] = [DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])]
        return options

    def run_train(self, spec: RunSpec) -> RunResult:
        """Run the train in ``spec`` in a fresh container and wait for it (at most ``spec.timeout_s``).

        Returns
        -------
        RunResult
            Exit code, whether it timed out, the tail of its output and how long it ran.

        Raises
        ------
        ExecutorError
            When no engine answers, the image is missing, a folder is missing or the
            container cannot be created.
        """
        client = self._engine()
        image = spec.image or self.image
        try:
            client.images.get(image)
        except ImageNotFound as exc:
            raise ExecutorError(NO_IMAGE.format(image=image)) from exc
        except (DockerException, OSError) as exc:
            raise ExecutorError(NO_ENGINE.format(detail=exc)) from exc
        _prepare_out_dir(spec.out_dir)
        options = self.container_options(spec, image)
        _make_readable(spec.job_file.parent)

        try:
            container = client.containers.create(**options)
        except (DockerException, OSError) as exc:
            raise ExecutorError(f"cannot create the train container from {image!r}: {exc}") from exc
        try:
            return self._run(container, spec)
        finally:
            try:
                container.remove(force=True)
            except NotFound:
                pass
            except (DockerException, OSError):
                time.sleep(0.5)
                with contextlib.suppress(DockerException, OSError):
                    container.remove(force=True)

    def _run(self, container: Container, spec: RunSpec) -> RunResult:
        """Start the created container, enforce the timeout and collect how it ended."""
        started = time.monotonic()
        try:
            container.start()
        except APIError as exc:
            raise ExecutorError(f"the train container did not start: {exc.explanation or exc}") from exc
        if self._on_start is not None:
            self._on_start(container)
        overflow = False

        def should_stop() -> bool:
            nonlocal overflow
            if spec.max_out_bytes is not None and tree_size(spec.out_dir) > spec.max_out_bytes:
                overflow = True
            return overflow or (spec.stop is not None and spec.stop.is_set())

        ended = self._wait(container, deadline=started + spec.timeout_s, should_stop=should_stop)
        duration = time.monotonic() - started
        stopped = ended is None and not overflow and spec.stop is not None and spec.stop.is_set()
        timed_out = ended is None and not (stopped or overflow)
        if ended is None:
            with contextlib.suppress(APIError):  # it may have ended by itself in the meantime
                container.kill()
            ended = self._wait(container, deadline=time.monotonic() + 30)
        state = ended or {}
        exit_code = int(state.get("ExitCode", -1))
        tail = _log_tail(container)
        if spec.max_out_bytes is not None and tree_size(spec.out_dir) > spec.max_out_bytes:
            overflow = True  # written between the last look and the end
        if overflow:
            tail += f"\n[trainyard] killed: wrote more than {spec.max_out_bytes} bytes to /out\n"
        elif stopped:
            tail += "\n[trainyard] stopped: the hub no longer wants this job\n"
        elif timed_out:
            tail += f"\n[trainyard] killed after the time limit of {spec.timeout_s:g} s\n"
        elif state.get("OOMKilled"):
            tail += f"\n[trainyard] killed: out of memory (limit {spec.memory_mb} MB)\n"
        requests = (container.attrs.get("HostConfig") or {}).get("DeviceRequests") or []
        devices = tuple(
            f"gpu:{','.join(item.get('DeviceIDs') or []) or 'count=' + str(item.get('Count'))}" for item in requests
        )
        return RunResult(
            exit_code=exit_code,
            timed_out=timed_out,
            log_tail=tail,
            duration_s=duration,
            executor=self.name,
            devices=devices,
            stopped=stopped,
            out_overflow=overflow,
        )

    @staticmethod
    def _wait(
        container: Container, *, deadline: float, should_stop: Callable[[], bool] = lambda: False
    ) -> dict[str, Any] | None:
        """Poll until the container stops; its ``State``, or None at the deadline or once ``should_stop()``."""
        pause = 0.05
        while True:
            container.reload()
            state: dict[str, Any] = container.attrs.get("State", {})
            if state.get("Status") in {"exited", "dead"}:
                return state
            remaining = deadline - time.monotonic()
            if remaining <= 0 or should_stop():
                return None
            time.sleep(min(pause, remaining))
            pause = min(pause * 1.5, 0.5)


def ensure_image(
    client: DockerClient, digest: str, fetch: Callable[[], bytes] | None, *, pull_ref: str | None = None
) -> str:
    """Make the image ``digest`` (an image id, ``sha256:...``) present; return it.

    The engine is the cache: an image already there is not fetched again. Otherwise
    ``fetch`` returns the ``docker save`` archive (its content address already verified by
    the caller), or, without one, the image is pulled from a registry by ``pull_ref``
    (``registry/repository@sha256:<manifest digest>``, content-addressed at the registry).
    Either way the image's id must then equal ``digest``, else the image is removed and
    :class:`ExecutorError` names both ids.
    """
    try:
        client.images.get(digest)
        return digest
    except ImageNotFound:
        pass
    except DockerException as exc:
        raise ExecutorError(f"cannot ask the Docker engine for the image {digest}: {exc}") from exc
    if fetch is None:
        if pull_ref is None:
            raise ExecutorError(f"the image {digest} is not here and there is neither an archive nor a registry")
        return _pull(client, digest, pull_ref)
    archive = fetch()
    try:
        before = {image.id for image in client.images.list(all=True)}
        loaded = client.images.load(archive)
    except DockerException as exc:
        raise ExecutorError(f"docker load refused the train image archive: {exc}") from exc
    ids = sorted({image.id for image in loaded})
    if ids != [digest]:
        for image_id in ids:
            if image_id != digest and image_id not in before:  # never remove what was here already
                with contextlib.suppress(DockerException):
                    client.images.remove(image_id, force=True)
        raise ExecutorError(f"the image archive holds {ids or 'no image'}, not the signed image {digest}")
    return digest


def _pull(client: DockerClient, digest: str, ref: str) -> str:
    try:
        before = {image.id for image in client.images.list(all=True)}
        pulled = client.images.pull(ref)
    except DockerException as exc:
        raise ExecutorError(f"cannot pull the train image {ref}: {exc}") from exc
    if pulled.id != digest:
        if pulled.id not in before:  # never remove what was here already
            with contextlib.suppress(DockerException):
                client.images.remove(pulled.id, force=True)
        raise ExecutorError(f"the registry's image {ref} is {pulled.id}, not the signed image {digest}")
    return digest
