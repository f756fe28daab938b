"""The Kubernetes executor's manifests, field by field (no cluster is reachable here)."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from station.config import StationSettings
from station.executors import ExecutorError, RunSpec, executor_for
from station.executors.kubernetes import JOB_LABEL, KubernetesExecutor, KubernetesSettings

WORK = Path("/srv/station/work")
DATA = Path("/srv/data")


def make_spec(**overrides: Any) -> RunSpec:
    fields: dict[str, Any] = {
        "job_id": "Job_42",
        "train_dir": WORK / "job-42" / "train",
        "entrypoint": "main.py",
        "data_dir": DATA / "chest-ct",
        "out_dir": WORK / "job-42" / "out",
        "job_file": WORK / "job-42" / "job" / "job.json",
        "timeout_s": 120.0,
        "memory_mb": 1024,
        "cpus": 1.5,
    }
    return RunSpec(**{**fields, **overrides})


def executor(**overrides: Any) -> KubernetesExecutor:
    return KubernetesExecutor(KubernetesSettings(work_root=WORK, data_root=DATA, **overrides))


def serialised(manifest: object) -> Any:
    return k8s.ApiClient().sanitize_for_serialization(manifest)


def test_job_pod_is_locked_down() -> None:
    job = serialised(executor().job_manifest(make_spec()))
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    context = container["securityContext"]

    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 120
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert (pod["hostNetwork"], pod["hostPID"], pod["hostIPC"]) == (False, False, False)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"] == {"cpu": "1500m", "memory": "1024Mi", "ephemeral-storage": "1Gi"}
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_mounts_data_read_only_and_only_out_writable() -> None:
    job = serialised(executor().job_manifest(make_spec()))
    pod = job["spec"]["template"]["spec"]
    mounts = {mount["mountPath"]: mount for mount in pod["containers"][0]["volumeMounts"]}

    assert mounts["/data"] == {"mountPath": "/data", "name": "data", "readOnly": True, "subPath": "chest-ct"}
    assert mounts["/train"]["readOnly"] is True and mounts["/train"]["subPath"] == "job-42/train"
    assert mounts["/job"]["readOnly"] is True and mounts["/job"]["subPath"] == "job-42/job"
    assert mounts["/out"]["readOnly"] is False and mounts["/out"]["subPath"] == "job-42/out"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "trainyard-data", "readOnly": True}
    assert volumes["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert set(volumes) == {"data", "work", "tmp"}  # no hostPath, no docker socket


def test_network_policy_denies_everything_for_the_jobs_pod() -> None:
    spec = make_spec()
    policy = serialised(executor().network_policy(spec))
    job = serialised(executor().job_manifest(spec))

    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == [] and policy["spec"]["egress"] == []
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == {JOB_LABEL: "train-job-42"}
    assert job["spec"]["template"]["metadata"]["labels"] == selector


def test_gpus_only_when_the_train_asks_and_the_station_allows_them() -> None:
    asking = dataclasses.replace(make_spec(), gpus=1)

    limits = serialised(executor(gpus=2).job_manifest(asking))["spec"]["template"]["spec"]["containers"][0]

    assert limits["resources"]["limits"]["nvidia.com/gpu"] == "1"
    plain = serialised(executor(gpus=2).job_manifest(make_spec()))["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in plain["resources"]["limits"]
    with pytest.raises(ExecutorError, match="gives at most 0"):
        executor().job_manifest(asking)
    assert executor(gpus=2).gpus == 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("out_dir", Path("/elsewhere/out"), "not on the shared volume"),
        ("data_dir", Path("/etc"), "not on the shared volume"),
        ("entrypoint", "../escape.py", "not a path inside the train"),
    ],
)
def test_paths_outside_the_volumes_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ExecutorError, match=message):
        executor().job_manifest(make_spec(**{field: value}))


def test_station_settings_select_the_kubernetes_executor(tmp_path: Path) -> None:
    chosen = executor_for(StationSettings(state_dir=tmp_path, executor="kubernetes"))

    assert chosen.name == "kubernetes"
    assert isinstance(chosen, KubernetesExecutor)
    assert chosen.settings.work_root == tmp_path / "work"


def test_no_cluster_configured_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    with pytest.raises(ExecutorError, match="no Kubernetes cluster is configured"):
        executor().run_train(make_spec())
