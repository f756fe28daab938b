"""Key rotation: the old pair is retired, results sealed for it stay readable."""

from pathlib import Path

import pytest

from client._keyring import Keyring, encryption_key_id
from protocol import ProtocolError, generate_key_pair, open_sealed, save_key_pair, seal


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


def test_keys_are_encrypted_on_disk(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "keys", passphrase=b"correct horse")
    keyring.create()

    for name in ("signing.pem", "encryption.pem"):
        assert (keyring.directory / name).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert keyring.is_protected()
    assert keyring.directory.stat().st_mode & 0o777 == 0o700


def test_wrong_passphrase_fails_clearly(tmp_path: Path) -> None:
    Keyring(tmp_path / "keys", passphrase=b"correct horse").create()

    with pytest.raises(ProtocolError, match="wrong passphrase"):
        Keyring(tmp_path / "keys", passphrase=b"battery staple").current()


def test_missing_passphrase_fails_clearly(tmp_path: Path) -> None:
    Keyring(tmp_path / "keys", passphrase=b"correct horse").create()

    with pytest.raises(ProtocolError, match="passphrase-protected"):
        Keyring(tmp_path / "keys").current()


def test_passphrase_is_asked_once_when_needed(tmp_path: Path) -> None:
    keys = Keyring(tmp_path / "keys", passphrase=b"correct horse").create()
    asked: list[int] = []

    def ask() -> bytes:
        asked.append(1)
        return b"correct horse"

    keyring = Keyring(tmp_path / "keys", ask_passphrase=ask)
    keyring.rotate()

    assert [pair.key_id for pair in keyring.all_pairs()][1] == keys.key_id
    assert asked == [1]


def test_old_unencrypted_keyring_loads_with_a_warning(tmp_path: Path) -> None:
    old = generate_key_pair()
    save_key_pair(old, tmp_path / "keys")
    warnings: list[str] = []

    keyring = Keyring(tmp_path / "keys", passphrase=b"correct horse", warn=warnings.append)

    assert keyring.current().key_id == old.key_id
    assert keyring.current().key_id == old.key_id
    assert len(warnings) == 1 and "not protected by a passphrase" in warnings[0]
    assert not keyring.is_protected()


def test_rotating_an_old_keyring_keeps_its_results_and_encrypts_it(tmp_path: Path) -> None:
    old = generate_key_pair()
    save_key_pair(old, tmp_path / "keys")
    box = seal(b"counts from before", old.encryption_public, associated_data="job-0")
    keyring = Keyring(tmp_path / "keys", passphrase=b"correct horse", warn=lambda _: None)

    keyring.rotate()

    reopened = Keyring(tmp_path / "keys", passphrase=b"correct horse")
    assert reopened.is_protected()
    retired = reopened.retired_dir / encryption_key_id(old) / "encryption.pem"
    assert retired.read_bytes().startswith(b"-----BEGIN ENCRYPTED")
    assert open_sealed(box, reopened.for_recipient(box.recipient_key_id).encryption) == b"counts from before"


def test_protect_encrypts_current_and_retired_pairs(tmp_path: Path) -> None:
    plain = Keyring(tmp_path / "keys", warn=lambda _: None)
    plain.create()
    plain.rotate()

    count = Keyring(tmp_path / "keys", passphrase=b"correct horse", warn=lambda _: None).protect()

    assert count == 2
    with pytest.raises(ProtocolError, match="passphrase-protected"):
        Keyring(tmp_path / "keys").all_pairs()
    assert len(Keyring(tmp_path / "keys", passphrase=b"correct horse").all_pairs()) == 2
