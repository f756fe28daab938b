"""A person's keys on their own machine: the current pair, and the retired ones kept for old results.

``DIR/signing.pem`` and ``DIR/encryption.pem`` are the current pair; rotating moves them to
``DIR/retired/<encryption key id>/`` and writes a fresh pair. Results sealed for a retired key
stay decryptable: :meth:`Keyring.for_recipient` finds the pair a sealed box names.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from protocol import KeyPair, ProtocolError, generate_key_pair, key_id_for_public_key, load_key_pair, save_key_pair

__all__ = ["Keyring", "encryption_key_id"]


def encryption_key_id(keys: KeyPair) -> str:
    """The id a sealed box names as its recipient for ``keys``."""
    return key_id_for_public_key(keys.encryption_public)


class Keyring:
    """The key folder of one person; private keys never leave it.

    Parameters
    ----------
    directory
        The folder (``~/.config/trainyard/keys`` by default in the CLI).
    passphrase
        Protects every PEM file written or read here.
    """

    def __init__(self, directory: Path, *, passphrase: bytes | None = None) -> None:
        self.directory = directory
        self._passphrase = passphrase

    def __repr__(self) -> str:
        return f"Keyring(directory={str(self.directory)!r})"

    @property
    def retired_dir(self) -> Path:
        """Where rotated-out pairs are kept."""
        return self.directory / "retired"

    def exists(self) -> bool:
        """Tell whether a current pair is present."""
        return (self.directory / "signing.pem").is_file()

    def current(self) -> KeyPair:
        """The current pair (raise ProtocolError when absent or unreadable)."""
        return load_key_pair(self.directory, passphrase=self._passphrase)

    def create(self) -> KeyPair:
        """Write a first pair; refuse when one exists."""
        if self.exists():
            raise ProtocolError(f"{self.directory} already holds keys; rotate them instead")
        keys = generate_key_pair()
        save_key_pair(keys, self.directory, passphrase=self._passphrase)
        return keys

    def rotate(self) -> tuple[KeyPair, KeyPair]:
        """Retire the current pair and write a fresh one; return (retired, new)."""
        old = self.current()
        target = self.retired_dir / encryption_key_id(old)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("signing.pem", "encryption.pem"):
            shutil.copy2(self.directory / name, target / name)
        keys = generate_key_pair()
        save_key_pair(keys, self.directory, passphrase=self._passphrase)
        return old, keys

    def all_pairs(self) -> list[KeyPair]:
        """The current pair first, then every retired one."""
        pairs = [self.current()]
        if self.retired_dir.is_dir():
            for folder in sorted(self.retired_dir.iterdir()):
                if (folder / "encryption.pem").is_file():
                    pairs.append(load_key_pair(folder, passphrase=self._passphrase))
        return pairs

    def for_recipient(self, recipient_key_id: str) -> KeyPair:
        """The pair whose encryption key a sealed box was made for.

        Raises
        ------
        ProtocolError
            When no current or retired pair matches (the result was sealed for someone else).
        """
        for keys in self.all_pairs():
            if encryption_key_id(keys) == recipient_key_id:
                return keys
        raise ProtocolError(
            f"none of your keys (current or retired in {self.retired_dir}) is recipient {recipient_key_id}"
        )
