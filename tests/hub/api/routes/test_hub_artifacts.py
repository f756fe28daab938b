"""/artifacts: content-addressed uploads and downloads."""

from __future__ import annotations

from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, Headers, Researcher

from hub import Settings
from protocol import content_address

DATA = b"a train bundle"
ADDRESS = content_address(DATA)


def test_upload_artifact(client: TestClient, researcher: Researcher, settings: Settings) -> None:
    answer = client.put(f"/artifacts/{ADDRESS}", content=DATA, headers=researcher.headers)

    assert answer.status_code == 201
    assert answer.json() == {"address": ADDRESS, "size": len(DATA)}
    stored = settings.artifacts_dir / "sha256" / ADDRESS.removeprefix("sha256:")
    assert stored.read_bytes() == DATA
    assert list((settings.artifacts_dir / "tmp").iterdir()) == []


def test_upload_artifact_again(client: TestClient, researcher: Researcher) -> None:
    client.put(f"/artifacts/{ADDRESS}", content=DATA, headers=researcher.headers)

    answer = client.put(f"/artifacts/{ADDRESS}", content=DATA, headers=researcher.headers)

    assert answer.status_code == 200


def test_upload_artifact_hash_mismatch(client: TestClient, researcher: Researcher, settings: Settings) -> None:
    answer = client.put(f"/artifacts/{ADDRESS}", content=b"other bytes", headers=researcher.headers)

    assert answer.status_code == 400
    assert "does not match its address" in answer.json()["detail"]
    assert not (settings.artifacts_dir / "sha256").exists()
    assert list((settings.artifacts_dir / "tmp").iterdir()) == []


def test_upload_artifact_malformed_address(client: TestClient, researcher: Researcher) -> None:
    answer = client.put("/artifacts/md5:abc", content=DATA, headers=researcher.headers)

    assert answer.status_code == 400
    assert "malformed content address" in answer.json()["detail"]


def test_upload_artifact_too_large(client: TestClient, researcher: Researcher, settings: Settings) -> None:
    data = b"x" * (settings.max_upload_bytes + 1)

    answer = client.put(f"/artifacts/{content_address(data)}", content=data, headers=researcher.headers)

    assert answer.status_code == 413


def test_upload_artifact_too_large_streamed(client: TestClient, researcher: Researcher, settings: Settings) -> None:
    data = b"x" * (settings.max_upload_bytes + 1)

    def chunks() -> object:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    answer = client.put(f"/artifacts/{content_address(data)}", content=chunks(), headers=researcher.headers)  # type: ignore[arg-type]

    assert answer.status_code == 413


def test_upload_artifact_not_researcher(client: TestClient, steward_headers: Headers) -> None:
    answer = client.put(f"/artifacts/{ADDRESS}", content=DATA, headers=steward_headers)

    assert answer.status_code == 403


def test_read_artifact_as_researcher_and_station(
    client: TestClient, researcher: Researcher, station: EnrolledStation
) -> None:
    client.put(f"/artifacts/{ADDRESS}", content=DATA, headers=researcher.headers)

    as_user = client.get(f"/artifacts/{ADDRESS}", headers=researcher.headers)
    as_station = client.get(f"/artifacts/{ADDRESS}", headers=station.headers)

    assert as_user.status_code == as_station.status_code == 200
    assert as_user.content == as_station.content == DATA
    assert as_user.headers["content-type"] == "application/octet-stream"


def test_read_artifact_unknown(client: TestClient, researcher: Researcher) -> None:
    answer = client.get(f"/artifacts/{content_address(b'absent')}", headers=researcher.headers)

    assert answer.status_code == 404


def test_read_artifact_without_token(client: TestClient) -> None:
    assert client.get(f"/artifacts/{ADDRESS}").status_code == 401
