"""The station operator's HTTP API: the approval queue, behind the operator token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from protocol import Job, JobStatus, KeyPair
from station.agent import StationAgent
from station.api import create_station_api, operator_token
from station.audit import read_audit
from station.config import StationSettings
from station.policy import read_policy, write_policy
from station.state import StationState


def _held_job(
    state: StationState, hub: Any, researcher: KeyPair, bundle: bytes, job_for: Any, executor: Any
) -> StationAgent:
    policy = read_policy(state.root)
    policy.code_gate = "manual"
    write_policy(state.root, policy)
    hub.add_bundle(bundle)
    settings = StationSettings(state_dir=state.root, poll_wait_s=0, executor="sandbox")
    agent = StationAgent(settings, client=hub.client(), executor=executor, retry_delays=(0.0,), sleep=lambda _s: None)
    assert agent.process_job(job_for(researcher, bundle)) is None
    return agent


def test_the_api_needs_the_operator_token(state: StationState) -> None:
    api = TestClient(create_station_api(state.root))

    assert api.get("/approvals").status_code == 401
    assert api.get("/approvals", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (state.root / "operator.token").stat().st_mode & 0o077 == 0


def test_operator_lists_and_approves_a_held_job(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    agent = _held_job(state, hub, researcher, train_bundle, job_for, fake_executor())
    api = TestClient(create_station_api(state.root))
    headers = {"Authorization": f"Bearer {operator_token(state.root)}"}

    listed = api.get("/approvals", headers=headers).json()
    one = api.get("/approvals/job-1", headers=headers).json()
    bad_name = api.post("/approvals/job-1/approve", json={"operator": "a b"}, headers=headers)
    approved = api.post("/approvals/job-1/approve", json={"operator": "ops-anna"}, headers=headers)
    again = api.post("/approvals/job-1/deny", json={"operator": "ops-anna", "comment": "no"}, headers=headers)
    missing = api.post("/approvals/nope/approve", json={"operator": "ops-anna"}, headers=headers)
    agent.carry_out_decisions()

    assert [item["job"] for item in listed] == ["job-1"]
    assert one["gate"] == "code" and one["parameters"] == {"k": 5}
    assert bad_name.status_code == 422
    assert approved.status_code == 200 and approved.json()["decision"] == "approved"
    assert again.status_code == 409
    assert missing.status_code == 404
    assert hub.results["job-1"].status == JobStatus.SUCCEEDED
    entries = [(entry.action, entry.actor) for entry in read_audit(state.audit_file)]
    assert ("code.approval_given", "ops-anna") in entries
    policy = api.get("/policy", headers=headers).json()
    assert policy["gates"] == {"code": "manual", "release": "auto"}
    assert len(policy["bundles"]) == 1


def test_a_denial_needs_a_reason(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    _held_job(state, hub, researcher, train_bundle, job_for, fake_executor())
    api = TestClient(create_station_api(state.root))
    headers = {"Authorization": f"Bearer {operator_token(state.root)}"}

    answer = api.post("/approvals/job-1/deny", json={"operator": "ops-anna"}, headers=headers)

    assert answer.status_code == 400
    assert "say why" in answer.json()["detail"]
