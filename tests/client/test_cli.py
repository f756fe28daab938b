"""The researcher-side ``trainyard`` commands that need no hub."""

from pathlib import Path

from typer.testing import CliRunner

from client.cli import app
from protocol import AuditEntry, next_audit_entry

runner = CliRunner()


def _export(path: Path, length: int = 4) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for n in range(length):
        entries.append(
            next_audit_entry(entries[-1] if entries else None, actor="rosa", role="researcher", action=f"a.{n}")
        )
    path.write_text("".join(entry.to_json_line() + "\n" for entry in entries))
    return entries


def test_audit_verify_accepts_an_intact_export(tmp_path: Path) -> None:
    entries = _export(tmp_path / "audit.jsonl")

    result = runner.invoke(app, ["audit", "verify", str(tmp_path / "audit.jsonl")])

    assert result.exit_code == 0, result.output
    assert f"head {entries[-1].seq}:{entries[-1].hash}" in result.output.replace("\n", "")


def test_audit_verify_with_a_noted_head_finds_a_cut_off_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    entries = _export(path)
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))

    result = runner.invoke(app, ["audit", "verify", str(path), "--head", f"{entries[-1].seq}:{entries[-1].hash}"])

    assert result.exit_code == 1
    assert "truncated" in result.output


def test_audit_verify_names_a_line_that_is_not_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"seq": 1}\n')

    result = runner.invoke(app, ["audit", "verify", str(path)])

    assert result.exit_code == 1
    assert "audit line 1" in result.output


def test_audit_verify_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", str(tmp_path / "missing.jsonl")])

    assert result.exit_code == 2
    assert "cannot read" in result.output
