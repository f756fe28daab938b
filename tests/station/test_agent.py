"""The agent's job handling against an in-memory hub (httpx.MockTransport) and a fake executor.

The end-to-end test over real HTTP with the real hub lives in tests/e2e; the last tests here
run the real sandbox executor.
"""

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rdflib import Graph

import protocol
from protocol import Job, JobStatus, KeyPair, ResultEnvelope, ResultPayload
from station.agent import HubError, StationAgent, enrol, publish_collections, run_agent
from station.audit import read_audit, verify_audit_log
from station.config import StationSettings
from station.executors import RunResult, RunSpec, SandboxExecutor
from station.state import StationState

API_TOKEN = "station-api-token-0123456789-secret"
REPO = Path(__file__).resolve().parents[2]


def _agent(settings: StationSettings, hub: Any, executor: Any) -> StationAgent:
    return StationAgent(settings, client=hub.client(), executor=executor, retry_delays=(0.0,), sleep=lambda _s: None)


def _open(envelope: ResultEnvelope, researcher: KeyPair) -> ResultPayload:
    assert envelope.sealed is not None
    assert envelope.sealed.associated_data == envelope.job_id
    return ResultPayload.model_validate_json(protocol.open_sealed(envelope.sealed, researcher.encryption))


def _failure(hub: Any, job_id: str = "job-1") -> str:
    envelope: ResultEnvelope = hub.results[job_id]
    assert envelope.status == JobStatus.FAILED
    assert envelope.sealed is None
    assert envelope.failure is not None
    return envelope.failure.reason


class TestProcessJob:
    def test_process_job_success_is_sealed_signed_and_uploaded(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        # Prepare
        hub.add_bundle(train_bundle)
        hub.jobs.append(job_for(researcher, train_bundle))
        executor = fake_executor()

        # Execute
        _agent(settings, hub, executor).run(once=True)

        # Assert
        envelope = hub.results["job-1"]
        protocol.verify_envelope(envelope, state.load_keys().signing_public)
        assert envelope.status == JobStatus.SUCCEEDED
        payload = _open(envelope, researcher)
        assert json.loads(protocol.b64decode(payload.files["result.json"])) == {"ok": True}
        assert payload.station == "site-a"
        assert payload.collection == "chest-ct"
        assert list(state.outbox_dir.iterdir()) == []
        assert list(state.work_dir.iterdir()) == []

    def test_process_job_writes_job_file_and_mounts(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
        synthetic_root: Path,
    ) -> None:
        seen: dict[str, Any] = {}

        def inspect(spec: RunSpec) -> None:
            seen["job"] = json.loads(spec.job_file.read_text())
            seen["train"] = sorted(p.name for p in spec.train_dir.iterdir())
            seen["data"] = spec.data_dir
            (spec.out_dir / "result.json").write_text("{}")

        hub.add_bundle(train_bundle)
        _agent(settings, hub, fake_executor(inspect)).process_job(job_for(researcher, train_bundle))

        assert seen["job"] == {
            "job_id": "job-1",
            "station": "site-a",
            "collection": "chest-ct",
            "parameters": {"k": 5},
            "outputs": [{"name": "result.json", "type": "json"}],
        }
        assert seen["train"] == ["main.py"]
        assert seen["data"] == synthetic_root

    def test_process_job_tampered_manifest_fails_with_reason(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        tamper_job: Callable[[Job], Job],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        executor = fake_executor()

        _agent(settings, hub, executor).process_job(tamper_job(job_for(researcher, train_bundle)))

        assert "signature does not verify" in _failure(hub)
        assert executor.specs == []
        protocol.verify_envelope(hub.results["job-1"], state.load_keys().signing_public)

    def test_process_job_bundle_hash_mismatch(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
        bundle_of: Callable[..., bytes],
    ) -> None:
        job = job_for(researcher, train_bundle)
        hub.artifacts[job.signed_manifest.manifest.bundle_hash] = bundle_of({"main.py": "print('evil')"})
        executor = fake_executor()

        _agent(settings, hub, executor).process_job(job)

        assert "does not match the signed manifest" in _failure(hub)
        assert executor.specs == []

    def test_process_job_bundle_missing_at_hub(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        _agent(settings, hub, fake_executor()).process_job(job_for(researcher, train_bundle))

        assert "does not deliver the train bundle" in _failure(hub)

    @pytest.mark.parametrize(
        ("files", "reason"),
        [
            ({"../evil.py": "x", "main.py": "x"}, "leaving its folder"),
            ({"/etc/evil": "x", "main.py": "x"}, "absolute path"),
            ({"other.py": "x"}, "no entrypoint"),
        ],
    )
    def test_process_job_unsafe_bundle(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        job_for: Callable[..., Job],
        fake_executor: Any,
        bundle_of: Callable[..., bytes],
        files: dict[str, str],
        reason: str,
    ) -> None:
        bundle = bundle_of(files)
        hub.add_bundle(bundle)

        _agent(settings, hub, fake_executor()).process_job(job_for(researcher, bundle))

        assert reason in _failure(hub)
        assert not (settings.state_dir.parent / "evil.py").exists()

    def test_process_job_undeclared_output(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        def leak(spec: RunSpec) -> None:
            (spec.out_dir / "result.json").write_text("{}")
            (spec.out_dir / "pixels.npy").write_bytes(b"\x93NUMPY")

        hub.add_bundle(train_bundle)

        _agent(settings, hub, fake_executor(leak)).process_job(job_for(researcher, train_bundle))

        assert _failure(hub) == "the train wrote an undeclared output 'pixels.npy'"

    def test_process_job_missing_output(
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

        _agent(settings, hub, fake_executor(lambda spec: None)).process_job(job_for(researcher, train_bundle))

        assert "did not write its declared output(s): result.json" in _failure(hub)

    def test_process_job_output_of_wrong_type(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        def write_pickle(spec: RunSpec) -> None:
            (spec.out_dir / "result.json").write_bytes(b"\x80\x04\x95pickle")

        hub.add_bundle(train_bundle)

        _agent(settings, hub, fake_executor(write_pickle)).process_job(job_for(researcher, train_bundle))

        assert "declared json" in _failure(hub)

    def test_process_job_train_failure_hides_log(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        def crash(spec: RunSpec) -> RunResult:
            return RunResult(exit_code=2, timed_out=False, log_tail="PatientID=SECRET", duration_s=1, executor="fake")

        hub.add_bundle(train_bundle)

        _agent(settings, hub, fake_executor(crash)).process_job(job_for(researcher, train_bundle))

        assert _failure(hub).startswith("the train exited with code 2")
        assert hub.results["job-1"].failure.exit_code == 2
        assert "SECRET" not in hub.results["job-1"].model_dump_json()

    def test_process_job_timeout(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        def slow(spec: RunSpec) -> RunResult:
            return RunResult(exit_code=-9, timed_out=True, log_tail="", duration_s=600, executor="fake")

        hub.add_bundle(train_bundle)

        _agent(settings, hub, fake_executor(slow)).process_job(job_for(researcher, train_bundle))

        assert "longer than the station's limit" in _failure(hub)

    def test_process_job_for_another_station(
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

        _agent(settings, hub, fake_executor()).process_job(job_for(researcher, train_bundle, station="site-b"))

        assert "addressed to station 'site-b'" in _failure(hub)
        assert hub.results["job-1"].station == "site-a"

    def test_process_job_collection_not_held(
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

        _agent(settings, hub, fake_executor()).process_job(job_for(researcher, train_bundle, collection="brain-mr"))

        assert "holds no collection 'brain-mr'" in _failure(hub)

    def test_process_job_collection_not_in_signed_manifest(
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
        job = job_for(researcher, train_bundle, collections=("site-a/other",))

        _agent(settings, hub, fake_executor()).process_job(job)

        assert "does not name the collection 'site-a/chest-ct'" in _failure(hub)

    def test_process_job_unsafe_job_id(
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

        _agent(settings, hub, fake_executor()).process_job(job_for(researcher, train_bundle, job_id="../../escape"))

        assert hub.results["../../escape"].status == JobStatus.SUCCEEDED
        assert not (settings.state_dir.parent / "escape").exists()


class TestOutbox:
    def test_failed_upload_stays_in_outbox_and_is_flushed_at_start(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        # Prepare: every upload attempt fails
        hub.add_bundle(train_bundle)
        hub.jobs.append(job_for(researcher, train_bundle))
        hub.upload_failures = 100
        _agent(settings, hub, fake_executor()).run(once=True)
        assert hub.results == {}
        assert [p.name for p in state.outbox_dir.iterdir()] == ["job-1.json"]

        # Execute: the hub is back; a restarted agent flushes the outbox first
        hub.upload_failures = 0
        executor = fake_executor()
        _agent(settings, hub, executor).run(once=True)

        # Assert
        assert hub.results["job-1"].status == JobStatus.SUCCEEDED
        assert list(state.outbox_dir.iterdir()) == []
        assert executor.specs == []

    def test_upload_retries_then_succeeds(
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
        hub.upload_failures = 1

        _agent(settings, hub, fake_executor()).process_job(job_for(researcher, train_bundle))

        assert "job-1" in hub.results
        events = [entry.action for entry in read_audit(state.audit_file)]
        assert events[-1] == "result.uploaded"

    def test_received_job_is_resumed_after_a_crash(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        # Prepare: the job was received, then the station crashed before answering
        hub.add_bundle(train_bundle)
        job = job_for(researcher, train_bundle, job_id="job-7")
        (state.work_dir / "job-7").mkdir()
        (state.work_dir / "job-7" / "message.json").write_text(job.model_dump_json())

        # Execute
        _agent(settings, hub, fake_executor()).run(once=True)

        # Assert
        assert hub.results["job-7"].status == JobStatus.SUCCEEDED


class TestLoop:
    def test_run_survives_hub_down(
        self, settings: StationSettings, state: StationState, hub: Any, fake_executor: Any
    ) -> None:
        hub.poll_down = True

        _agent(settings, hub, fake_executor()).run(once=True)

        assert len(hub.requests) == 1

    def test_run_survives_refused_token(
        self, settings: StationSettings, state: StationState, fake_executor: Any
    ) -> None:
        client = httpx.Client(base_url="http://hub.test", transport=httpx.MockTransport(lambda r: httpx.Response(401)))

        StationAgent(settings, client=client, executor=fake_executor()).run(once=True)

    def test_run_agent_handles_jobs_until_stopped(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        import threading

        stop = threading.Event()
        hub.add_bundle(train_bundle)
        hub.jobs.extend(job_for(researcher, train_bundle, job_id=f"job-{n}") for n in range(3))

        def stop_when_done(spec: RunSpec) -> None:
            (spec.out_dir / "result.json").write_text("{}")
            if spec.job_id == "job-2":
                stop.set()

        run_agent(settings, stop_event=stop, client=hub.client(), executor=fake_executor(stop_when_done))

        assert sorted(hub.results) == ["job-0", "job-1", "job-2"]

    def test_malformed_job_is_skipped(self, settings: StationSettings, state: StationState, fake_executor: Any) -> None:
        def handle(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"job_id": "x", "unexpected": True})

        client = httpx.Client(base_url="http://hub.test", transport=httpx.MockTransport(handle))
        agent = StationAgent(settings, client=client, executor=fake_executor())

        assert agent.poll_next_job() is None
        assert read_audit(state.audit_file)[-1].action == "job.malformed"

    def test_audit_log_is_chained_and_holds_no_secrets(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        hub.add_bundle(train_bundle)
        hub.jobs.append(job_for(researcher, train_bundle))

        _agent(settings, hub, fake_executor()).run(once=True)

        events = [entry.action for entry in read_audit(state.audit_file)]
        assert events == [
            "job.received",
            "grant.verified",
            "job.verified",
            "job.run",
            "job.succeeded",
            "result.queued",
            "result.uploaded",
        ]
        assert verify_audit_log(state.audit_file).ok
        assert API_TOKEN not in state.audit_file.read_text()
        assert API_TOKEN not in caplog.text


class TestEnrolAndPublish:
    def test_enrol_writes_private_identity(self, tmp_path: Path, hub: Any) -> None:
        state = StationState(tmp_path / "s")

        identity = enrol(
            state=state,
            hub_url="http://hub.test",
            name="site-a",
            token="t" * 20,
            transport=httpx.MockTransport(hub.handle),
        )

        assert identity.api_token == API_TOKEN
        assert API_TOKEN not in repr(identity)
        assert stat.S_IMODE(os.stat(state.identity_file).st_mode) == 0o600
        assert state.read_identity() == identity
        assert hub.publications["enrolment"]["signing_public_key"] == state.load_keys().signing_public

    def test_enrol_refused_token(self, tmp_path: Path) -> None:
        transport = httpx.MockTransport(lambda r: httpx.Response(403, json={"detail": "used token"}))

        with pytest.raises(HubError, match="403 used token"):
            enrol(
                state=StationState(tmp_path), hub_url="http://hub.test", name="a", token="t" * 20, transport=transport
            )

        assert not (tmp_path / "station.json").exists()

    def test_publish_collections_sends_signed_turtle(
        self, settings: StationSettings, state: StationState, hub: Any
    ) -> None:
        published = publish_collections(settings, client=hub.client())

        assert published == ["site-a/chest-ct"]
        publication = protocol.CollectionPublication.model_validate(hub.publications["chest-ct"])
        protocol.verify_publication(publication, state.load_keys().signing_public)
        assert publication.summary.subjects == 16
        assert len(Graph().parse(data=publication.turtle, format="turtle")) > 5

    def test_publish_collections_hub_refuses(self, settings: StationSettings, state: StationState) -> None:
        client = httpx.Client(
            base_url="http://hub.test",
            transport=httpx.MockTransport(lambda r: httpx.Response(400, json={"detail": "bad turtle"})),
        )

        with pytest.raises(HubError, match="bad turtle"):
            publish_collections(settings, client=client)


@pytest.mark.slow
@pytest.mark.skipif(SandboxExecutor().isolation_error() is not None, reason="bubblewrap cannot create sandboxes here")
class TestWithSandbox:
    def test_process_job_in_sandbox(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        synthetic_root: Path,
    ) -> None:
        hub.add_bundle(train_bundle)

        _agent(settings, hub, SandboxExecutor()).process_job(job_for(researcher, train_bundle))

        payload = _open(hub.results["job-1"], researcher)
        expected = sum(1 for p in synthetic_root.rglob("*") if p.is_file())
        assert json.loads(protocol.b64decode(payload.files["result.json"])) == {
            "files": expected,
            "job_id": "job-1",
            "k": 5,
        }
        assert payload.executor == "sandbox"

    def test_cohort_stats_example_in_sandbox(
        self,
        settings: StationSettings,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        job_for: Callable[..., Job],
        bundle_of: Callable[..., bytes],
    ) -> None:
        train = REPO / "examples" / "trains" / "cohort-stats"
        if not train.is_dir():
            pytest.skip("the cohort-stats example train is not in this checkout")
        bundle = bundle_of({p.relative_to(train).as_posix(): p.read_bytes() for p in train.rglob("*") if p.is_file()})
        hub.add_bundle(bundle)

        _agent(settings, hub, SandboxExecutor()).process_job(job_for(researcher, bundle, outputs=("cohort.json",)))

        envelope = hub.results["job-1"]
        assert envelope.status == JobStatus.SUCCEEDED, envelope.failure
        cohort = json.loads(protocol.b64decode(_open(envelope, researcher).files["cohort.json"]))
        assert cohort


def test_agent_requires_enrolment(settings: StationSettings) -> None:
    shutil.rmtree(settings.state_dir, ignore_errors=True)

    with pytest.raises(FileNotFoundError, match="enrol"):
        StationAgent(settings)


def test_agent_sends_heartbeats_while_a_train_runs(
    tmp_path: Path,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    import time

    settings = StationSettings(state_dir=state.root, poll_wait_s=0, executor="sandbox", heartbeat_s=0.05)

    def slow(spec: RunSpec) -> None:
        time.sleep(0.4)
        (spec.out_dir / "result.json").write_text('{"ok": true}')

    hub.add_bundle(train_bundle)

    _agent(settings, hub, fake_executor(slow)).process_job(job_for(researcher, train_bundle))

    assert hub.heartbeats.count("job-1") >= 3
    assert hub.results["job-1"].status == JobStatus.SUCCEEDED


def test_agent_stops_a_train_the_hub_cancelled(
    tmp_path: Path,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    settings = StationSettings(state_dir=state.root, poll_wait_s=0, executor="sandbox", heartbeat_s=0.05)

    def runs_until_stopped(spec: RunSpec) -> RunResult:
        assert spec.stop is not None
        hub.cancelled.add(spec.job_id)  # the steward suspends the grant while the train runs
        stopped = spec.stop.wait(timeout=10)
        return RunResult(exit_code=-9, timed_out=False, log_tail="", duration_s=0.1, executor="fake", stopped=stopped)

    hub.add_bundle(train_bundle)

    envelope = _agent(settings, hub, fake_executor(runs_until_stopped)).process_job(job_for(researcher, train_bundle))

    assert envelope.status == JobStatus.FAILED
    assert "the station stopped the train: the hub no longer expects the job" in _failure(hub)
    assert "is cancelled" in _failure(hub)
    assert "job.stopped" in [entry.action for entry in read_audit(state.audit_file)]


class TestReplayAndStationErrors:
    """A compromised hub replaying jobs, and inputs that must never stop the agent."""

    def _settings(self, state: StationState, **extra: Any) -> StationSettings:
        return StationSettings(state_dir=state.root, poll_wait_s=0, executor="sandbox", **extra)

    def test_the_same_signed_train_under_a_new_job_id_is_refused(
        self,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        executor = fake_executor()
        agent = _agent(self._settings(state), hub, executor)
        first = job_for(researcher, train_bundle, job_id="job-1")
        agent.process_job(first)

        agent.process_job(first.model_copy(update={"job_id": "job-2"}))

        assert hub.results["job-1"].status == JobStatus.SUCCEEDED
        assert "a replay: the same signed train ran on collection" in _failure(hub, "job-2")
        assert "'job-1'" in _failure(hub, "job-2")
        assert len(executor.specs) == 1

    def test_a_job_id_answered_before_is_not_run_again_even_after_a_restart(
        self,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        job = job_for(researcher, train_bundle)
        _agent(self._settings(state), hub, fake_executor()).process_job(job)
        del hub.results["job-1"]
        executor = fake_executor()

        _agent(self._settings(state), hub, executor).process_job(job)  # a new agent: the ledger is on disk

        assert "answered job 'job-1' already" in _failure(hub)
        assert executor.specs == []
        assert "replay" in [entry.details.get("reason") for entry in read_audit(state.audit_file)]

    def test_rounds_of_one_federated_train_are_not_replays(
        self,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)
        agent = _agent(self._settings(state), hub, fake_executor())
        job = job_for(researcher, train_bundle)
        for number in (1, 2):
            round_job = job.model_copy(update={"job_id": f"job-r{number}", "round": protocol.RoundSpec(number=number)})
            assert agent.ledger.replay_of(round_job) is None
            agent.ledger.record(round_job, "succeeded")

        again = job.model_copy(update={"job_id": "job-r1-again", "round": protocol.RoundSpec(number=1)})
        replay = agent.ledger.replay_of(again)
        assert replay is not None
        assert replay.earlier_job_id == "job-r1"
        assert "round 1" in replay.reason(again)

    def test_a_train_signed_long_ago_is_refused(
        self,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        from datetime import UTC, datetime, timedelta

        hub.add_bundle(train_bundle)
        old = job_for(researcher, train_bundle, created_at=datetime.now(UTC) - timedelta(days=100))

        _agent(self._settings(state, max_train_age_days=30), hub, fake_executor()).process_job(old)

        assert "signed 100 days ago, more than the station's limit of 30 days" in _failure(hub)

    def test_an_unexpected_error_fails_the_job_and_the_next_one_runs(
        self,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
    ) -> None:
        hub.add_bundle(train_bundle)

        def broken(spec: RunSpec) -> None:
            if spec.job_id == "job-1":
                raise ZeroDivisionError("PatientID=SECRET")  # an exception's text may quote data
            (spec.out_dir / "result.json").write_text('{"ok": true}')

        agent = _agent(self._settings(state), hub, fake_executor(broken))
        hub.jobs.extend(
            [job_for(researcher, train_bundle, job_id="job-1"), job_for(researcher, train_bundle, job_id="job-2")]
        )

        agent.run(once=True)
        agent.run(once=True)

        assert "could not handle this job (ZeroDivisionError)" in _failure(hub, "job-1")
        assert "SECRET" not in _failure(hub, "job-1")
        assert hub.results["job-2"].status == JobStatus.SUCCEEDED
        assert not any(state.work_dir.iterdir())

    @pytest.mark.parametrize(
        ("output", "reason"),
        [
            (b"\x1d\x00\x00\x00\x00\x00\x00\x00" + b'{"w": 5}' + b" " * 21, "is not described by an object"),
            (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        ],
    )
    def test_a_hostile_output_fails_its_job_and_the_station_stays_healthy(
        self,
        state: StationState,
        hub: Any,
        researcher: KeyPair,
        train_bundle: bytes,
        job_for: Callable[..., Job],
        fake_executor: Any,
        output: bytes,
        reason: str,
    ) -> None:
        hub.add_bundle(train_bundle)
        kind = "safetensors" if output.startswith(b"\x1d") else "json"

        def hostile(spec: RunSpec) -> None:
            name = "model.safetensors" if spec.job_id == "job-1" else "result.json"
            data = output if spec.job_id == "job-1" else b'{"ok": true}'
            (spec.out_dir / name).write_bytes(data)

        bad = job_for(researcher, train_bundle, job_id="job-1", outputs=("model.safetensors",))
        manifest = bad.signed_manifest.manifest
        outputs = (protocol.OutputSpec(name="model.safetensors", type=kind),)
        signed = protocol.sign_manifest(manifest.model_copy(update={"outputs": outputs}), researcher.signing)
        bad = bad.model_copy(update={"signed_manifest": signed})
        agent = _agent(self._settings(state), hub, fake_executor(hostile))
        hub.jobs.extend([bad, job_for(researcher, train_bundle, job_id="job-2")])

        agent.run(once=True)
        agent.run(once=True)

        assert reason in _failure(hub, "job-1")
        assert hub.results["job-2"].status == JobStatus.SUCCEEDED


def test_agent_refuses_a_train_that_overfilled_out(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    settings = StationSettings(state_dir=state.root, poll_wait_s=0, executor="sandbox", max_output_mb=3)
    seen: list[int | None] = []

    def flood(spec: RunSpec) -> RunResult:
        seen.append(spec.max_out_bytes)
        return RunResult(exit_code=-9, timed_out=False, log_tail="", duration_s=1, executor="fake", out_overflow=True)

    hub.add_bundle(train_bundle)

    _agent(settings, hub, fake_executor(flood)).process_job(job_for(researcher, train_bundle))

    assert seen == [3 * 1024 * 1024]
    assert "wrote more than the station's limit of 3 MB to /out and was stopped" in _failure(hub)
