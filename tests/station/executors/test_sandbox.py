"""The bubblewrap sandbox, tested by running real trains in it."""

import dataclasses
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from station.config import StationSettings
from station.executors import ExecutorError, RunSpec, SandboxExecutor, executor_for

needs_bwrap = pytest.mark.skipif(
    SandboxExecutor().isolation_error() is not None, reason="bubblewrap cannot create sandboxes here"
)


def _spec(tmp_path: Path, code: str, **limits: float) -> RunSpec:
    for name in ("train", "data", "out", "job"):
        (tmp_path / name).mkdir(exist_ok=True)
    (tmp_path / "data" / "image.dcm").write_bytes(b"not really")
    (tmp_path / "job" / "job.json").write_text(json.dumps({"job_id": "j1", "parameters": {"k": 5}}))
    (tmp_path / "train" / "main.py").write_text(code)
    return RunSpec(
        job_id="j1",
        train_dir=tmp_path / "train",
        entrypoint="main.py",
        data_dir=tmp_path / "data",
        out_dir=tmp_path / "out",
        job_file=tmp_path / "job" / "job.json",
        timeout_s=limits.get("timeout_s", 60.0),
        memory_mb=int(limits.get("memory_mb", 2048)),
    )


PROBE = """
import json, os, socket
report = {"uid": os.getuid(), "env": sorted(os.environ), "cwd": os.getcwd()}
for target in ("/data/new.txt", "/train/new.txt", "/job/new.txt", "/usr/new.txt", "/new.txt"):
    try:
        open(target, "w").close()
        report[target] = "writable"
    except OSError as exc:
        report[target] = exc.errno
report["job"] = json.load(open(os.environ["TRAINYARD_JOB"]))
report["data"] = sorted(os.listdir(os.environ["TRAINYARD_DATA"]))
report["interfaces"] = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
import trainkit, protocol, numpy, pydicom
report["imports"] = True
open("/tmp/scratch", "w").write("tmp is writable")
json.dump(report, open("/out/x.json", "w"))
print("probe done")
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """What the probe train saw inside the sandbox."""
    tmp_path = tmp_path_factory.mktemp("probe")
    result = SandboxExecutor().run_train(_spec(tmp_path, PROBE))
    assert result.succeeded, result.log_tail
    assert result.executor == "sandbox"
    assert result.log_tail == "probe done"
    seen: dict[str, object] = json.loads((tmp_path / "out" / "x.json").read_text())
    return seen


@needs_bwrap
@pytest.mark.slow
class TestSandboxIsolation:
    def test_run_train_writes_out(self, report: dict[str, object]) -> None:
        assert report["cwd"] == "/train"
        assert report["job"] == {"job_id": "j1", "parameters": {"k": 5}}
        assert report["data"] == ["image.dcm"]

    @pytest.mark.parametrize("target", ["/data/new.txt", "/train/new.txt", "/job/new.txt", "/usr/new.txt", "/new.txt"])
    def test_run_train_read_only_paths(self, report: dict[str, object], target: str) -> None:
        assert report[target] != "writable"

    def test_run_train_not_root(self, report: dict[str, object]) -> None:
        assert report["uid"] == 65534

    def test_run_train_clears_environment(self, report: dict[str, object]) -> None:
        env = set(report["env"])  # type: ignore[arg-type]
        assert {"TRAINYARD_DATA", "TRAINYARD_OUT", "TRAINYARD_TRAIN", "TRAINYARD_JOB", "PATH", "PYTHONPATH"} <= env
        assert not any(name.startswith(("TRAINYARD_STATION", "SSH", "AWS")) for name in env)

    def test_run_train_no_network_interfaces(self, report: dict[str, object]) -> None:
        assert report["interfaces"] == ["lo"]

    def test_run_train_imports_station_python(self, report: dict[str, object]) -> None:
        assert report["imports"] is True


@needs_bwrap
@pytest.mark.slow
def test_run_train_cannot_reach_host_network(tmp_path: Path) -> None:
    # Prepare: a server on the host's loopback that records any connection
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(5)
    port = server.getsockname()[1]
    connected: list[bool] = []

    def accept() -> None:
        try:
            server.accept()
            connected.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    code = f"""
import json, socket
outcomes = {{}}
for host in ("127.0.0.1", "1.1.1.1", "10.0.0.1"):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, {port}))
        outcomes[host] = "connected"
    except OSError as exc:
        outcomes[host] = exc.__class__.__name__
try:
    socket.getaddrinfo("pypi.org", 443)
    outcomes["dns"] = "resolved"
except OSError as exc:
    outcomes["dns"] = exc.__class__.__name__
json.dump(outcomes, open("/out/net.json", "w"))
"""

    # Execute
    result = SandboxExecutor().run_train(_spec(tmp_path, code))
    thread.join()
    server.close()

    # Assert
    assert result.succeeded, result.log_tail
    outcomes = json.loads((tmp_path / "out" / "net.json").read_text())
    assert "connected" not in outcomes.values()
    assert outcomes["dns"] != "resolved"
    assert connected == []


@needs_bwrap
@pytest.mark.slow
def test_run_train_timeout_kills(tmp_path: Path) -> None:
    code = (
        "import subprocess, time\nsubprocess.Popen(['sleep', '120'])\nprint('started', flush=True)\ntime.sleep(120)\n"
    )

    result = SandboxExecutor().run_train(_spec(tmp_path, code, timeout_s=1.5))

    assert result.timed_out
    assert not result.succeeded
    assert result.duration_s < 15
    assert "started" in result.log_tail


@needs_bwrap
@pytest.mark.slow
def test_run_train_exit_code_and_log_tail(tmp_path: Path) -> None:
    code = "import sys\nfor n in range(500):\n    print('line', n)\nsys.exit(3)\n"

    result = SandboxExecutor().run_train(_spec(tmp_path, code))

    assert result.exit_code == 3
    lines = result.log_tail.splitlines()
    assert len(lines) == 200
    assert lines[-1] == "line 499"


@needs_bwrap
@pytest.mark.slow
def test_run_train_memory_limit(tmp_path: Path) -> None:
    code = "blob = bytearray(1024 * 1024 * 1024)\nprint('allocated')\n"

    result = SandboxExecutor().run_train(_spec(tmp_path, code, memory_mb=512))

    assert result.exit_code != 0
    assert "allocated" not in result.log_tail


def test_run_train_missing_bwrap_raises(tmp_path: Path) -> None:
    executor = SandboxExecutor(bwrap="/nonexistent/bwrap")

    with pytest.raises(ExecutorError, match="bubblewrap"):
        executor.run_train(_spec(tmp_path, "print('never')"))

    assert not (tmp_path / "out" / "x.json").exists()


def test_run_train_bwrap_that_cannot_start_raises(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)

    executor = SandboxExecutor(bwrap=str(fake))

    assert "cannot create a sandbox" in (executor.isolation_error() or "")
    with pytest.raises(ExecutorError, match="namespace"):
        executor.run_train(_spec(tmp_path, "print('never')"))


@pytest.mark.slow
def test_run_train_unisolated_mode_uses_host_paths(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    code = """
import json, os
import trainkit
env = {k: v for k, v in os.environ.items() if k.startswith("TRAINYARD_")}
json.dump(env, open(os.path.join(os.environ["TRAINYARD_OUT"], "x.json"), "w"))
"""
    spec = _spec(tmp_path, code)
    executor = SandboxExecutor(bwrap="/nonexistent/bwrap", allow_unisolated=True)

    # Execute
    result = executor.run_train(spec)

    # Assert
    assert result.succeeded, result.log_tail
    assert result.executor == "unisolated"
    env = json.loads((tmp_path / "out" / "x.json").read_text())
    assert env["TRAINYARD_DATA"] == str(spec.data_dir.resolve())
    assert env["TRAINYARD_JOB"] == str(spec.job_file.resolve())
    assert "UNISOLATED" in caplog.text


@pytest.mark.slow
def test_run_train_unisolated_timeout_kills(tmp_path: Path) -> None:
    executor = SandboxExecutor(bwrap="/nonexistent/bwrap", allow_unisolated=True)

    result = executor.run_train(_spec(tmp_path, "import time\ntime.sleep(60)\n", timeout_s=1.0))

    assert result.timed_out
    assert result.duration_s < 10


def test_executor_for_sandbox(tmp_path: Path) -> None:
    settings = StationSettings(state_dir=tmp_path, executor="sandbox", allow_unisolated=True)

    actual = executor_for(settings)

    assert isinstance(actual, SandboxExecutor)
    assert actual.allow_unisolated is True


def test_executor_for_auto_without_docker_is_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import station.executors._selection as selection

    monkeypatch.setattr(selection, "is_docker_ready", lambda image: False)

    actual = executor_for(StationSettings(state_dir=tmp_path, executor="auto"))

    assert isinstance(actual, SandboxExecutor)


def test_executor_for_docker_is_imported_lazily(tmp_path: Path) -> None:
    code = "import sys, station.executors; print('station.executors.docker' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert imported.strip() == "False"
    actual = executor_for(StationSettings(state_dir=tmp_path, executor="docker", train_image="img:1"))
    assert actual.name == "docker"
    assert "station.executors.docker" in sys.modules


def _stop_after(seconds: float) -> threading.Event:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    return stop


@needs_bwrap
@pytest.mark.slow
def test_run_train_stop_kills_the_train(tmp_path: Path) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"
    spec = _spec(tmp_path, code)

    result = SandboxExecutor().run_train(dataclasses.replace(spec, stop=_stop_after(1.0)))

    assert result.stopped
    assert not result.timed_out
    assert not result.succeeded
    assert result.duration_s < 15
    assert "started" in result.log_tail


def test_run_train_unisolated_stop_kills_the_train(tmp_path: Path) -> None:
    executor = SandboxExecutor(bwrap="/nonexistent/bwrap", allow_unisolated=True)
    spec = dataclasses.replace(_spec(tmp_path, "import time\ntime.sleep(60)\n"), stop=_stop_after(0.5))

    result = executor.run_train(spec)

    assert result.stopped
    assert not result.timed_out
    assert result.duration_s < 10


def test_run_train_unisolated_that_fills_out_is_killed(tmp_path: Path) -> None:
    executor = SandboxExecutor(bwrap="/nonexistent/bwrap", allow_unisolated=True)
    code = (
        "import itertools, os\nfor n in itertools.count():\n"
        "    with open(os.path.join(os.environ['TRAINYARD_OUT'], f'p{n}'), 'wb') as f:\n"
        "        f.write(b'x' * 1024 * 1024)\n"
    )
    spec = dataclasses.replace(_spec(tmp_path, code, timeout_s=60), max_out_bytes=4 * 1024 * 1024)

    result = executor.run_train(spec)

    assert result.out_overflow
    assert not result.timed_out
    assert not result.succeeded
    assert result.duration_s < 30
