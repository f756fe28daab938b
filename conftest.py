"""Fixtures shared across the test suite (tests/): the real Docker engine and the train base image."""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.client import DockerClient

REPO = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerClient]:
    """A client of a running engine on which the train base image exists.

    Starts the engine (``docker/ensure-engine.sh``, which installs docker.io when missing)
    and builds the base image offline (``docker/build-train-base.sh``). Skips, with the
    reason printed, only when no engine can be started at all; a failing image build fails.
    """
    engine = subprocess.run(
        ["bash", str(REPO / "docker" / "ensure-engine.sh")], capture_output=True, text=True, timeout=300
    )
    if engine.returncode != 0:
        reason = (engine.stderr.strip().splitlines() or ["ensure-engine.sh failed"])[-1]
        pytest.skip(f"no Docker engine could be started: {reason}")
    build = subprocess.run(
        ["bash", str(REPO / "docker" / "build-train-base.sh")], capture_output=True, text=True, timeout=1200
    )
    if build.returncode != 0:
        pytest.fail(f"the train base image could not be built:\n{build.stderr[-3000:]}")
    client = DockerClient.from_env(timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def torch_image(docker_client: DockerClient) -> str:
    """The image federated trains run in at Docker stations (base image plus PyTorch), built offline."""
    build = subprocess.run(
        ["bash", str(REPO / "docker" / "build-train-torch.sh")], capture_output=True, text=True, timeout=1200
    )
    if build.returncode != 0:
        pytest.fail(f"the train torch image could not be built:\n{build.stderr[-3000:]}")
    return "trainyard/train-torch:0.1"
