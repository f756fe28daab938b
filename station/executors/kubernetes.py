"""Run a train as a Kubernetes Job with the Docker executor's restrictions (official ``kubernetes`` client).

For stations that run a cluster. The agent and the train pods share a work volume (a
PersistentVolumeClaim that is also mounted into the agent at ``work_root``): the agent unpacks
the train and writes the job file there, the pod writes its outputs there. The collection is a
second claim, mounted read-only. Each run creates:

* a ``NetworkPolicy`` that selects only this job's pod and allows no ingress and no egress;
* a ``Job`` (no retries, ``activeDeadlineSeconds`` = the timeout, removed after it ends) whose pod
  runs as uid/gid 10001, non-root, no service-account token, no service links, no host
  namespaces, the runtime's default seccomp profile, a read-only root file system, every
  capability dropped, no privilege escalation, CPU / memory / ephemeral-storage limits, a small
  in-memory ``/tmp``, and ``nvidia.com/gpu`` only when the station allows GPUs.

The pids limit is a node setting in Kubernetes (the kubelet's ``podPidsLimit``); operators set it
there. Nothing here is tested against a cluster (none is reachable where Trainyard is built); the
manifests are, field by field.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ._base import ExecutorError, RunResult, RunSpec

__all__ = ["JOB_LABEL", "KubernetesExecutor", "KubernetesSettings"]

JOB_LABEL = "org.trainyard/job"
TRAIN_UID = 10001
TMP_SIZE = "64Mi"
LOG_TAIL_CHARS = 20_000
DATA_MOUNT, OUT_MOUNT, TRAIN_MOUNT, JOB_MOUNT = "/data", "/out", "/train", "/job/job.json"
JOB_DIR_MOUNT = "/job"  # the job file, and a federated round's inputs (global model, station state)


@dataclass(frozen=True, kw_only=True)
class KubernetesSettings:
    """Where train pods run and which volumes they see.

    Parameters
    ----------
    namespace
        The namespace of train Jobs (give the agent's service account rights only there).
    image
        The train image (by digest in production).
    work_claim, work_root
        The shared work claim, and where the agent sees it; every run folder must be under it.
    data_claim, data_root
        The claim holding the collections, and where the agent sees it.
    gpus
        The most GPUs one train's pod may have (``nvidia.com/gpu``, only for trains that ask); 0: none.
    ephemeral_storage
        The pod's ephemeral-storage limit.
    ttl_after_finished_s
        How long Kubernetes keeps a finished Job (the executor also deletes it).
    """

    namespace: str = "trainyard-trains"
    image: str = "trainyard/train-base:0.1"
    work_claim: str = "trainyard-work"
    work_root: Path = Path("/var/lib/trainyard/work")
    data_claim: str = "trainyard-data"
    data_root: Path = Path("/var/lib/trainyard/data")
    gpus: int = 0
    ephemeral_storage: str = "1Gi"
    ttl_after_finished_s: int = 600


def _sub_path(path: Path, root: Path, what: str) -> str:
    try:
        return str(PurePosixPath(path.resolve().relative_to(root.resolve())))
    except ValueError as exc:
        raise ExecutorError(f"the {what} {path} is not on the shared volume mounted at {root}") from exc


def _name_for(job_id: str) -> str:
    safe = "".join(ch if ch.isalnum() else "-" for ch in job_id.lower()).strip("-")
    return f"train-{safe}"[:63].rstrip("-")


class KubernetesExecutor:
    """Runs trains as locked-down Kubernetes Jobs (see the module docstring).

    Parameters
    ----------
    settings
        Namespace, image and volumes.
    api_client
        A ``kubernetes.client.ApiClient``; by default from the in-cluster config, else kubeconfig.
    """

    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings | None = None, *, api_client: Any | None = None) -> None:
        self.settings = settings or KubernetesSettings()
        self._api_client = api_client

    def __repr__(self) -> str:
        return f"KubernetesExecutor(namespace={self.settings.namespace!r}, image={self.settings.image!r})"

    @property
    def gpus(self) -> int:
        """The most GPUs one train's pod may have."""
        return self.settings.gpus

    # -- manifests ---------------------------------------------------------------------------

    def network_policy(self, spec: RunSpec) -> Any:
        """A deny-all NetworkPolicy for this job's pod (no ingress, no egress rules)."""
        from kubernetes import client as k8s

        return k8s.V1NetworkPolicy(
            api_version="networking.k8s.io/v1",
            kind="NetworkPolicy",
            metadata=k8s.V1ObjectMeta(
                name=_name_for(spec.job_id),
                namespace=self.settings.namespace,
                labels={JOB_LABEL: _name_for(spec.job_id)},
            ),
            spec=k8s.V1NetworkPolicySpec(
                pod_selector=k8s.V1LabelSelector(match_labels={JOB_LABEL: _name_for(spec.job_id)}),
                policy_types=["Ingress", "Egress"],
                ingress=[],
                egress=[],
            ),
        )

    def job_manifest(self, spec: RunSpec) -> Any:
        """The ``V1Job`` for ``spec``: isolation, limits and mounts."""
        from kubernetes import client as k8s

        settings = self.settings
        name = _name_for(spec.job_id)
        entry = PurePosixPath(spec.entrypoint)
        if entry.is_absolute() or ".." in entry.parts:
            raise ExecutorError(f"the entrypoint {spec.entrypoint!r} is not a path inside the train")
        train_sub = _sub_path(spec.train_dir, settings.work_root, "train folder")
        out_sub = _sub_path(spec.out_dir, settings.work_root, "output folder")
        job_sub = _sub_path(spec.job_file.parent, settings.work_root, "job folder")
        data_sub = _sub_path(spec.data_dir, settings.data_root, "collection")
        limits = {
            "cpu": f"{int(spec.cpus * 1000)}m",
            "memory": f"{int(spec.memory_mb)}Mi",
            "ephemeral-storage": settings.ephemeral_storage,
        }
        if spec.gpus > 0:
            if spec.gpus > settings.gpus:
                raise ExecutorError(
                    f"the train asks {spec.gpus} GPU(s); this station's cluster gives at most {settings.gpus}"
                )
            limits["nvidia.com/gpu"] = str(spec.gpus)
        environment = {
            **spec.env,
            "TRAINYARD_DATA": DATA_MOUNT,
            "TRAINYARD_OUT": OUT_MOUNT,
            "TRAINYARD_TRAIN": TRAIN_MOUNT,
            "TRAINYARD_JOB": f"{JOB_DIR_MOUNT}/{spec.job_file.name}",
            "HOME": "/tmp",  # noqa: S108 - the pod's own in-memory /tmp
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        container = k8s.V1Container(
            name="train",
            image=spec.image or settings.image,
            image_pull_policy="IfNotPresent",
            command=["python3", str(PurePosixPath(TRAIN_MOUNT) / entry)],
            working_dir=TRAIN_MOUNT,
            env=[k8s.V1EnvVar(name=key, value=value) for key, value in sorted(environment.items())],
            resources=k8s.V1ResourceRequirements(limits=limits, requests=dict(limits)),
            security_context=k8s.V1SecurityContext(
                allow_privilege_escalation=False,
                privileged=False,
                read_only_root_filesystem=True,
                run_as_non_root=True,
                run_as_user=TRAIN_UID,
                run_as_group=TRAIN_UID,
                capabilities=k8s.V1Capabilities(drop=["ALL"]),
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
            volume_mounts=[
                k8s.V1VolumeMount(name="data", mount_path=DATA_MOUNT, sub_path=data_sub, read_only=True),
                k8s.V1VolumeMount(name="work", mount_path=TRAIN_MOUNT, sub_path=train_sub, read_only=True),
                k8s.V1VolumeMount(name="work", mount_path=JOB_DIR_MOUNT, sub_path=job_sub, read_only=True),
                k8s.V1VolumeMount(name="work", mount_path=OUT_MOUNT, sub_path=out_sub, read_only=False),
                k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),  # noqa: S108
            ],
        )
        pod = k8s.V1PodSpec(
            restart_policy="Never",
            automount_service_account_token=False,
            enable_service_links=False,
            host_network=False,
            host_pid=False,
            host_ipc=False,
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=TRAIN_UID,
                run_as_group=TRAIN_UID,
                fs_group=TRAIN_UID,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[container],
            volumes=[
                k8s.V1Volume(
                    name="data",
                    persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                        claim_name=settings.data_claim, read_only=True
                    ),
                ),
                k8s.V1Volume(
                    name="work",
                    persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=settings.work_claim),
                ),
                k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=TMP_SIZE)),
            ],
        )
        labels = {JOB_LABEL: name}
        return k8s.V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=k8s.V1ObjectMeta(name=name, namespace=settings.namespace, labels=labels),
            spec=k8s.V1JobSpec(
                backoff_limit=0,
                active_deadline_seconds=max(1, int(spec.timeout_s)),
                ttl_seconds_after_finished=settings.ttl_after_finished_s,
                template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=pod),
            ),
        )

    # -- running -----------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._api_client is not None:
            return self._api_client
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config
        from kubernetes.config.config_exception import ConfigException

        try:
            k8s_config.load_incluster_config()
        except ConfigException:
            try:
                k8s_config.load_kube_config()
            except (ConfigException, OSError) as exc:
                raise ExecutorError(f"no Kubernetes cluster is configured for the station: {exc}") from exc
        self._api_client = k8s.ApiClient()
        return self._api_client

    def run_train(self, spec: RunSpec) -> RunResult:
        """Create the policy and the Job, wait for the end or the deadline, collect the log, clean up."""
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        job, policy = self.job_manifest(spec), self.network_policy(spec)
        api = self._client()
        batch, core, networking = k8s.BatchV1Api(api), k8s.CoreV1Api(api), k8s.NetworkingV1Api(api)
        namespace, name = self.settings.namespace, job.metadata.name
        started = time.monotonic()
        try:
            networking.create_namespaced_network_policy(namespace, policy)  # before the pod can exist
            batch.create_namespaced_job(namespace, job)
        except ApiException as exc:
            raise ExecutorError(f"the cluster refused the train job: {exc.status} {exc.reason}") from exc
        try:
            timed_out, exit_code = self._wait(batch, core, name, deadline=started + spec.timeout_s + 30, stop=spec.stop)
            stopped = spec.stop is not None and spec.stop.is_set() and exit_code == -1 and timed_out
            log = self._log(core, name)
        finally:
            options = k8s.V1DeleteOptions(propagation_policy="Background")
            with contextlib.suppress(ApiException):
                batch.delete_namespaced_job(name, namespace, body=options)
            with contextlib.suppress(ApiException):
                networking.delete_namespaced_network_policy(name, namespace)
        return RunResult(
            exit_code=exit_code,
            timed_out=timed_out and not stopped,
            log_tail=log[-LOG_TAIL_CHARS:],
            duration_s=time.monotonic() - started,
            executor=self.name,
            stopped=stopped,
        )

    def _wait(
        self, batch: Any, core: Any, name: str, *, deadline: float, stop: threading.Event | None = None
    ) -> tuple[bool, int]:
        """Poll the Job: ``(timed_out, exit_code)``; ``(True, -1)`` at the deadline or once ``stop`` is set
        (the Job is deleted, which kills its pod)."""
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            status = batch.read_namespaced_job_status(name, self.settings.namespace).status
            if status.succeeded:
                return False, 0
            if status.failed:
                reasons = {condition.reason for condition in status.conditions or []}
                return "DeadlineExceeded" in reasons, self._exit_code(core, name)
            time.sleep(1.0)
        return True, -1

    def _pods(self, core: Any, name: str) -> list[Any]:
        selector = f"{JOB_LABEL}={name}"
        return list(core.list_namespaced_pod(self.settings.namespace, label_selector=selector).items)

    def _exit_code(self, core: Any, name: str) -> int:
        for pod in self._pods(core, name):
            for state in pod.status.container_statuses or []:
                if state.state and state.state.terminated:
                    return int(state.state.terminated.exit_code)
        return -1

    def _log(self, core: Any, name: str) -> str:
        from kubernetes.client.exceptions import ApiException

        for pod in self._pods(core, name):
            try:
                return str(core.read_namespaced_pod_log(pod.metadata.name, self.settings.namespace, tail_lines=200))
            except ApiException:
                continue
        return ""
