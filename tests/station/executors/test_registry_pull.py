"""Images from a real registry (Debian's docker-registry on loopback) and from archives, on a real engine:
the id the researcher signed is checked either way."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.client import DockerClient

from station.executors import ExecutorError
from station.executors.docker import ensure_image

pytestmark = [pytest.mark.docker, pytest.mark.slow]
BASE = "trainyard/train-base:0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry on 127.0.0.1 (the engine trusts loopback registries without TLS)."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the registry did not start")
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def _push_throwaway(client: DockerClient, registry: str, tmp_path: Path) -> tuple[str, str]:
    """Build an image only the registry will hold; return its id and its reference by digest."""
    tag = f"{registry}/trainyard/pull-test:{uuid.uuid4().hex[:8]}"
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nLABEL org.trainyard.test={uuid.uuid4().hex}\n")
    image, _logs = client.images.build(path=str(tmp_path), tag=tag, rm=True)
    client.images.push(tag)
    pushed = client.images.get(tag)
    (reference,) = [ref for ref in pushed.attrs["RepoDigests"] if ref.startswith(registry)]
    client.images.remove(tag, force=True)  # now only the registry has it
    return str(image.id), reference


def test_station_pulls_the_signed_image_by_digest(docker_client: DockerClient, registry: str, tmp_path: Path) -> None:
    image_id, reference = _push_throwaway(docker_client, registry, tmp_path)

    assert ensure_image(docker_client, image_id, None, pull_ref=reference) == image_id

    assert docker_client.images.get(image_id).id == image_id
    docker_client.images.remove(image_id, force=True)


def test_station_refuses_a_registry_image_that_is_not_the_signed_one(
    docker_client: DockerClient, registry: str, tmp_path: Path
) -> None:
    _real_id, reference = _push_throwaway(docker_client, registry, tmp_path)
    signed = "sha256:" + "0" * 64

    with pytest.raises(ExecutorError, match="not the signed image"):
        ensure_image(docker_client, signed, None, pull_ref=reference)

    assert not [image for image in docker_client.images.list() if image.id == _real_id]


def test_a_tampered_image_archive_is_refused_and_removed(docker_client: DockerClient, tmp_path: Path) -> None:
    tag = f"trainyard/tamper-test:{uuid.uuid4().hex[:8]}"
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nLABEL org.trainyard.test={uuid.uuid4().hex}\n")
    image, _logs = docker_client.images.build(path=str(tmp_path), tag=tag, rm=True)
    archive = b"".join(image.save(named=True))
    docker_client.images.remove(tag, force=True)
    signed = "sha256:" + "1" * 64  # the researcher signed another image than the archive holds

    with pytest.raises(ExecutorError, match="not the signed image"):
        ensure_image(docker_client, signed, lambda: archive)

    assert not [found for found in docker_client.images.list() if found.id == image.id]
