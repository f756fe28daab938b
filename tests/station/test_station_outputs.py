import json
import struct
from pathlib import Path

import pytest

from protocol import OutputSpec, PolicyError, b64decode
from station.outputs import check_output_type, collect_outputs


def _safetensors(header: dict[str, object], payload: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


def test_collect_outputs_declared_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"n": 1}')
    (tmp_path / "b.csv").write_text("x,y\n1,2\n")

    actual = collect_outputs(tmp_path, (OutputSpec(name="a.json"), OutputSpec(name="b.csv", type="csv")), max_bytes=100)

    assert b64decode(actual["a.json"]) == b'{"n": 1}'
    assert set(actual) == {"a.json", "b.csv"}


def test_collect_outputs_refuses_folder(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "a.json.d").mkdir()

    with pytest.raises(PolicyError, match=r"undeclared output 'a\.json\.d'"):
        collect_outputs(tmp_path, (OutputSpec(name="a.json"),), max_bytes=100)


def test_collect_outputs_refuses_symlink(tmp_path: Path) -> None:
    (tmp_path / "a.json").symlink_to("/etc/passwd")

    with pytest.raises(PolicyError, match="not a regular file"):
        collect_outputs(tmp_path, (OutputSpec(name="a.json"),), max_bytes=10_000)


def test_collect_outputs_size_cap(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(list(range(100))))

    with pytest.raises(PolicyError, match="larger than the station's limit"):
        collect_outputs(tmp_path, (OutputSpec(name="a.json"),), max_bytes=50)


def test_check_output_type_safetensors() -> None:
    check_output_type(
        "m.safetensors",
        _safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        "safetensors",
    )

    with pytest.raises(PolicyError, match="not safetensors"):
        check_output_type("m.safetensors", b"\x80\x04\x95" + b"\0" * 20, "safetensors")


def test_check_output_type_text_must_be_utf8() -> None:
    with pytest.raises(PolicyError, match="not UTF-8"):
        check_output_type("log.txt", b"\xff\xfe", "text")


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        ({"w": 5}, b"", "is not described by an object"),
        ({"w": {"dtype": "F32", "shape": ["x"], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
        ({"w": {"dtype": "PICKLE", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}}, b"\0" * 4, "outside the file"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "outside the file"),
        ({"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, "outside the file"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "do not match"),
        ({"__metadata__": {"a": 1}}, b"", "__metadata__"),
        ({"__metadata__": ["a"]}, b"", "__metadata__"),
    ],
)
def test_check_output_type_safetensors_header_is_validated(
    header: dict[str, object], body: bytes, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        check_output_type("m.safetensors", _safetensors(header, body), "safetensors")


def test_check_output_type_json_nested_too_deeply() -> None:
    with pytest.raises(PolicyError, match="nests too deeply"):
        check_output_type("a.json", b"[" * 200_000 + b"]" * 200_000, "json")
