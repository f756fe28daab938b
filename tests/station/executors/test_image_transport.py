"""Image transport: the engine caches by digest; a loaded image must be the signed one."""

from collections.abc import Sequence
from typing import Any

import pytest
from docker.errors import ImageNotFound

from station.executors import ExecutorError
from station.executors.docker import ensure_image

SIGNED = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


class _Image:
    def __init__(self, image_id: str) -> None:
        self.id = image_id


class _Images:
    def __init__(self, present: set[str], loads: str) -> None:
        self.present = present
        self.loads = loads
        self.removed: list[str] = []

    def get(self, name: str) -> _Image:
        if name not in self.present:
            raise ImageNotFound(name)
        return _Image(name)

    def load(self, archive: bytes) -> Sequence[_Image]:
        self.present.add(self.loads)
        return [_Image(self.loads)]

    def remove(self, name: str, force: bool = False) -> None:
        self.removed.append(name)

    def list(self, all: bool = False) -> Sequence[_Image]:
        return [_Image(name) for name in self.present]


class _Client:
    def __init__(self, present: set[str], loads: str) -> None:
        self.images = _Images(present, loads)


def _fetcher(calls: list[int]) -> Any:
    def fetch() -> bytes:
        calls.append(1)
        return b"archive"

    return fetch


def test_cached_image_is_not_fetched() -> None:
    calls: list[int] = []
    assert ensure_image(_Client({SIGNED}, SIGNED), SIGNED, _fetcher(calls)) == SIGNED
    assert calls == []


def test_archive_is_loaded_once_and_checked() -> None:
    calls: list[int] = []
    client = _Client(set(), SIGNED)
    assert ensure_image(client, SIGNED, _fetcher(calls)) == SIGNED
    assert ensure_image(client, SIGNED, _fetcher(calls)) == SIGNED
    assert calls == [1]


def test_tampered_image_is_refused_and_removed() -> None:
    client = _Client(set(), OTHER)
    with pytest.raises(ExecutorError, match="not the signed image"):
        ensure_image(client, SIGNED, _fetcher([]))
    assert client.images.removed == [OTHER]


def test_refusal_never_removes_an_image_that_was_there() -> None:
    client = _Client({OTHER}, OTHER)
    with pytest.raises(ExecutorError, match="not the signed image"):
        ensure_image(client, SIGNED, _fetcher([]))
    assert client.images.removed == []


class _PullingImages(_Images):
    def __init__(self, present: set[str], pulls: str) -> None:
        super().__init__(present, loads=pulls)
        self.pulled: list[str] = []

    def pull(self, ref: str) -> _Image:
        self.pulled.append(ref)
        self.present.add(self.loads)
        return _Image(self.loads)


class _PullingClient:
    def __init__(self, present: set[str], pulls: str) -> None:
        self.images = _PullingImages(present, pulls)


REF = "registry.example:5000/trains/cohort@sha256:" + "c" * 64


def test_image_is_pulled_by_digest_once_and_checked() -> None:
    client = _PullingClient(set(), SIGNED)

    assert ensure_image(client, SIGNED, None, pull_ref=REF) == SIGNED  # type: ignore[arg-type]
    assert ensure_image(client, SIGNED, None, pull_ref=REF) == SIGNED  # type: ignore[arg-type]
    assert client.images.pulled == [REF]


def test_pulled_image_that_is_not_the_signed_one_is_refused_and_removed() -> None:
    client = _PullingClient(set(), OTHER)

    with pytest.raises(ExecutorError, match=r"is sha256:b+, not the signed image"):
        ensure_image(client, SIGNED, None, pull_ref=REF)  # type: ignore[arg-type]
    assert client.images.removed == [OTHER]


def test_no_archive_and_no_registry() -> None:
    with pytest.raises(ExecutorError, match="neither an archive nor a registry"):
        ensure_image(_Client(set(), SIGNED), SIGNED, None)  # type: ignore[arg-type]
