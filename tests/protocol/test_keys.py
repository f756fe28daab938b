from pathlib import Path

import pytest

from protocol import ProtocolError, b64decode, b64encode, generate_key_pair, load_key_pair, save_key_pair


def test_save_and_load_key_pair_round_trip(tmp_path: Path) -> None:
    keys = generate_key_pair()

    save_key_pair(keys, tmp_path, passphrase=b"correct horse")
    loaded = load_key_pair(tmp_path, passphrase=b"correct horse")

    assert loaded.signing_public == keys.signing_public
    assert loaded.encryption_public == keys.encryption_public
    assert (tmp_path / "signing.pem").stat().st_mode & 0o777 == 0o600


def test_load_key_pair_wrong_passphrase(tmp_path: Path) -> None:
    save_key_pair(generate_key_pair(), tmp_path, passphrase=b"right")

    with pytest.raises(ProtocolError, match="cannot load"):
        load_key_pair(tmp_path, passphrase=b"wrong")


def test_load_key_pair_missing(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="missing"):
        load_key_pair(tmp_path)


def test_key_pair_repr_hides_private_keys() -> None:
    keys = generate_key_pair()

    assert "PRIVATE" not in repr(keys) and keys.key_id in repr(keys)


def test_b64_round_trip_and_malformed() -> None:
    assert b64decode(b64encode(b"\x00\xff" * 7)) == b"\x00\xff" * 7
    with pytest.raises(ProtocolError):
        b64decode("a")
