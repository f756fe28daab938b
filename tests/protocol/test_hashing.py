from pathlib import Path

import pytest

from protocol import (
    ContentHashError,
    ProtocolError,
    canonical_json,
    content_address,
    content_address_for_file,
    is_content_address,
    verify_content_address,
)


def test_content_address_matches_file_address(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (3 << 20))

    assert content_address_for_file(path) == content_address(b"x" * (3 << 20))


def test_verify_content_address_mismatch() -> None:
    with pytest.raises(ContentHashError, match="does not match"):
        verify_content_address(b"a", content_address(b"b"))


@pytest.mark.parametrize("address", ["", "sha256:", "md5:" + "0" * 64, "sha256:" + "G" * 64, "sha256:" + "0" * 63])
def test_verify_content_address_malformed(address: str) -> None:
    assert not is_content_address(address)
    with pytest.raises(ContentHashError, match="malformed"):
        verify_content_address(b"a", address)


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1}) == b'{"a":[1,2],"b":1}'


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ProtocolError):
        canonical_json({"x": float("nan")})
