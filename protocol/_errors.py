"""The one error tree shared by hub, stations, trains and the client.

::

    TrainyardError
     ├── ProtocolError          a message does not follow the contract
     │    └── ContentHashError  bytes do not match their content address
     ├── SignatureError         a signature is missing, malformed or does not verify
     ├── DecryptionError        a sealed envelope cannot be opened (wrong key or tampered)
     └── PolicyError            a rule refuses the action (access, disclosure, acceptance)

Callers catch at any level; every error carries a message a person can act on.
"""

from __future__ import annotations

__all__ = [
    "ContentHashError",
    "DecryptionError",
    "PolicyError",
    "ProtocolError",
    "SignatureError",
    "TrainyardError",
]


class TrainyardError(Exception):
    """Base of every error Trainyard raises on purpose."""


class ProtocolError(TrainyardError):
    """A message or artifact does not follow the shared contract."""


class ContentHashError(ProtocolError):
    """Bytes do not match the content address they were announced under."""


class SignatureError(TrainyardError):
    """A signature is missing, malformed, or does not verify against the key."""


class DecryptionError(TrainyardError):
    """A sealed envelope cannot be opened: wrong recipient key, or tampered."""


class PolicyError(TrainyardError):
    """A rule refuses the action: access, acceptance or disclosure policy."""
