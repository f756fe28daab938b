"""The train-acceptance policy: allow-lists checked on every job, kept by the station's operator."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from protocol import Job, JobStatus, KeyPair, PolicyError, content_address
from station.agent import StationAgent
from station.audit import read_audit
from station.cli import app
from station.config import StationSettings
from station.policy import AcceptancePolicy, check_acceptance, policy_file, read_policy, write_policy
from station.state import StationState


def test_empty_lists_allow_everything(researcher: KeyPair, train_bundle: bytes, job_for: Callable[..., Job]) -> None:
    check_acceptance(job_for(researcher, train_bundle), AcceptancePolicy())


@pytest.mark.parametrize(
    ("kind", "message"),
    [("bundles", "train bundle"), ("researcher_keys", "researcher 'rosa'"), ("projects", "project 'p1'")],
)
def test_a_list_allows_only_what_it_names(
    researcher: KeyPair, train_bundle: bytes, job_for: Callable[..., Job], kind: str, message: str
) -> None:
    job = job_for(researcher, train_bundle)
    allowed = {
        "bundles": content_address(train_bundle),
        "researcher_keys": researcher.key_id,
        "projects": "p1",
    }

    check_acceptance(job, AcceptancePolicy(**{kind: [allowed[kind]]}))
    with pytest.raises(PolicyError, match=message):
        check_acceptance(job, AcceptancePolicy(**{kind: ["something-else"]}))


def test_policy_file_round_trip_and_bad_file(tmp_path: Path) -> None:
    write_policy(tmp_path, AcceptancePolicy(projects=["p1", "p1", "p2"]))

    assert read_policy(tmp_path).projects == ["p1", "p2"]
    assert policy_file(tmp_path).stat().st_mode & 0o777 == 0o600
    policy_file(tmp_path).write_text("[1, 2]")
    with pytest.raises(PolicyError, match=r"policy\.json"):
        read_policy(tmp_path)


def test_agent_refuses_a_bundle_off_the_list_and_audits_it(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    write_policy(state.root, AcceptancePolicy(bundles=["sha256:" + "0" * 64]))
    hub.add_bundle(train_bundle)
    executor = fake_executor()

    StationAgent(settings, client=hub.client(), executor=executor, retry_delays=(0.0,)).process_job(
        job_for(researcher, train_bundle)
    )

    envelope = hub.results["job-1"]
    assert envelope.status == JobStatus.FAILED and envelope.failure is not None
    assert "allow-list of bundles" in envelope.failure.reason
    assert executor.specs == []
    assert [entry.action for entry in read_audit(state.audit_file)].count("job.refused") == 1


def test_cli_allow_show_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    state = ["--state", str(tmp_path)]

    allowed = runner.invoke(app, ["policy", "allow", "projects", "p1", *state])
    shown = runner.invoke(app, ["policy", "show", *state])
    wrong_kind = runner.invoke(app, ["policy", "allow", "colours", "red", *state])
    revoked = runner.invoke(app, ["policy", "revoke", "projects", "p1", *state])
    missing = runner.invoke(app, ["policy", "revoke", "projects", "p1", *state])

    assert allowed.exit_code == 0 and "projects: p1" in shown.output and "bundles: (any)" in shown.output
    assert wrong_kind.exit_code == 2
    assert revoked.exit_code == 0 and read_policy(tmp_path).projects == []
    assert missing.exit_code == 1
