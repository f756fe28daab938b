"""The hub's audit chain: what the API records, and tampering found by verification."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, Headers, HubFactory, Researcher
from sqlalchemy import text
from sqlmodel import Session
from typer.testing import CliRunner

from hub import Settings
from hub.audit import audit_entries, record_event, verify_hub_audit
from hub.cli import app as hub_cli
from protocol import (
    AuditProblemKind,
    Job,
    JobStatus,
    ResultEnvelope,
    SignedManifest,
    audit_entries_from_jsonl,
    seal,
    sign_envelope,
    verify_audit_chain,
)


def _run_a_train(
    client: TestClient, hub: HubFactory, station: EnrolledStation, researcher: Researcher, signed: SignedManifest
) -> str:
    hub.submit(signed, researcher)
    job = Job.model_validate(client.get("/stations/me/jobs/next", headers=station.headers).json())
    envelope = ResultEnvelope(
        job_id=job.job_id,
        train_id=job.train_id,
        station=station.name,
        status=JobStatus.SUCCEEDED,
        sealed=seal(b"counts", researcher.keys.encryption_public, associated_data=job.job_id),
        created_at=datetime.now(UTC),
    )
    signed_envelope = sign_envelope(envelope, station.keys.signing)
    path = f"/stations/me/jobs/{job.job_id}/result"
    assert client.post(path, json=signed_envelope.model_dump(mode="json"), headers=station.headers).is_success
    assert client.get(f"/jobs/{job.job_id}/result", headers=researcher.headers).status_code == 200
    return job.job_id


def test_the_whole_flow_is_audited(
    client: TestClient,
    hub: HubFactory,
    station: EnrolledStation,
    researcher: Researcher,
    signed_manifest: SignedManifest,
    admin_headers: Headers,
) -> None:
    job_id = _run_a_train(client, hub, station, researcher, signed_manifest)
    client.post("/auth/login", json={"username": "rosa", "password": "wrong"})

    answer = client.get("/audit", headers=admin_headers)

    assert answer.status_code == 200
    entries = list(audit_entries_from_jsonl(answer.text.splitlines()))
    actions = [entry.action for entry in entries]
    for expected in (
        "auth.login",
        "station.enrolled",
        "access_request.created",
        "request.submit",
        "request.forward",
        "decision.approve",
        "train.submitted",
        "job.dispatched",
        "result.uploaded",
        "result.downloaded",
        "auth.login_failed",
    ):
        assert expected in actions
    assert verify_audit_chain(entries).ok
    downloaded = next(entry for entry in entries if entry.action == "result.downloaded")
    assert (downloaded.actor, downloaded.role, downloaded.subject) == ("rosa", "researcher", job_id)
    assert "wrong" not in answer.text and "correct horse" not in answer.text  # no passwords
    assert client.get("/audit/verify", headers=admin_headers).json()["problems"] == []


def test_audit_is_for_admins_only(client: TestClient, researcher: Researcher) -> None:
    assert client.get("/audit", headers=researcher.headers).status_code == 403
    assert client.get("/audit").status_code == 401


def test_after_and_limit_page_through_the_chain(client: TestClient, admin_headers: Headers) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    for n in range(5):
        record_event(engine, actor="system", role="system", action=f"test.{n}")

    answer = client.get("/audit", params={"after": 2, "limit": 2}, headers=admin_headers)

    assert [entry.seq for entry in audit_entries_from_jsonl(answer.text.splitlines())] == [3, 4]


def _tamper(settings: Settings, statement: str) -> None:
    from sqlmodel import create_engine

    engine = create_engine(settings.effective_database_url)
    with engine.begin() as connection:
        connection.execute(text(statement))
    engine.dispose()


def _chain(client: TestClient, length: int = 5) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    for n in range(length):
        record_event(engine, actor="steward-a", role="steward", action=f"decision.{n}", details={"n": n})


def test_cli_verify_finds_an_edited_entry(client: TestClient, settings: Settings) -> None:
    _chain(client)
    _tamper(settings, "UPDATE auditrecord SET actor = 'mallory' WHERE seq = 3")

    result = CliRunner().invoke(hub_cli, ["audit", "verify", "--state", str(settings.state_dir)])

    assert result.exit_code == 1
    assert "edited" in result.output and "entry 3" in result.output


def test_verify_finds_deleted_and_reordered_entries(client: TestClient, settings: Settings) -> None:
    _chain(client, 6)
    _tamper(settings, "DELETE FROM auditrecord WHERE seq = 2")
    _tamper(settings, "UPDATE auditrecord SET seq = 100 WHERE seq = 4")
    _tamper(settings, "UPDATE auditrecord SET seq = 4 WHERE seq = 5")
    _tamper(settings, "UPDATE auditrecord SET seq = 5 WHERE seq = 100")
    engine = client.app.state.engine  # type: ignore[attr-defined]

    with Session(engine) as session:
        kinds = {problem.kind for problem in verify_hub_audit(session).problems}

    assert AuditProblemKind.DELETED in kinds
    assert AuditProblemKind.EDITED in kinds  # a moved entry's own hash covers its seq


def test_verify_finds_a_cut_off_tail(client: TestClient, settings: Settings) -> None:
    _chain(client, 4)
    _tamper(settings, "DELETE FROM auditrecord WHERE seq = 4")
    engine = client.app.state.engine  # type: ignore[attr-defined]

    with Session(engine) as session:
        assert [p.kind for p in verify_hub_audit(session).problems] == [AuditProblemKind.TRUNCATED]


def test_cli_export_jsonl_and_prov(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    _chain(client, 3)
    runner = CliRunner()

    jsonl = tmp_path / "audit.jsonl"
    prov = tmp_path / "audit.ttl"
    first = runner.invoke(hub_cli, ["audit", "export", "--state", str(settings.state_dir), "--out", str(jsonl)])
    second = runner.invoke(
        hub_cli, ["audit", "export", "--state", str(settings.state_dir), "--format", "prov", "--out", str(prov)]
    )

    assert first.exit_code == 0 and second.exit_code == 0
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        stored = list(audit_entries(session))
    assert list(audit_entries_from_jsonl(jsonl.read_text().splitlines())) == stored
    assert "prov:Activity" in prov.read_text()


def test_cli_refuses_a_missing_state(tmp_path: Path) -> None:
    result = CliRunner().invoke(hub_cli, ["audit", "verify", "--state", str(tmp_path / "nowhere")])

    assert result.exit_code == 2
    assert "no hub state" in result.output
