import json
from pathlib import Path

from station.audit import append_audit, read_audit, verify_audit_chain


def test_append_audit_chains_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"

    append_audit(path, "job.received", job_id="j1")
    append_audit(path, "job.refused", job_id="j1", reason="bad signature")

    events = read_audit(path)
    assert [e["event"] for e in events] == ["job.received", "job.refused"]
    assert events[0]["prev"] == ""
    assert verify_audit_chain(path)
    assert path.stat().st_mode & 0o777 == 0o600


def test_verify_audit_chain_detects_edit(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    for n in range(3):
        append_audit(path, "job.run", job_id=f"j{n}")
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["job_id"] = "other"
    lines[1] = json.dumps(edited, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")

    assert not verify_audit_chain(path)
