"""Key rotation: the old pair is retired, results sealed for it stay readable."""

from pathlib import Path

import pytest

from client._keyring import Keyring, encryption_key_id
from protocol import ProtocolError, generate_key_pair, open_sealed, seal


def test_create_then_refuse_a_second_create(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "keys", passphrase=b"pw")
    keys = keyring.create()

    assert keyring.current().key_id == keys.key_id
    with pytest.raises(ProtocolError, match="already holds keys"):
        keyring.create()


def test_rotation_keeps_old_results_readable(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "keys", passphrase=b"pw")
    first = keyring.create()
    old_box = seal(b"old counts", first.encryption_public, associated_data="job-1")

    retired, new = keyring.rotate()
    new_box = seal(b"new counts", new.encryption_public, associated_data="job-2")

    assert retired.key_id == first.key_id and new.key_id != first.key_id
    assert keyring.current().key_id == new.key_id
    assert [pair.key_id for pair in keyring.all_pairs()] == [new.key_id, first.key_id]
    assert open_sealed(old_box, keyring.for_recipient(old_box.recipient_key_id).encryption) == b"old counts"
    assert open_sealed(new_box, keyring.for_recipient(new_box.recipient_key_id).encryption) == b"new counts"
    assert (keyring.retired_dir / encryption_key_id(first) / "signing.pem").stat().st_mode & 0o777 == 0o600


def test_box_for_someone_else_names_the_recipient(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "keys")
    keyring.create()
    stranger = seal(b"x", generate_key_pair().encryption_public)

    with pytest.raises(ProtocolError, match=stranger.recipient_key_id):
        keyring.for_recipient(stranger.recipient_key_id)


def test_rotate_without_keys_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="no key pair"):
        Keyring(tmp_path / "keys").rotate()
