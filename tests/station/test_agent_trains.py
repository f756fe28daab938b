"""Train format at the station: resource caps, limits from train.toml, filtered logs, PROV-O."""

from collections.abc import Callable
from typing import Any

import pytest

import protocol
from protocol import Job, JobStatus, KeyPair, ResultPayload
from station.agent import StationAgent
from station.audit import read_audit
from station.config import StationSettings
from station.executors import RunResult, RunSpec
from station.output_policy import filter_log_tail
from station.state import StationState


def _agent(settings: StationSettings, hub: Any, executor: Any) -> StationAgent:
    return StationAgent(settings, client=hub.client(), executor=executor, retry_delays=(0.0,), sleep=lambda _s: None)


def test_job_asking_more_than_the_station_allows_is_refused(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    hub.add_bundle(train_bundle)
    executor = fake_executor()
    _agent(settings, hub, executor).process_job(job_for(researcher, train_bundle, resources={"cpu": 64.0}))

    failure = hub.results["job-1"].failure
    assert failure is not None
    assert "asks 64 CPUs" in failure.reason
    assert "resource cap" in failure.reason
    assert executor.specs == []
    assert any(entry.action == "job.refused" for entry in read_audit(state.audit_file))


def test_gpu_refused_without_a_gpu_executor(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    hub.add_bundle(train_bundle)
    _agent(settings, hub, fake_executor()).process_job(job_for(researcher, train_bundle, resources={"gpu": 1.0}))

    failure = hub.results["job-1"].failure
    assert failure is not None
    assert "GPUs" in failure.reason


def test_gpu_train_gets_the_stations_gpus_and_its_devices_are_recorded(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    executor = fake_executor(
        lambda spec: (
            (spec.out_dir / "result.json").write_text("{}")
            and RunResult(exit_code=0, timed_out=False, log_tail="", duration_s=1, executor="fake", devices=("gpu:0",))
        )
    )
    executor.gpus = 2  # an executor that gives GPUs (Docker or Kubernetes set up with them)
    settings = StationSettings(state_dir=state.root, poll_wait_s=0, executor="sandbox", gpus=2)
    hub.add_bundle(train_bundle)

    _agent(settings, hub, executor).process_job(job_for(researcher, train_bundle, resources={"gpu": 1.0}))
    _agent(settings, hub, executor).process_job(
        job_for(researcher, train_bundle, job_id="job-2", resources={"gpu": 3.0})
    )

    assert executor.specs[0].gpus == 1
    envelope = hub.results["job-1"]
    assert envelope.status == JobStatus.SUCCEEDED, envelope.failure
    assert envelope.sealed is not None
    payload = ResultPayload.model_validate_json(protocol.open_sealed(envelope.sealed, researcher.encryption))
    assert payload.provenance is not None
    assert payload.provenance["ty:devices"] == ["gpu:0"]
    failure = hub.results["job-2"].failure
    assert failure is not None
    assert "GPUs" in failure.reason


def test_limits_follow_train_toml_and_provenance_is_sealed(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    hub.add_bundle(train_bundle)
    executor = fake_executor()
    job = job_for(researcher, train_bundle, resources={"time_s": 30.0, "memory_mb": 256.0, "cpu": 0.5})
    _agent(settings, hub, executor).process_job(job)

    spec = executor.specs[0]
    assert (spec.timeout_s, spec.memory_mb, spec.cpus, spec.gpus) == (30.0, 256, 0.5, 0)
    envelope = hub.results["job-1"]
    assert envelope.status == JobStatus.SUCCEEDED
    assert envelope.sealed is not None
    payload = ResultPayload.model_validate_json(protocol.open_sealed(envelope.sealed, researcher.encryption))
    prov = payload.provenance
    assert prov is not None
    assert prov["@type"] == "prov:Activity"
    assert prov["prov:used"][0]["ty:bundle"] == job.signed_manifest.manifest.bundle_hash
    assert prov["ty:parameters"] == {"k": 5}
    assert prov["ty:executor"] == "fake"
    assert prov["prov:wasAssociatedWith"]["@id"] == "urn:trainyard:station:site-a"
    record = state.read_collection(job.collection)
    assert record is not None
    assert prov["prov:used"][1]["ty:collectionVersion"] == record.indexed_at.isoformat()


def test_failed_job_says_exit_code_and_filtered_log_tail(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    def crash(spec: RunSpec) -> RunResult:
        tail = "reading series 1.2.840.113619.2.55.3.1234\nValueError: bad pixel data\n"
        return RunResult(exit_code=3, timed_out=False, log_tail=tail, duration_s=0.1, executor="fake")

    hub.add_bundle(train_bundle)
    _agent(settings, hub, fake_executor(crash)).process_job(job_for(researcher, train_bundle))

    failure = hub.results["job-1"].failure
    assert failure is not None
    assert failure.exit_code == 3
    assert "exited with code 3" in failure.reason
    assert "ValueError: bad pixel data" in failure.reason
    assert "1.2.840" not in failure.reason
    assert "[uid]" in failure.reason


def test_log_filter_redacts_patient_ids() -> None:
    tail = filter_log_tail("patient PAT-0042 done\n" * 50, lambda word: word == "PAT-0042", max_lines=3)
    assert tail.splitlines() == ["patient [patient-id] done"] * 3


def test_results_are_sealed_for_each_co_recipient_too(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    colleague = protocol.generate_key_pair()
    job = job_for(researcher, train_bundle)
    manifest = job.signed_manifest.manifest.model_copy(
        update={"co_recipients": (protocol.Recipient(name="lena", encryption_public_key=colleague.encryption_public),)}
    )
    job = job.model_copy(update={"signed_manifest": protocol.sign_manifest(manifest, researcher.signing)})
    hub.add_bundle(train_bundle)

    _agent(settings, hub, fake_executor()).process_job(job)

    envelope = hub.results["job-1"]
    (box,) = envelope.sealed_for
    assert envelope.sealed is not None
    mine = ResultPayload.model_validate_json(protocol.open_sealed(envelope.sealed, researcher.encryption))
    theirs = ResultPayload.model_validate_json(protocol.open_sealed(box, colleague.encryption))
    assert mine == theirs
    protocol.verify_envelope(envelope, state.load_keys().signing_public)  # the station signed both boxes


def test_an_image_only_in_a_registry_is_refused_unless_the_station_pulls(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
) -> None:
    executor = fake_executor()
    executor._engine = lambda: None  # a Docker-like executor: images matter
    job = job_for(researcher, train_bundle)
    ref = "registry.example/trains/cohort@sha256:" + "c" * 64
    manifest = job.signed_manifest.manifest.model_copy(update={"image_digest": "sha256:" + "a" * 64, "image_ref": ref})
    job = job.model_copy(update={"signed_manifest": protocol.sign_manifest(manifest, researcher.signing)})
    hub.add_bundle(train_bundle)

    _agent(settings, hub, executor).process_job(job)

    failure = hub.results["job-1"].failure
    assert failure is not None
    assert "this station pulls no images from registries" in failure.reason
    assert executor.specs == []


@pytest.mark.parametrize(("pull", "with_ref"), [(True, True), (False, True), (True, False)])
def test_a_kubernetes_station_runs_only_the_signed_registry_digest(
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
    pull: bool,
    with_ref: bool,
) -> None:
    executor = fake_executor()
    executor.name = "kubernetes"
    ref = "registry.example/trains/cohort@sha256:" + "c" * 64
    job = job_for(researcher, train_bundle)
    update: dict[str, Any] = {"image_digest": "sha256:" + "a" * 64, "image_ref": ref if with_ref else None}
    manifest = job.signed_manifest.manifest.model_copy(update=update)
    job = job.model_copy(update={"signed_manifest": protocol.sign_manifest(manifest, researcher.signing)})
    settings = StationSettings(state_dir=state.root, poll_wait_s=0, executor="sandbox", registry_pull=pull)
    hub.add_bundle(train_bundle)

    _agent(settings, hub, executor).process_job(job)

    if pull and with_ref:
        assert executor.specs[0].image == ref
        assert hub.results["job-1"].status == JobStatus.SUCCEEDED
    else:
        failure = hub.results["job-1"].failure
        assert failure is not None and "runs train images from a registry by digest" in failure.reason
        assert executor.specs == []
