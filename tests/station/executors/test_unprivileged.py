"""The station agent needs no root: its executors run trains for an unprivileged user.

Each test runs the executor in a child process as uid/gid 65534 (``nobody``) with no
supplementary groups, or only the ``docker`` group for the Docker executor, the way a hospital
would run the agent.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.executors import SandboxExecutor

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
pytestmark = [
    pytest.mark.skipif(
        not os.access(SYSTEM_PYTHON, os.X_OK) or sys.version_info[:2] != (3, 11),
        reason="needs the system's Python 3.11 (the project's compiled wheels are for 3.11)",
    ),
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root (CI runs as root)"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing"),
]

RUNNER = """
import json, sys
from pathlib import Path
from station.executors import RunSpec
kind, root = sys.argv[1], Path(sys.argv[2])
if kind == "docker":
    from station.executors.docker import DockerExecutor
    executor = DockerExecutor()
else:
    from station.executors import SandboxExecutor
    executor = SandboxExecutor()
spec = RunSpec(job_id="unprivileged-" + kind, train_dir=root / "train", entrypoint="main.py", data_dir=root / "data",
               out_dir=root / "out", job_file=root / "job" / "job.json", timeout_s=120)
result = executor.run_train(spec)
print(json.dumps({"exit_code": result.exit_code, "log": result.log_tail}))
"""

TRAIN = """
import json, os
data = os.environ["TRAINYARD_DATA"]
with open(os.path.join(os.environ["TRAINYARD_OUT"], "result.json"), "w") as out:
    json.dump({"files": len(os.listdir(data)), "uid": os.getuid()}, out)
"""


@pytest.fixture
def station_root() -> Iterator[Path]:
    """A station folder the unprivileged user owns (tmp_path's parents are root's 0700 folders)."""
    root = Path(tempfile.mkdtemp(prefix="trainyard-unprivileged-", dir="/tmp"))
    for name in ("train", "data", "job", "out"):
        (root / name).mkdir()
    (root / "train" / "main.py").write_text(TRAIN)
    (root / "data" / "a.dcm").write_bytes(b"x")
    (root / "job" / "job.json").write_text(json.dumps({"job_id": "j"}))
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(root)], check=True)
    root.chmod(0o700)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _run_as_nobody(kind: str, root: Path, groups: list[int]) -> dict[str, object]:
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}"]
    command += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    repo = Path(__file__).resolve().parents[3]
    site = next(path for path in sys.path if path.endswith("site-packages") and path.startswith(sys.prefix))
    # the system's interpreter with the project's packages: a test venv may sit where nobody cannot read
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{repo}:{site}", "HOME": str(root)}
    done = subprocess.run(
        [*command, SYSTEM_PYTHON, "-c", RUNNER, kind, str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.skipif(SandboxExecutor().isolation_error() is not None, reason="bubblewrap cannot create sandboxes here")
def test_the_sandbox_runs_trains_for_an_unprivileged_agent(station_root: Path) -> None:
    answer = _run_as_nobody("sandbox", station_root, groups=[])

    assert answer["exit_code"] == 0, answer["log"]
    assert json.loads((station_root / "out" / "result.json").read_text())["files"] == 1


@pytest.mark.docker
def test_the_docker_executor_runs_trains_for_an_agent_in_the_docker_group(
    station_root: Path, docker_client: object
) -> None:
    try:
        docker_gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        pytest.skip("no docker group on this machine")

    answer = _run_as_nobody("docker", station_root, groups=[docker_gid])

    assert answer["exit_code"] == 0, answer["log"]
    result = json.loads((station_root / "out" / "result.json").read_text())
    assert result == {"files": 1, "uid": 10001}
