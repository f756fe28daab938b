"""Trusted steward keys, and a compromised hub that tries to make the station run what no steward approved."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import protocol
from protocol import Job, JobStatus, KeyPair, PolicyError, ProtocolError, SignedGrant, SignedManifest
from station.agent import StationAgent
from station.audit import read_audit
from station.cli import app
from station.config import StationSettings
from station.state import StationState
from station.stewards import add_steward, check_job_grants, read_stewards, remove_steward, stewards_file


def _agent(settings: StationSettings, hub: Any, executor: Any) -> StationAgent:
    return StationAgent(settings, client=hub.client(), executor=executor, retry_delays=(0.0,), sleep=lambda _s: None)


class TestKeyring:
    def test_add_read_remove(self, tmp_path: Path) -> None:
        first, second = protocol.generate_key_pair(), protocol.generate_key_pair()

        add_steward(tmp_path, "ada", first.signing_public)
        add_steward(tmp_path, "ada", first.signing_public)  # idempotent
        add_steward(tmp_path, "bob", second.signing_public)

        assert [(s.name, s.key_id) for s in read_stewards(tmp_path)] == [("ada", first.key_id), ("bob", second.key_id)]
        assert stewards_file(tmp_path).stat().st_mode & 0o777 == 0o600
        assert remove_steward(tmp_path, "ada") == 1
        assert [s.name for s in read_stewards(tmp_path)] == ["bob"]

    def test_bad_key_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ProtocolError):
            add_steward(tmp_path, "ada", "not-a-key")
        assert read_stewards(tmp_path) == []

    def test_broken_file_is_named(self, tmp_path: Path) -> None:
        stewards_file(tmp_path).write_text("{")

        with pytest.raises(PolicyError, match=r"stewards\.json"):
            read_stewards(tmp_path)

    def test_cli_add_list_remove(self, tmp_path: Path) -> None:
        keys = protocol.generate_key_pair()
        runner = CliRunner()

        added = runner.invoke(app, ["stewards", "add", "ada", "--key", keys.signing_public, "--state", str(tmp_path)])
        listed = runner.invoke(app, ["stewards", "list", "--state", str(tmp_path)])
        bad = runner.invoke(app, ["stewards", "add", "eve", "--key", "xyz", "--state", str(tmp_path)])
        removed = runner.invoke(app, ["stewards", "remove", "ada", "--state", str(tmp_path)])

        assert added.exit_code == 0 and keys.key_id in added.output
        assert listed.exit_code == 0 and "ada" in listed.output and keys.key_id in listed.output
        assert bad.exit_code == 2 and all(s.name != "eve" for s in read_stewards(tmp_path))
        assert removed.exit_code == 0 and read_stewards(tmp_path) == []


class TestCheckJobGrants:
    def test_station_without_steward_keys_refuses(
        self, researcher: KeyPair, train_bundle: bytes, job_for: Callable[..., Job]
    ) -> None:
        with pytest.raises(PolicyError, match="trusts no steward key"):
            check_job_grants(job_for(researcher, train_bundle), station="site-a", stewards=[])

    def test_expired_grant_is_refused(
        self,
        state: StationState,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        grant_for: Callable[..., SignedGrant],
    ) -> None:
        job = job_for(researcher, train_bundle, grants=(grant_for(researcher),))
        later = datetime.now(UTC) + timedelta(days=60)

        with pytest.raises(PolicyError, match="not now"):
            check_job_grants(job, station="site-a", stewards=read_stewards(state.root), now=later)


class TestCompromisedHub:
    """Each attack: the station refuses, tells the researcher why, and audits it; no train runs."""

    def _refused(self, settings: StationSettings, state: StationState, hub: Any, job: Job, fake_executor: Any) -> str:
        executor = fake_executor()
        _agent(settings, hub, executor).process_job(job)
        envelope = hub.results[job.job_id]
        assert envelope.status == JobStatus.FAILED
        assert executor.specs == []
        refused = [entry for entry in read_audit(state.audit_file) if entry.action == "job.refused"]
        assert refused and refused[-1].subject == job.job_id
        assert envelope.failure is not None
        return envelope.failure.reason

    def test_hub_forges_a_grant_with_its_own_key(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        grant_for: Callable[..., SignedGrant],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        forged = grant_for(researcher, steward=protocol.generate_key_pair())

        reason = self._refused(settings, state, hub, job_for(researcher, train_bundle, grants=(forged,)), fake_executor)

        assert "not a steward this station trusts" in reason

    def test_hub_forges_a_signature_under_the_trusted_key_id(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        grant_for: Callable[..., SignedGrant],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        genuine = grant_for(researcher)
        forged = SignedGrant(
            grant=genuine.grant, signature=grant_for(researcher, steward=protocol.generate_key_pair()).signature
        )

        reason = self._refused(settings, state, hub, job_for(researcher, train_bundle, grants=(forged,)), fake_executor)

        assert "does not verify" in reason

    def test_hub_injects_a_job_without_any_grant(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)

        reason = self._refused(settings, state, hub, job_for(researcher, train_bundle, grants=()), fake_executor)

        assert "carries no grant" in reason

    def test_hub_reuses_another_projects_grant(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        grant_for: Callable[..., SignedGrant],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        other_project = grant_for(researcher, project_id="p-approved")

        job = job_for(researcher, train_bundle, grants=(other_project,))
        reason = self._refused(settings, state, hub, job, fake_executor)

        assert "project 'p-approved'" in reason

    def test_hub_signs_a_train_as_the_researcher_with_its_own_key(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        grant_for: Callable[..., SignedGrant],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        impostor = protocol.generate_key_pair()  # the hub's key, claiming to be "rosa"

        job = job_for(impostor, train_bundle, grants=(grant_for(researcher),))
        reason = self._refused(settings, state, hub, job, fake_executor)

        assert "another researcher key" in reason

    def test_hub_swaps_the_trains_image(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        job = job_for(researcher, train_bundle)
        swapped = job.signed_manifest.manifest.model_copy(update={"image_digest": "sha256:" + "e" * 64})
        attack = job.model_copy(
            update={"signed_manifest": SignedManifest(manifest=swapped, signature=job.signed_manifest.signature)}
        )
        executor = fake_executor()

        _agent(settings, hub, executor).process_job(attack)

        assert hub.results[job.job_id].failure.reason.startswith("the train manifest's signature does not verify")
        assert executor.specs == []
