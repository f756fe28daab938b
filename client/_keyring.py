"""A person's keys on their own machine: the current pair, and the retired ones kept for old results.

``DIR/signing.pem`` and ``DIR/encryption.pem`` are the current pair, PKCS#8 PEM encrypted with
the owner's passphrase (cryptography's best available encryption); rotating re-writes the
current pair into ``DIR/retired/<encryption key id>/`` and writes a fresh pair. Results sealed for
a retired key stay decryptable: :meth:`Keyring.for_recipient` finds the pair a sealed box names.
Keyrings written before passphrases existed (unencrypted PEM) still load, with a warning, until
:meth:`Keyring.protect` encrypts them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import KeyPair, ProtocolError, generate_key_pair, key_id_for_public_key, save_key_pair

__all__ = ["Keyring", "encryption_key_id"]

_log = logging.getLogger(__name__)
_NAMES = ("signing.pem", "encryption.pem")
UNPROTECTED_WARNING = (
    "the keys in {folder} are not protected by a passphrase (an older keyring): "
    "run 'trainyard keys protect' to encrypt them"
)


def encryption_key_id(keys: KeyPair) -> str:
    """The id a sealed box names as its recipient for ``keys``."""
    return key_id_for_public_key(keys.encryption_public)


def _is_encrypted(pem: bytes) -> bool:
    return pem.lstrip().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def _warn_log(message: str) -> None:
    _log.warning(message)


class Keyring:
    """The key folder of one person; private keys never leave it.

    Parameters
    ----------
    directory
        The folder (``~/.config/trainyard/keys`` by default in the CLI).
    passphrase
        Encrypts every PEM file written here and opens the encrypted ones read here.
    ask_passphrase
        Called (once) for the passphrase when an encrypted key is read and none was given,
        e.g. a ``getpass`` prompt; without it such a read fails with a clear error.
    warn
        Told (once per folder) when an unencrypted older keyring is loaded; logs by default.

    Examples
    --------
    >>> keyring = Keyring(Path("keys"), passphrase=b"correct horse")  # doctest: +SKIP
    >>> old, new = keyring.rotate()  # doctest: +SKIP
    >>> keyring.for_recipient(box.recipient_key_id)  # old results stay readable  # doctest: +SKIP
    """

    def __init__(
        self,
        directory: Path,
        *,
        passphrase: bytes | None = None,
        ask_passphrase: Callable[[], bytes] | None = None,
        warn: Callable[[str], None] = _warn_log,
    ) -> None:
        self.directory = directory
        self._passphrase = passphrase
        self._ask = ask_passphrase
        self._warn = warn
        self._warned: set[Path] = set()

    def __repr__(self) -> str:
        return f"Keyring(directory={str(self.directory)!r})"

    @property
    def retired_dir(self) -> Path:
        """Where rotated-out pairs are kept."""
        return self.directory / "retired"

    def exists(self) -> bool:
        """Tell whether a current pair is present."""
        return (self.directory / "signing.pem").is_file()

    def is_protected(self) -> bool:
        """Tell whether the current pair is encrypted with a passphrase."""
        return _is_encrypted((self.directory / "signing.pem").read_bytes())

    def _resolved_passphrase(self) -> bytes | None:
        if self._passphrase is None and self._ask is not None:
            self._passphrase = self._ask()
        return self._passphrase

    def _load(self, folder: Path) -> KeyPair:
        try:
            pems = [(folder / name).read_bytes() for name in _NAMES]
        except FileNotFoundError as exc:
            raise ProtocolError(f"no key pair in {folder}: {exc.filename} is missing") from exc
        if all(_is_encrypted(pem) for pem in pems):
            passphrase = self._resolved_passphrase()
            if not passphrase:
                raise ProtocolError(
                    f"the keys in {folder} are passphrase-protected: give the passphrase "
                    "(TRAINYARD_KEY_PASSPHRASE, --passphrase-file or the prompt)"
                )
        else:
            passphrase = None
            if folder not in self._warned:
                self._warned.add(folder)
                self._warn(UNPROTECTED_WARNING.format(folder=folder))
        try:
            signing, encryption = (serialization.load_pem_private_key(pem, passphrase) for pem in pems)
        except ValueError as exc:
            reason = "wrong passphrase or damaged key files" if passphrase else str(exc)
            raise ProtocolError(f"cannot open the keys in {folder}: {reason}") from exc
        except TypeError as exc:  # one file encrypted, the other not
            raise ProtocolError(f"cannot open the keys in {folder}: {exc}") from exc
        if not isinstance(signing, Ed25519PrivateKey) or not isinstance(encryption, X25519PrivateKey):
            raise ProtocolError(f"the key pair in {folder} is not Ed25519 + X25519")
        return KeyPair(signing=signing, encryption=encryption)

    def _save(self, keys: KeyPair, folder: Path) -> None:
        save_key_pair(keys, folder, passphrase=self._resolved_passphrase())
        folder.chmod(0o700)

    def current(self) -> KeyPair:
        """The current pair (raise ProtocolError when absent, unreadable or the passphrase is wrong)."""
        return self._load(self.directory)

    def create(self) -> KeyPair:
        """Write a first pair; refuse when one exists."""
        if self.exists():
            raise ProtocolError(f"{self.directory} already holds keys; rotate them instead")
        keys = generate_key_pair()
        self._save(keys, self.directory)
        return keys

    def rotate(self) -> tuple[KeyPair, KeyPair]:
        """Retire the current pair (kept, so its results stay readable) and write a fresh one.

        Returns
        -------
        tuple of KeyPair
            ``(retired, new)``.
        """
        old = self.current()
        self._save(old, self.retired_dir / encryption_key_id(old))
        keys = generate_key_pair()
        self._save(keys, self.directory)
        return old, keys

    def retired_folders(self) -> list[Path]:
        """The folders of the retired pairs, in name order."""
        if not self.retired_dir.is_dir():
            return []
        return [folder for folder in sorted(self.retired_dir.iterdir()) if (folder / "encryption.pem").is_file()]

    def all_pairs(self) -> list[KeyPair]:
        """The current pair first, then every retired one."""
        return [self.current(), *(self._load(folder) for folder in self.retired_folders())]

    def protect(self) -> int:
        """Encrypt the current and retired pairs with this keyring's passphrase; return how many.

        Raises
        ------
        ProtocolError
            When no passphrase was given (nothing to encrypt with).
        """
        pairs = [(self.directory, self.current())] + [(folder, self._load(folder)) for folder in self.retired_folders()]
        if not self._resolved_passphrase():
            raise ProtocolError("protecting keys needs a passphrase")
        for folder, keys in pairs:
            self._save(keys, folder)
        return len(pairs)

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
