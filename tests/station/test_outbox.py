from datetime import UTC, datetime
from pathlib import Path

from protocol import JobFailure, JobStatus, ResultEnvelope
from station.outbox import Outbox, file_name_for_job


def _envelope(job_id: str) -> ResultEnvelope:
    return ResultEnvelope(
        job_id=job_id,
        train_id="t",
        station="s",
        status=JobStatus.FAILED,
        failure=JobFailure(reason="r"),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        signature="sig",
    )


def test_outbox_put_pending_remove(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)

    outbox.put(_envelope("a"))
    outbox.put(_envelope("b"))

    assert [e.job_id for e in outbox.pending()] == ["a", "b"]
    assert outbox.has("a")
    outbox.remove("a")
    assert [e.job_id for e in outbox.pending()] == ["b"]


def test_outbox_skips_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text("{")
    outbox = Outbox(tmp_path)
    outbox.put(_envelope("a"))

    assert [e.job_id for e in outbox.pending()] == ["a"]


def test_file_name_for_job_unsafe_ids() -> None:
    for job_id in ("../x", "a/b", "..", "", "x" * 300):
        name = file_name_for_job(job_id)
        assert "/" not in name and name not in {".", ".."}
        assert name.startswith("job-")
