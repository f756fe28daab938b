"""The operator's gates: code that waits for approval, results that wait for release."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from protocol import Job, JobStatus, KeyPair, RoundSpec
from station.agent import StationAgent
from station.approvals import Approvals, Gate
from station.audit import read_audit
from station.cli import app
from station.config import StationSettings
from station.policy import AcceptancePolicy, read_policy, write_policy
from station.state import StationState


def _agent(state: StationState, hub: Any, executor: Any) -> StationAgent:
    settings = StationSettings(state_dir=state.root, poll_wait_s=0, executor="sandbox", heartbeat_s=0.05)
    return StationAgent(settings, client=hub.client(), executor=executor, retry_delays=(0.0,), sleep=lambda _s: None)


def _gates(state: StationState, *, code: str = "auto", release: str = "auto") -> None:
    policy = read_policy(state.root)
    policy.code_gate, policy.release_gate = code, release
    write_policy(state.root, policy)


def _cli(state: StationState, *args: str) -> Any:
    return CliRunner().invoke(app, [*args[1:], "--state", str(state.root)])  # app is the station group


def _events(state: StationState) -> list[str]:
    return [entry.action for entry in read_audit(state.audit_file)]


def test_policy_keeps_gates_and_refuses_unknown_modes(state: StationState) -> None:
    _gates(state, code="manual")

    assert read_policy(state.root).code_gate == "manual"
    assert read_policy(state.root).release_gate == "auto"
    (state.root / "policy.json").write_text('{"gates": {"code": "sometimes"}}')
    with pytest.raises(Exception, match="the code gate must be auto or manual"):
        read_policy(state.root)
    assert AcceptancePolicy.gates() == ["code", "release"]


def test_manual_code_gate_holds_unknown_code_until_approved(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    _gates(state, code="manual")
    hub.add_bundle(train_bundle)
    executor = fake_executor()
    agent = _agent(state, hub, executor)
    job = job_for(researcher, train_bundle)

    assert agent.process_job(job) is None
    assert executor.specs == []
    assert "job-1" not in hub.results
    assert agent.heartbeat_held() == 1
    assert hub.heartbeats == ["job-1"]
    listed = _cli(state, "station", "approvals", "list")
    assert "job-1" in listed.output
    assert "code" in listed.output

    approved = _cli(state, "station", "approvals", "approve", "job-1")
    assert approved.exit_code == 0, approved.output
    agent.carry_out_decisions()

    assert hub.results["job-1"].status == JobStatus.SUCCEEDED
    assert job.signed_manifest.manifest.bundle_hash in read_policy(state.root).bundles
    later = job_for(researcher, train_bundle, job_id="job-2")  # the same code: it passes the gate now
    envelope = agent.process_job(later)
    assert envelope is not None
    assert envelope.status == JobStatus.SUCCEEDED
    assert {"job.held", "code.approval_given", "code.approved"} <= set(_events(state))
    assert Approvals(state.root / "approvals").all() == []


def test_manual_code_gate_denial_tells_the_researcher_why(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    _gates(state, code="manual")
    hub.add_bundle(train_bundle)
    agent = _agent(state, hub, fake_executor())
    agent.process_job(job_for(researcher, train_bundle))

    no_reason = _cli(state, "station", "approvals", "deny", "job-1", "--reason", " ")
    denied = _cli(state, "station", "approvals", "deny", "job-1", "--reason", "uses an unreviewed library")
    twice = _cli(state, "station", "approvals", "approve", "job-1")
    agent.carry_out_decisions()

    assert no_reason.exit_code == 1
    assert "say why" in no_reason.output
    assert denied.exit_code == 0
    assert twice.exit_code == 1
    assert "denied already" in twice.output
    failure = hub.results["job-1"].failure
    assert failure is not None
    assert failure.reason == "the station's operator did not approve this train's code: uses an unreviewed library"
    assert "code.denied" in _events(state)


def test_held_job_the_hub_cancels_is_dropped(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    _gates(state, code="manual")
    hub.add_bundle(train_bundle)
    agent = _agent(state, hub, fake_executor())
    agent.process_job(job_for(researcher, train_bundle))
    hub.cancelled.add("job-1")

    assert agent.heartbeat_held() == 0
    agent.carry_out_decisions()

    assert Approvals(state.root / "approvals").all() == []
    assert "job.dropped" in _events(state)
    assert "job-1" not in hub.results


def test_manual_release_gate_keeps_the_result_until_released(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    _gates(state, release="manual")
    hub.add_bundle(train_bundle)
    agent = _agent(state, hub, fake_executor())

    assert agent.process_job(job_for(researcher, train_bundle)) is None
    assert "job-1" not in hub.results
    shown = _cli(state, "station", "approvals", "show", "job-1")
    assert shown.exit_code == 0, shown.output
    assert "result.json" in shown.output
    assert '{"ok": true}' in shown.output  # the operator reads what would leave

    assert _cli(state, "station", "approvals", "approve", "job-1").exit_code == 0
    agent.carry_out_decisions()

    assert hub.results["job-1"].status == JobStatus.SUCCEEDED
    assert hub.results["job-1"].sealed is not None
    assert {"result.held", "result.release_given", "result.released"} <= set(_events(state))
    assert not any((state.root / "approvals").iterdir())


def test_manual_release_gate_withheld_result_never_leaves(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    _gates(state, release="manual")
    hub.add_bundle(train_bundle)
    agent = _agent(state, hub, fake_executor())
    agent.process_job(job_for(researcher, train_bundle))

    _cli(state, "station", "approvals", "deny", "job-1", "--reason", "the cohort is too small to publish")
    agent.carry_out_decisions()

    envelope = hub.results["job-1"]
    assert envelope.status == JobStatus.FAILED
    assert envelope.sealed is None
    assert envelope.failure is not None
    assert "withheld the result: the cohort is too small to publish" in envelope.failure.reason
    assert "result.withheld" in _events(state)


def test_a_job_is_held_once(
    state: StationState, researcher: KeyPair, train_bundle: bytes, job_for: Callable[..., Job]
) -> None:
    job = job_for(researcher, train_bundle).model_copy(update={"round": RoundSpec(number=1)})
    queue = Approvals(state.root / "approvals")

    first = queue.hold(job, Gate.CODE, "example")
    again = queue.hold(job, Gate.RELEASE, "again")  # a re-offered job keeps its first hold

    assert again == first
    assert queue.get("job-1") == first
    with pytest.raises(KeyError, match="no job 'nope' waits"):
        queue.decide("nope", approve=True, by="op")


def test_agent_loop_carries_out_decisions_and_keeps_going(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    _gates(state, code="manual")
    hub.add_bundle(train_bundle)
    agent = _agent(state, hub, fake_executor())
    hub.jobs.append(job_for(researcher, train_bundle))
    agent.run(once=True)
    _cli(state, "station", "approvals", "approve", "job-1")

    agent.run(once=True)

    assert hub.results["job-1"].status == JobStatus.SUCCEEDED
