import json
import threading
from pathlib import Path

from protocol import AuditProblemKind
from station.audit import append_audit, audit_head_file, read_audit, read_audit_head, verify_audit_log


def test_append_audit_chains_entries(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"

    append_audit(path, "job.received", job_id="j1")
    append_audit(path, "job.refused", job_id="j1", reason="bad signature")

    entries = read_audit(path)
    assert [(e.seq, e.action, e.subject) for e in entries] == [(1, "job.received", "j1"), (2, "job.refused", "j1")]
    assert entries[1].prev == entries[0].hash
    assert entries[1].details["reason"] == "bad signature"
    assert read_audit_head(path) is not None and read_audit_head(path).seq == 2  # type: ignore[union-attr]
    assert verify_audit_log(path).ok
    assert path.stat().st_mode & 0o777 == 0o600


def test_verify_audit_log_detects_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    for n in range(3):
        append_audit(path, "job.run", job_id=f"j{n}")
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["subject"] = "other"
    lines[1] = json.dumps(edited, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")

    result = verify_audit_log(path)

    assert [(p.kind, p.seq) for p in result.problems] == [(AuditProblemKind.EDITED, 2)]


def test_verify_audit_log_detects_a_cut_off_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    for n in range(3):
        append_audit(path, "job.run", job_id=f"j{n}")
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")

    assert [p.kind for p in verify_audit_log(path).problems] == [AuditProblemKind.TRUNCATED]
    assert audit_head_file(path).name == "audit.head"


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"

    def write(worker: int) -> None:
        for n in range(20):
            append_audit(path, "job.run", job_id=f"w{worker}-{n}")

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    result = verify_audit_log(path)
    assert result.ok, result.problems
    assert result.entries == 80


def test_station_audit_cli_verifies_and_exports(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from station.cli import app
    from station.state import StationState

    state = tmp_path / "station"
    log = StationState(state).audit_file
    for n in range(3):
        append_audit(log, "job.run", job_id=f"j{n}")
    runner = CliRunner()

    intact = runner.invoke(app, ["audit", "verify", "--state", str(state)])
    exported = runner.invoke(app, ["audit", "export", "--state", str(state), "--format", "prov"])
    log.write_text("\n".join(log.read_text().splitlines()[:2]) + "\n")
    broken = runner.invoke(app, ["audit", "verify", "--state", str(state)])

    assert intact.exit_code == 0 and "intact (3 entries" in intact.output
    assert exported.exit_code == 0 and exported.output.count("a prov:Activity") == 3
    assert broken.exit_code == 1 and "truncated" in broken.output
