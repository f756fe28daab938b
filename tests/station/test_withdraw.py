"""GDPR withdrawal: a subject leaves the index, every later harvest and every train's view of the data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from typer.testing import CliRunner

from conftest import COLLECTION, FakeExecutor
from protocol import Job, KeyPair
from station.agent import StationAgent
from station.cli import app
from station.config import StationSettings
from station.executors import RunSpec
from station.indexer import WITHDRAWN_REASON, DicomIndex, index_collection
from station.state import StationState
from station.summary import summarise_collection


def _files_of(root: Path, patient_id: str) -> set[Path]:
    return {
        path
        for path in root.rglob("*")
        if path.is_file() and str(dcmread(path, stop_before_pixels=True).PatientID) == patient_id
    }


def test_withdraw_removes_the_subject_everywhere(
    settings: StationSettings,
    state: StationState,
    synthetic_root: Path,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
) -> None:
    patient_id = str(dcmread(next(synthetic_root.rglob("*.dcm")), stop_before_pixels=True).PatientID)
    theirs = _files_of(synthetic_root, patient_id)
    with DicomIndex(state.index_file) as index:
        before = summarise_collection(index, collection=COLLECTION, k=5)
    version_before = state.read_collection(COLLECTION).indexed_at  # type: ignore[union-attr]

    withdrawn = CliRunner().invoke(app, ["withdraw", patient_id, "--state", str(state.root), "--no-publish"])

    assert state.read_collection(COLLECTION).indexed_at > version_before  # type: ignore[union-attr]

    secret = state.load_or_create_pseudonym_key()
    with DicomIndex(state.index_file) as index:
        after = summarise_collection(index, collection=COLLECTION, k=5)
        again = index_collection(synthetic_root, index, collection=COLLECTION, secret=secret)
        rows = {str(row[0]) for row in index.connection.execute("SELECT path FROM instance")}
    assert withdrawn.exit_code == 0, withdrawn.output
    assert f"withdrew {len(theirs)} instance(s) from {COLLECTION}" in withdrawn.output
    assert patient_id not in withdrawn.output and patient_id not in state.audit_file.read_text()
    assert before.subjects is not None and after.subjects == before.subjects - 1
    assert not rows & {str(path) for path in theirs}
    assert {skipped.path for skipped in again.skipped if skipped.reason == WITHDRAWN_REASON} == theirs

    seen: list[set[str]] = []

    def look(spec: RunSpec) -> None:
        seen.append({str(path.relative_to(spec.data_dir)) for path in spec.data_dir.rglob("*") if path.is_file()})
        (spec.out_dir / "result.json").write_text('{"ok": true}', encoding="utf-8")

    hub.add_bundle(train_bundle)
    agent = StationAgent(settings, client=hub.client(), executor=FakeExecutor(look), retry_delays=(0.0,))
    agent.process_job(job_for(researcher, train_bundle))

    everyone = {str(path.relative_to(synthetic_root)) for path in synthetic_root.rglob("*") if path.is_file()}
    assert seen == [everyone - {str(path.relative_to(synthetic_root)) for path in theirs}]


def test_withdraw_without_an_index_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["withdraw", "P1", "--state", str(tmp_path / "none")])

    assert result.exit_code == 1 and "no index yet" in " ".join(result.output.split())
