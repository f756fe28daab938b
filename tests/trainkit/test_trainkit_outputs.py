"""The output writer: declared plain names only, atomic writes, strict JSON."""

import json
import os
from pathlib import Path

import pytest

from trainkit import OutputWriter, TrainkitError


@pytest.fixture()
def writer(tmp_path: Path) -> OutputWriter:
    return OutputWriter(tmp_path, ["cohort.json", "notes.txt", "blob.bin"])


def test_write_json_sorted_and_readable(writer: OutputWriter, tmp_path: Path) -> None:
    path = writer.write_json("cohort.json", {"b": 1, "a": [1, 2], "c": None})
    assert path == tmp_path / "cohort.json"
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1, "c": None}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')


def test_write_json_converts_numpy_values(writer: OutputWriter) -> None:
    np = pytest.importorskip("numpy")
    path = writer.write_json("cohort.json", {"mean": np.float64(1.5), "n": np.int64(3), "v": np.arange(3)})
    assert json.loads(path.read_text()) == {"mean": 1.5, "n": 3, "v": [0, 1, 2]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"x": [1.0, float("-inf")]}])
def test_write_json_refuses_non_finite(writer: OutputWriter, tmp_path: Path, value: object) -> None:
    with pytest.raises(TrainkitError, match="not valid JSON"):
        writer.write_json("cohort.json", value)
    assert list(tmp_path.iterdir()) == []


def test_write_json_refuses_unserialisable(writer: OutputWriter) -> None:
    with pytest.raises(TrainkitError, match="not valid JSON"):
        writer.write_json("cohort.json", {"x": object()})


def test_write_text_and_bytes(writer: OutputWriter, tmp_path: Path) -> None:
    writer.write_text("notes.txt", "héllo\n")
    writer.write_bytes("blob.bin", b"\x00\x01")
    assert (tmp_path / "notes.txt").read_bytes() == "héllo\n".encode()
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "blob.bin").stat().st_mode & 0o777 == 0o644


def test_write_replaces_atomically_and_leaves_no_temporary_files(writer: OutputWriter, tmp_path: Path) -> None:
    writer.write_text("notes.txt", "first")
    writer.write_text("notes.txt", "second")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "second"


@pytest.mark.parametrize("name", ["undeclared.json", "cohort.JSON"])
def test_write_undeclared_output(writer: OutputWriter, name: str) -> None:
    with pytest.raises(TrainkitError, match="not declared"):
        writer.write_text(name, "x")


@pytest.mark.parametrize("name", ["../cohort.json", "/etc/passwd", "sub/cohort.json", ".hidden", "", "a b", ".."])
def test_write_not_a_plain_file_name(tmp_path: Path, name: str) -> None:
    writer = OutputWriter(tmp_path, [name])
    with pytest.raises(TrainkitError, match="plain file name"):
        writer.write_text(name, "x")


def test_write_wrong_payload_types(writer: OutputWriter) -> None:
    with pytest.raises(TrainkitError, match="needs bytes"):
        writer.write_bytes("blob.bin", "text")  # type: ignore[arg-type]
    with pytest.raises(TrainkitError, match="needs str"):
        writer.write_text("notes.txt", b"bytes")  # type: ignore[arg-type]


def test_write_missing_out_dir(tmp_path: Path) -> None:
    writer = OutputWriter(tmp_path / "missing", ["a.json"])
    with pytest.raises(TrainkitError, match="does not exist"):
        writer.write_json("a.json", {})


def test_write_read_only_out_dir(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(TrainkitError, match="cannot write"):
            OutputWriter(tmp_path, ["a.json"]).write_json("a.json", {})
    finally:
        tmp_path.chmod(0o755)
