"""``trainyard keys init|rotate|protect``: passphrase-protected keys, asked twice or given by a script."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import client.cli
from client._keyring import Keyring
from client.cli import app
from protocol import generate_key_pair, open_sealed, save_key_pair, seal

runner = CliRunner()


def _invoke(home: Path, *args: str, passphrase: str | None = None) -> tuple[int, str]:
    env = {"TRAINYARD_CONFIG_DIR": str(home), "COLUMNS": "250"}
    if passphrase is not None:
        env["TRAINYARD_KEY_PASSPHRASE"] = passphrase
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_keys_init_with_passphrase_file(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("correct horse\n")

    code, output = _invoke(tmp_path, "keys", "init", "--no-register", "--passphrase-file", str(tmp_path / "pass"))

    assert code == 0, output
    assert "passphrase-protected" in output
    keyring = Keyring(tmp_path / "keys", passphrase=b"correct horse")
    assert keyring.is_protected() and keyring.current().key_id in output


def test_keys_init_asks_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["correct horse", "correct horse"])
    monkeypatch.setattr(client.cli, "_is_interactive", lambda: True)
    monkeypatch.setattr(client.cli.getpass, "getpass", lambda prompt: next(answers))

    code, output = _invoke(tmp_path, "keys", "init", "--no-register")

    assert code == 0, output
    assert Keyring(tmp_path / "keys", passphrase=b"correct horse").current().key_id in output


def test_keys_init_passphrases_differ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["correct horse", "battery staple"])
    monkeypatch.setattr(client.cli, "_is_interactive", lambda: True)
    monkeypatch.setattr(client.cli.getpass, "getpass", lambda prompt: next(answers))

    code, output = _invoke(tmp_path, "keys", "init", "--no-register")

    assert code == 2
    assert "differ" in output
    assert not (tmp_path / "keys").exists()


def test_keys_init_without_a_passphrase_in_a_script(tmp_path: Path) -> None:
    code, output = _invoke(tmp_path, "keys", "init", "--no-register")

    assert code == 2
    assert "TRAINYARD_KEY_PASSPHRASE" in output
    assert not (tmp_path / "keys").exists()


def test_keys_init_no_passphrase_on_request(tmp_path: Path) -> None:
    code, output = _invoke(tmp_path, "keys", "init", "--no-register", "--no-passphrase")

    assert code == 0, output
    assert "unencrypted" in output
    assert not Keyring(tmp_path / "keys").is_protected()


def test_keys_rotate_keeps_results_sealed_to_the_old_key(tmp_path: Path) -> None:
    _invoke(tmp_path, "keys", "init", "--no-register", passphrase="correct horse")
    old = Keyring(tmp_path / "keys", passphrase=b"correct horse").current()
    box = seal(b"old counts", old.encryption_public, associated_data="job-1")

    code, output = _invoke(tmp_path, "keys", "rotate", "--no-register", passphrase="correct horse")

    assert code == 0, output
    keyring = Keyring(tmp_path / "keys", passphrase=b"correct horse")
    assert keyring.current().key_id != old.key_id
    assert open_sealed(box, keyring.for_recipient(box.recipient_key_id).encryption) == b"old counts"


def test_keys_rotate_wrong_passphrase_fails_in_one_line(tmp_path: Path) -> None:
    _invoke(tmp_path, "keys", "init", "--no-register", passphrase="correct horse")

    code, output = _invoke(tmp_path, "keys", "rotate", "--no-register", passphrase="battery staple")

    assert code == 1
    assert "wrong passphrase" in output


def test_keys_protect_an_old_keyring(tmp_path: Path) -> None:
    old = generate_key_pair()
    save_key_pair(old, tmp_path / "keys")

    code, output = _invoke(tmp_path, "keys", "protect", passphrase="correct horse")

    assert code == 0, output
    assert "not protected by a passphrase" in output  # the warning while loading
    assert Keyring(tmp_path / "keys", passphrase=b"correct horse").current().key_id == old.key_id
    assert _invoke(tmp_path, "keys", "protect", passphrase="correct horse")[0] == 2
