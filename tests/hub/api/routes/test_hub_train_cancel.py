"""POST /trains/{id}/cancel: unfinished jobs become cancelled; stations no longer get them."""

from __future__ import annotations

from fastapi.testclient import TestClient
from hub_factories import Researcher

from protocol import SignedManifest


def test_cancel_train_cancels_queued_jobs(
    client: TestClient, researcher: Researcher, signed_manifest: SignedManifest
) -> None:
    train = client.post("/trains", json=signed_manifest.model_dump(mode="json"), headers=researcher.headers).json()

    answer = client.post(f"/trains/{train['id']}/cancel", headers=researcher.headers)

    assert answer.status_code == 200
    (job,) = answer.json()["jobs"]
    assert job["status"] == "cancelled"
    assert job["failure"]["reason"] == "cancelled by the researcher"


def test_cancel_unknown_train(client: TestClient, researcher: Researcher) -> None:
    assert client.post("/trains/nope/cancel", headers=researcher.headers).status_code == 404
