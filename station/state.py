"""The station's state directory and what lives in it.

::

    <state_dir>/
      station.json            name, hub URL, station id, API token (mode 0600, never logged)
      keys/                   signing.pem, encryption.pem (protocol.save_key_pair)
      pseudonym.key           per-station HMAC secret for patient pseudonyms (mode 0600)
      index.sqlite            the DICOM index (station.indexer)
      collections/<slug>.json one harvested collection: title, description, root, summary
      work/<job_id>/          one job: job message, train bundle, job.json, outputs
      outbox/<job_id>.json    signed result envelopes not yet accepted by the hub
      audit.log               hash-chained JSON lines of every decision (station.audit)
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import protocol
from protocol import KeyPair

__all__ = ["CollectionRecord", "StationIdentity", "StationState", "write_private_file"]


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True, kw_only=True)
class StationIdentity:
    """Who this station is at its hub; the API token never appears in ``repr``."""

    name: str
    hub_url: str
    station_id: str
    api_token: str

    def __repr__(self) -> str:
        return f"StationIdentity(name={self.name!r}, hub_url={self.hub_url!r}, station_id={self.station_id!r})"


@dataclass(frozen=True, kw_only=True)
class CollectionRecord:
    """One harvested collection as the station remembers it."""

    slug: str
    title: str
    description: str
    root: str
    indexed_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    """The ``collection.toml`` metadata (``CollectionMetadata`` as JSON) published with it."""

    def to_json(self) -> dict[str, Any]:
        """Return the record as JSON-ready data."""
        data = asdict(self)
        data["indexed_at"] = self.indexed_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CollectionRecord:
        """Build a record from :meth:`to_json` data."""
        return cls(
            slug=str(data["slug"]),
            title=str(data["title"]),
            description=str(data.get("description", "")),
            root=str(data["root"]),
            indexed_at=datetime.fromisoformat(str(data["indexed_at"])),
            metadata=dict(data.get("metadata") or {}),
        )


class StationState:
    """Paths and small stores of one station's state directory.

    Parameters
    ----------
    root
        The state directory; created (mode 0700) by :meth:`ensure`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"StationState(root={str(self.root)!r})"

    @property
    def identity_file(self) -> Path:
        """``station.json``."""
        return self.root / "station.json"

    @property
    def keys_dir(self) -> Path:
        """``keys/``."""
        return self.root / "keys"

    @property
    def pseudonym_key_file(self) -> Path:
        """``pseudonym.key``."""
        return self.root / "pseudonym.key"

    @property
    def index_file(self) -> Path:
        """``index.sqlite``."""
        return self.root / "index.sqlite"

    @property
    def collections_dir(self) -> Path:
        """``collections/``."""
        return self.root / "collections"

    @property
    def work_dir(self) -> Path:
        """``work/``."""
        return self.root / "work"

    @property
    def outbox_dir(self) -> Path:
        """``outbox/``."""
        return self.root / "outbox"

    @property
    def audit_file(self) -> Path:
        """``audit.log``."""
        return self.root / "audit.log"

    def ensure(self) -> None:
        """Create the state directory and its folders."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for folder in (self.collections_dir, self.work_dir, self.outbox_dir):
            folder.mkdir(exist_ok=True)

    def write_identity(self, identity: StationIdentity) -> None:
        """Write ``station.json`` with mode 0600."""
        self.ensure()
        data = {
            "name": identity.name,
            "hub_url": identity.hub_url,
            "station_id": identity.station_id,
            "api_token": identity.api_token,
        }
        write_private_file(self.identity_file, json.dumps(data, indent=2).encode("utf-8"))

    def read_identity(self) -> StationIdentity:
        """Read ``station.json``.

        Raises
        ------
        FileNotFoundError
            When the station has not enrolled yet.
        """
        if not self.identity_file.is_file():
            raise FileNotFoundError(f"{self.identity_file} is missing: enrol the station first")
        data = json.loads(self.identity_file.read_text("utf-8"))
        return StationIdentity(
            name=str(data["name"]),
            hub_url=str(data["hub_url"]),
            station_id=str(data["station_id"]),
            api_token=str(data["api_token"]),
        )

    def load_or_create_keys(self) -> KeyPair:
        """Load the station's key pair, creating it on first use."""
        if (self.keys_dir / "signing.pem").is_file():
            return protocol.load_key_pair(self.keys_dir)
        keys = protocol.generate_key_pair()
        protocol.save_key_pair(keys, self.keys_dir)
        return keys

    def load_keys(self) -> KeyPair:
        """Load the station's key pair; raise ProtocolError when absent."""
        return protocol.load_key_pair(self.keys_dir)

    def load_or_create_pseudonym_key(self) -> bytes:
        """Return the per-station pseudonymisation secret, creating it on first use."""
        if self.pseudonym_key_file.is_file():
            return bytes.fromhex(self.pseudonym_key_file.read_text("ascii").strip())
        secret = secrets.token_bytes(32)
        write_private_file(self.pseudonym_key_file, secret.hex().encode("ascii"))
        return secret

    def collection_file(self, slug: str) -> Path:
        """``collections/<slug>.json``."""
        return self.collections_dir / f"{slug}.json"

    def write_collection(self, record: CollectionRecord) -> None:
        """Remember one harvested collection."""
        self.ensure()
        write_private_file(self.collection_file(record.slug), json.dumps(record.to_json(), indent=2).encode("utf-8"))

    def read_collection(self, slug: str) -> CollectionRecord | None:
        """Return the record of one collection, or None when it was never harvested."""
        path = self.collection_file(slug)
        if not path.is_file():
            return None
        return CollectionRecord.from_json(json.loads(path.read_text("utf-8")))

    def list_collections(self) -> list[CollectionRecord]:
        """Return every harvested collection, sorted by slug."""
        if not self.collections_dir.is_dir():
            return []
        paths = sorted(self.collections_dir.glob("*.json"))
        return [CollectionRecord.from_json(json.loads(p.read_text("utf-8"))) for p in paths]
