"""The steward keys this station's operator trusts, and the check of a job's grants against them.

The operator adds each data steward's Ed25519 public key (``trainyard station stewards add``);
the list lives in ``stewards.json`` in the state directory, never at the hub. A job runs only
with a grant that one of these keys signed for exactly this station, collection, project and
researcher key, inside its period. So a compromised hub can neither forge an approval nor
reuse one for another project or another researcher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from protocol import (
    REMOTE_PROCESSING,
    Grant,
    Job,
    PolicyError,
    ProtocolError,
    SignatureError,
    key_id_for_public_key,
    public_key_from_text,
    utc_now,
    verify_grant,
)

from .state import write_private_file

__all__ = ["StewardKey", "add_steward", "check_job_grants", "read_stewards", "remove_steward", "stewards_file"]


@dataclass(frozen=True)
class StewardKey:
    """A steward the operator trusts: their hub username and Ed25519 public key."""

    name: str
    signing_public_key: str
    added_at: str

    @property
    def key_id(self) -> str:
        """The key's id, as grants name it."""
        return key_id_for_public_key(self.signing_public_key)


def stewards_file(state_dir: Path) -> Path:
    """Where the trusted steward keys of a station are kept."""
    return state_dir / "stewards.json"


def read_stewards(state_dir: Path) -> list[StewardKey]:
    """Return the trusted steward keys (none when the file is absent).

    Raises
    ------
    PolicyError
        When the file exists but is not a steward list (say where to fix it).
    """
    path = stewards_file(state_dir)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text("utf-8"))["stewards"]
        return [StewardKey(**entry) for entry in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise PolicyError(f"{path} is not a steward list ({exc}); fix it or re-add the stewards") from exc


def _write(state_dir: Path, stewards: list[StewardKey]) -> None:
    document = {"stewards": [steward.__dict__ for steward in sorted(stewards, key=lambda s: (s.name, s.key_id))]}
    write_private_file(stewards_file(state_dir), json.dumps(document, indent=2).encode("utf-8"))


def add_steward(state_dir: Path, name: str, signing_public_key: str) -> StewardKey:
    """Trust ``signing_public_key`` as steward ``name``; adding the same key again changes nothing.

    Raises
    ------
    ProtocolError
        When the key is not an Ed25519 public key in base64url.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not name.strip():
        raise ProtocolError("a steward needs a name (their username at the hub)")
    public_key_from_text(signing_public_key, Ed25519PublicKey)
    stewards = read_stewards(state_dir)
    for steward in stewards:
        if steward.name == name and steward.signing_public_key == signing_public_key:
            return steward
    added = StewardKey(name=name, signing_public_key=signing_public_key, added_at=utc_now().isoformat())
    _write(state_dir, [*stewards, added])
    return added


def remove_steward(state_dir: Path, name: str) -> int:
    """Stop trusting every key of steward ``name``; return how many were removed."""
    stewards = read_stewards(state_dir)
    kept = [steward for steward in stewards if steward.name != name]
    if len(kept) != len(stewards):
        _write(state_dir, kept)
    return len(stewards) - len(kept)


def check_job_grants(job: Job, *, station: str, stewards: list[StewardKey], now: datetime | None = None) -> Grant:
    """Return the grant that allows ``job`` here, or refuse with the reason.

    A grant counts when a trusted steward key signed it, and it names this station and the
    job's collection, the manifest's project, researcher and researcher key, the action
    remote processing, and a period that holds ``now``.

    Raises
    ------
    PolicyError
        Saying why no grant allows the job.
    """
    if not stewards:
        raise PolicyError(
            "this station trusts no steward key yet, so no grant can be checked: "
            "add one with 'trainyard station stewards add NAME --key PUBLIC_KEY'"
        )
    manifest = job.signed_manifest.manifest
    at = now or utc_now()
    by_key = {steward.key_id: steward for steward in stewards}
    researcher_key_id = key_id_for_public_key(manifest.signing_public_key)
    reasons: list[str] = []
    for signed in job.grants:
        grant = signed.grant
        steward = by_key.get(grant.steward_key_id)
        if steward is None or steward.name != grant.steward:
            reasons.append(f"grant {grant.grant_id} is signed by {grant.steward!r}, not a steward this station trusts")
            continue
        try:
            verify_grant(signed, steward.signing_public_key)
        except SignatureError as exc:
            reasons.append(f"grant {grant.grant_id} does not verify with steward {steward.name!r}'s key: {exc}")
            continue
        mismatches = [
            label
            for label, ok in (
                (f"station {grant.station!r}", grant.station == station),
                (f"collection {grant.collection!r}", grant.collection == job.collection),
                (f"project {grant.project_id!r}", grant.project_id == manifest.project_id),
                (f"researcher {grant.researcher!r}", grant.researcher == manifest.researcher),
                ("another researcher key", grant.researcher_key_id == researcher_key_id),
                (f"action {grant.allowed_action!r}", grant.allowed_action == REMOTE_PROCESSING),
            )
            if not ok
        ]
        if mismatches:
            reasons.append(f"grant {grant.grant_id} is for {', '.join(mismatches)}")
            continue
        if not grant.not_before <= at < grant.not_after:
            reasons.append(f"grant {grant.grant_id} is valid from {grant.not_before} to {grant.not_after}, not now")
            continue
        return grant
    if not reasons:
        raise PolicyError(
            f"no steward of this station granted project {manifest.project_id!r} access to collection "
            f"{job.collection!r}: the job carries no grant"
        )
    raise PolicyError("no valid grant for this job: " + "; ".join(reasons))
