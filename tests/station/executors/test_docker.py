"""DockerExecutor against a real Docker engine and the real train base image.

The session fixture ``docker_client`` (tests/conftest.py) starts the engine and builds the
base image; the tests skip, with the reason printed, only when no engine can be started.
"""

import importlib.util
import json
import textwrap
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pydicom
import pytest
from docker.client import DockerClient

from station.executors._base import ExecutorError, RunSpec
from station.executors.docker import DEFAULT_IMAGE, JOB_LABEL, DockerExecutor, docker_available

REPO = Path(__file__).resolve().parents[3]
COHORT_STATS = REPO / "examples" / "trains" / "cohort-stats"


def load_sample_dicom() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_dicom", REPO / "examples" / "trains" / "sample_dicom.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_spec(tmp_path: Path, *, data_dir: Path, train_dir: Path, outputs: list[str], **limits: Any) -> RunSpec:
    job_file = tmp_path / "job" / "job.json"
    job_file.parent.mkdir(parents=True, exist_ok=True)
    document = {"job_id": "job-1", "station": "site-a", "collection": "chest-ct", "outputs": outputs}
    job_file.write_text(json.dumps(document))
    job_file.chmod(0o600)  # the executor must make it readable for the train's uid
    return RunSpec(
        job_id=f"test-{tmp_path.name}",
        train_dir=train_dir,
        entrypoint="main.py",
        data_dir=data_dir,
        out_dir=tmp_path / "out",
        job_file=job_file,
        **limits,
    )


def write_train(tmp_path: Path, source: str) -> Path:
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    (train_dir / "main.py").write_text(textwrap.dedent(source))
    return train_dir


def containers_for(client: DockerClient, spec: RunSpec) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"{JOB_LABEL}={spec.job_id}"}))


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    (path / "secret.dcm").write_bytes(b"original")
    return path


@pytest.mark.docker
def test_run_cohort_stats_on_dicom(docker_client: DockerClient, tmp_path: Path) -> None:
    # Prepare
    data = tmp_path / "data"
    files = load_sample_dicom().write_sample_collection(data, subjects=12)
    spec = make_spec(tmp_path, data_dir=data, train_dir=COHORT_STATS, outputs=["cohort.json"], timeout_s=120)
    # Execute
    result = DockerExecutor(client=docker_client).run_train(spec)
    # Assert
    assert result.succeeded, result.log_tail
    assert result.executor == "docker"
    assert "wrote cohort.json" in result.log_tail
    actual = json.loads((spec.out_dir / "cohort.json").read_text())
    assert (actual["subjects"], actual["series"], actual["instances"]) == (12, 18, 30)
    assert actual["subjects_by_sex"] == {"F": 6, "M": 6, "O": 0, "unknown": 0}
    assert actual["series_by_modality"] == {"CT": 12, "MR": 6}
    assert actual["files"]["unreadable"] is None
    assert actual["mean_intensity_by_modality"]["CT"]["n_series"] == 12
    text = (spec.out_dir / "cohort.json").read_text()
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert first.PatientID not in text and first.SeriesInstanceUID not in text
    assert containers_for(docker_client, spec) == []


@pytest.mark.docker
def test_container_is_locked_down(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    # Prepare
    train = write_train(tmp_path, "print('hello')\n")
    spec = make_spec(
        tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"], memory_mb=300, cpus=0.5, pids=64,
        max_out_bytes=8 * 2**20,
    )  # fmt: skip
    seen: dict[str, Any] = {}

    def inspect(container: Any) -> None:
        seen.update(docker_client.api.inspect_container(container.id))

    # Execute
    result = DockerExecutor(client=docker_client, on_start=inspect).run_train(spec)
    # Assert
    assert result.succeeded, result.log_tail
    host = seen["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert host["Memory"] == 300 * 2**20
    assert host["MemorySwap"] == 300 * 2**20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 64
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=64m"}
    assert host["Ulimits"] == [{"Name": "fsize", "Soft": 8 * 2**20, "Hard": 8 * 2**20}]  # no file outgrows /out
    assert seen["Config"]["User"] == "10001:10001"
    mounts = {mount["Destination"]: mount for mount in seen["Mounts"]}
    assert {dest: mounts[dest]["RW"] for dest in mounts} == {
        "/data": False,
        "/train": False,
        "/job": False,
        "/out": True,
    }
    assert mounts["/data"]["Source"] == str(data_dir.resolve())
    assert containers_for(docker_client, spec) == []


HOSTILE_TRAIN = """
import json, os, socket, subprocess, threading, time

import trainkit

job = trainkit.job()
report = {"uid": os.getuid(), "gid": os.getgid()}


def attempt(name, action):
    try:
        action()
        report[name] = "succeeded"
    except Exception as exc:
        report[name] = type(exc).__name__


def connect(host):
    socket.create_connection((host, 80), timeout=3).close()


def write(path):
    with open(path, "w") as handle:
        handle.write("pwned")


attempt("network_ip", lambda: connect("1.1.1.1"))
attempt("network_dns", lambda: socket.getaddrinfo("deb.debian.org", 80))
attempt("write_data", lambda: write("/data/pwned.txt"))
attempt("overwrite_data", lambda: write("/data/secret.dcm"))
attempt("delete_data", lambda: os.remove("/data/secret.dcm"))
attempt("write_train", lambda: write("/train/pwned.txt"))
attempt("write_job", lambda: write("/job/job.json"))
attempt("write_root", lambda: write("/pwned.txt"))
attempt("write_etc", lambda: write("/etc/passwd"))
attempt("write_usr", lambda: write("/usr/lib/python3/dist-packages/trainkit/pwned.py"))
attempt("setuid_root", lambda: os.setuid(0))
attempt("chown_out", lambda: os.chown("/out", 0, 0))
attempt("mknod", lambda: os.mknod("/tmp/node", 0o600 | 0o020000, os.makedev(1, 3)))


def exec_from_tmp():
    with open("/tmp/run.sh", "w") as handle:
        handle.write("#!/bin/sh\\necho hi\\n")
    os.chmod("/tmp/run.sh", 0o755)
    subprocess.run(["/tmp/run.sh"], check=True)


attempt("exec_tmp", exec_from_tmp)
attempt("write_tmp", lambda: write("/tmp/scratch.txt"))


def docker_socket():
    for path in ("/var/run/docker.sock", "/run/docker.sock"):
        client = socket.socket(socket.AF_UNIX)
        try:
            client.connect(path)
        finally:
            client.close()


attempt("docker_socket", docker_socket)
attempt("read_host_proc", lambda: open("/proc/1/root/etc/hostname").read() and os.kill(1, 0) or None)
with open("/proc/self/status") as status:
    fields = dict(line.rstrip("\\n").split(":\\t", 1) for line in status if ":\\t" in line)
report["cap_eff"] = fields["CapEff"]
report["no_new_privs"] = fields["NoNewPrivs"].strip()
with open("/proc/self/mountinfo") as mounts:
    report["mounts"] = sorted({line.split()[4] for line in mounts})
report["pid_one"] = open("/proc/1/cmdline").read().replace("\\0", " ").strip()

stop = threading.Event()
threads = []
try:
    for _ in range(200):
        thread = threading.Thread(target=stop.wait)
        thread.start()
        threads.append(thread)
    report["threads"] = len(threads)
except RuntimeError:
    report["threads"] = len(threads)
stop.set()
for thread in threads:
    thread.join()

job.out.write_json("report.json", report)
"""


@pytest.mark.docker
def test_hostile_train_is_contained(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    # Prepare
    train = write_train(tmp_path, HOSTILE_TRAIN)
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["report.json"], pids=64, timeout_s=120)
    # Execute
    result = DockerExecutor(client=docker_client).run_train(spec)
    # Assert
    assert result.succeeded, result.log_tail
    report = json.loads((spec.out_dir / "report.json").read_text())
    assert (report["uid"], report["gid"]) == (10001, 10001)
    assert report["cap_eff"] == "0000000000000000"
    blocked = [
        "network_ip",
        "network_dns",
        "write_data",
        "overwrite_data",
        "delete_data",
        "write_train",
        "write_job",
        "write_root",
        "write_etc",
        "write_usr",
        "setuid_root",
        "chown_out",
        "mknod",
        "exec_tmp",
    ]
    assert {name: report[name] for name in blocked if report[name] == "succeeded"} == {}
    assert report["write_tmp"] == "succeeded"
    assert report["threads"] < 64
    assert report["docker_socket"] in {"FileNotFoundError", "ConnectionRefusedError", "PermissionError"}
    assert report["no_new_privs"] == "1"
    assert report["pid_one"].startswith("python3"), report["pid_one"]  # its own pid namespace: no host process
    allowed = {"/", "/data", "/train", "/job", "/out", "/tmp", "/etc/hostname", "/etc/hosts"}
    allowed |= {"/etc/resolv.conf", "/dev/shm", "/dev/mqueue", "/dev/pts", "/dev/console", "/dev"}
    unexpected = [m for m in report["mounts"] if m not in allowed and not m.startswith(("/proc", "/sys", "/dev/"))]
    assert unexpected == [], f"host paths beyond data and out: {unexpected}"
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret.dcm"]
    assert (data_dir / "secret.dcm").read_bytes() == b"original"
    assert sorted(p.name for p in train.iterdir()) == ["main.py"]
    assert sorted(p.name for p in spec.out_dir.iterdir()) == ["report.json"]


@pytest.mark.docker
def test_sleep_forever_train_is_killed_at_timeout(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    train = write_train(tmp_path, "import time\nprint('sleeping', flush=True)\nwhile True:\n    time.sleep(1)\n")
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"], timeout_s=3)
    result = DockerExecutor(client=docker_client).run_train(spec)
    assert result.timed_out
    assert not result.succeeded
    assert 3 <= result.duration_s < 15
    assert result.exit_code != 0
    assert "sleeping" in result.log_tail
    assert "time limit" in result.log_tail
    assert containers_for(docker_client, spec) == []


@pytest.mark.docker
def test_stopped_train_is_killed_before_its_timeout(
    docker_client: DockerClient, tmp_path: Path, data_dir: Path
) -> None:
    train = write_train(tmp_path, "import time\nprint('sleeping', flush=True)\nwhile True:\n    time.sleep(1)\n")
    stop = threading.Event()
    threading.Timer(2.0, stop.set).start()
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"], timeout_s=120, stop=stop)

    result = DockerExecutor(client=docker_client).run_train(spec)

    assert result.stopped
    assert not result.timed_out
    assert result.duration_s < 30
    assert "the hub no longer wants this job" in result.log_tail
    assert containers_for(docker_client, spec) == []


FORK_BOMB = """
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
except OSError as exc:
    print("fork refused after", children, "children:", type(exc).__name__, flush=True)
"""


@pytest.mark.docker
def test_fork_bomb_is_contained_and_the_next_train_runs(
    docker_client: DockerClient, tmp_path: Path, data_dir: Path
) -> None:
    (tmp_path / "bomb").mkdir()
    (tmp_path / "next").mkdir()
    bomb = make_spec(
        tmp_path / "bomb",
        data_dir=data_dir,
        train_dir=write_train(tmp_path / "bomb", FORK_BOMB),
        outputs=[],
        pids=32,
        timeout_s=60,
    )
    executor = DockerExecutor(client=docker_client)

    result = executor.run_train(bomb)

    assert "fork refused after" in result.log_tail
    children = int(result.log_tail.split("fork refused after")[1].split()[0])
    assert children < 32
    assert containers_for(docker_client, bomb) == []
    healthy = make_spec(
        tmp_path / "next", data_dir=data_dir, train_dir=write_train(tmp_path / "next", "print('fine')\n"), outputs=[]
    )
    after = executor.run_train(healthy)
    assert after.succeeded, after.log_tail


@pytest.mark.docker
def test_train_that_fills_out_is_killed(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    source = (
        "import itertools\nfor n in itertools.count():\n"
        "    with open(f'/out/part-{n}.bin', 'wb') as f:\n        f.write(b'x' * 1024 * 1024)\n"
    )
    train = write_train(tmp_path, source)
    spec = make_spec(
        tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"], timeout_s=120, max_out_bytes=8 * 1024 * 1024
    )

    result = DockerExecutor(client=docker_client).run_train(spec)

    assert result.out_overflow
    assert not result.succeeded
    assert not result.timed_out
    assert "wrote more than 8388608 bytes to /out" in result.log_tail
    assert containers_for(docker_client, spec) == []


@pytest.mark.docker
def test_one_file_cannot_outgrow_the_out_limit(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    source = "with open('/out/big.bin', 'wb') as f:\n    f.write(b'x' * 64 * 1024 * 1024)\n"
    spec = make_spec(
        tmp_path,
        data_dir=data_dir,
        train_dir=write_train(tmp_path, source),
        outputs=["big.bin"],
        max_out_bytes=4 * 1024 * 1024,
    )

    result = DockerExecutor(client=docker_client).run_train(spec)

    assert not result.succeeded
    assert (spec.out_dir / "big.bin").stat().st_size <= 4 * 1024 * 1024


CPU_BURN = """
import json, os, threading, time
def burn(stop):
    while not stop.is_set():
        pass
stop = threading.Event()
workers = [threading.Thread(target=burn, args=(stop,)) for _ in range(4)]
started, cpu = time.monotonic(), time.process_time()
for worker in workers:
    worker.start()
time.sleep(3)
stop.set()
for worker in workers:
    worker.join()
with open("/out/a.json", "w") as out:
    json.dump({"cpu_s": time.process_time() - cpu, "wall_s": time.monotonic() - started}, out)
"""


@pytest.mark.docker
def test_cpu_burning_train_gets_only_its_cpu_share(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    train = write_train(tmp_path, CPU_BURN)
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"], cpus=0.5, timeout_s=60)

    result = DockerExecutor(client=docker_client).run_train(spec)

    assert result.succeeded, result.log_tail
    used = json.loads((spec.out_dir / "a.json").read_text())
    assert used["cpu_s"] / used["wall_s"] < 0.8  # four busy threads, half a core: throttled by NanoCpus


@pytest.mark.docker
def test_memory_hog_train_is_killed(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    train = write_train(tmp_path, "block = bytearray(600 * 1024 * 1024)\nprint('allocated')\n")
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"], memory_mb=128, timeout_s=60)
    result = DockerExecutor(client=docker_client).run_train(spec)
    assert not result.succeeded
    assert "allocated" not in result.log_tail


@pytest.mark.docker
def test_failing_train_reports_exit_code_and_log(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    train = write_train(tmp_path, "import sys\nprint('bad input', file=sys.stderr)\nsys.exit(3)\n")
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"])
    result = DockerExecutor(client=docker_client).run_train(spec)
    assert (result.exit_code, result.timed_out, result.succeeded) == (3, False, False)
    assert "bad input" in result.log_tail
    assert containers_for(docker_client, spec) == []


@pytest.mark.docker
def test_missing_image_raises_executor_error(docker_client: DockerClient, tmp_path: Path, data_dir: Path) -> None:
    train = write_train(tmp_path, "print('never')\n")
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"])
    executor = DockerExecutor(client=docker_client, image="trainyard/no-such-image:0")
    with pytest.raises(ExecutorError, match="build-train-base"):
        executor.run_train(spec)
    assert docker_available(client=docker_client)
    assert not docker_available("trainyard/no-such-image:0", client=docker_client)


def test_no_engine_raises_executor_error(tmp_path: Path, data_dir: Path) -> None:
    train = write_train(tmp_path, "print('never')\n")
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"])
    client = DockerClient(base_url=f"unix://{tmp_path / 'no-engine.sock'}", version="1.41", timeout=2)
    with pytest.raises(ExecutorError, match="no Docker engine answers"):
        DockerExecutor(client=client).run_train(spec)
    assert not docker_available(client=client)


@pytest.mark.parametrize("entrypoint", ["../main.py", "/etc/main.py", "a/../../main.py", ""])
def test_entrypoint_outside_train_refused(tmp_path: Path, data_dir: Path, entrypoint: str) -> None:
    train = write_train(tmp_path, "print('never')\n")
    base = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"])
    spec = RunSpec(**{**base.__dict__, "entrypoint": entrypoint})
    with pytest.raises(ExecutorError, match="entrypoint"):
        DockerExecutor().container_options(spec, DEFAULT_IMAGE)


def test_missing_data_folder_refused(tmp_path: Path) -> None:
    train = write_train(tmp_path, "print('never')\n")
    spec = make_spec(tmp_path, data_dir=tmp_path / "missing", train_dir=train, outputs=["a.json"])
    with pytest.raises(ExecutorError, match="data folder"):
        DockerExecutor().container_options(spec, DEFAULT_IMAGE)


def test_gpus_only_when_the_manifest_asks_and_the_station_allows(tmp_path: Path, data_dir: Path) -> None:
    train = write_train(tmp_path, "print('never')\n")
    spec = make_spec(tmp_path, data_dir=data_dir, train_dir=train, outputs=["a.json"])
    asking = RunSpec(**{**spec.__dict__, "gpus": 1})
    options = DockerExecutor(gpus=1).container_options(asking, DEFAULT_IMAGE)
    assert options["device_requests"][0]["Capabilities"] == [["gpu"]]
    assert options["device_requests"][0]["Count"] == 1
    assert "device_requests" not in DockerExecutor(gpus=1).container_options(spec, DEFAULT_IMAGE)
    with pytest.raises(ExecutorError, match="gives none"):
        DockerExecutor().container_options(asking, DEFAULT_IMAGE)
    two = RunSpec(**{**spec.__dict__, "gpus": 2})
    with pytest.raises(ExecutorError, match="at most 1"):
        DockerExecutor(gpus=1).container_options(two, DEFAULT_IMAGE)
    pinned = DockerExecutor(gpus=2, gpu_devices=("GPU-a", "GPU-b", "GPU-c")).container_options(two, DEFAULT_IMAGE)
    assert pinned["device_requests"][0]["DeviceIDs"] == ["GPU-a", "GPU-b"]
    with pytest.raises(ExecutorError, match="has 1 to hand out"):
        DockerExecutor(gpus=2, gpu_devices=("GPU-a",)).container_options(two, DEFAULT_IMAGE)


def test_executor_for_docker_takes_the_stations_gpus(tmp_path: Path) -> None:
    from station.config import StationSettings
    from station.executors import executor_for

    settings = StationSettings(state_dir=tmp_path, executor="docker", gpus=2, gpu_devices=("0", "1"))

    chosen = executor_for(settings)

    assert isinstance(chosen, DockerExecutor)
    assert (chosen.gpus, chosen.gpu_devices) == (2, ("0", "1"))
