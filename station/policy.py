"""The station's train-acceptance policy: allow-lists its operator keeps, checked on every job.

``policy.json`` in the state folder lists the train bundles (content addresses), image digests,
researcher keys (key ids) and projects this station accepts. An empty list allows any; a
non-empty one allows only what it names. It is the station's second gate after the steward's
grant: a steward approves *who may use the data*, the operator approves *which code runs here*.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from protocol import Job, PolicyError, key_id_for_public_key

from .state import write_private_file

__all__ = [
    "GATE_MODES",
    "AcceptancePolicy",
    "check_acceptance",
    "check_resources",
    "code_approved",
    "policy_file",
    "read_policy",
    "write_policy",
]


GATE_MODES = ("auto", "manual")


@dataclass
class AcceptancePolicy:
    """Allow-lists (an empty list allows everything of its kind) and how the code and release gates
    decide: ``auto``, or ``manual`` (the operator's queue, ``station/approvals.py``)."""

    bundles: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    researcher_keys: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    code_gate: str = "auto"
    release_gate: str = "auto"

    @classmethod
    def kinds(cls) -> list[str]:
        """The names of the lists."""
        return [item.name for item in fields(cls) if not item.name.endswith("_gate")]

    @classmethod
    def gates(cls) -> list[str]:
        """The names of the gates (``code``, ``release``)."""
        return [item.name.removesuffix("_gate") for item in fields(cls) if item.name.endswith("_gate")]


def code_approved(job: Job, policy: AcceptancePolicy) -> bool:
    """Whether the job's train bundle (and image, when it has one) is on the allow-lists by name."""
    manifest = job.signed_manifest.manifest
    return manifest.bundle_hash in policy.bundles and (
        manifest.image_digest is None or manifest.image_digest in policy.images
    )


def policy_file(state_dir: Path) -> Path:
    """Where the policy lives."""
    return state_dir / "policy.json"


def read_policy(state_dir: Path) -> AcceptancePolicy:
    """The station's policy (allow-all when there is no file).

    Raises
    ------
    PolicyError
        When the file is not a policy, naming the file.
    """
    path = policy_file(state_dir)
    if not path.is_file():
        return AcceptancePolicy()
    try:
        document = json.loads(path.read_text("utf-8"))
        gates = document.get("gates", {})
        policy = AcceptancePolicy()
        for kind in AcceptancePolicy.kinds():
            setattr(policy, kind, [str(item) for item in document.get(kind, [])])
        for gate in AcceptancePolicy.gates():
            setattr(policy, f"{gate}_gate", str(gates.get(gate, "auto")))
    except (ValueError, TypeError, AttributeError) as exc:
        raise PolicyError(f"{path} is not a train-acceptance policy ({exc}); fix or remove it") from exc
    for gate in AcceptancePolicy.gates():
        if getattr(policy, f"{gate}_gate") not in GATE_MODES:
            raise PolicyError(
                f"{path}: the {gate} gate must be auto or manual, not {getattr(policy, f'{gate}_gate')!r}"
            )
    return policy


def write_policy(state_dir: Path, policy: AcceptancePolicy) -> None:
    """Store the policy (mode 0600)."""
    document: dict[str, object] = {kind: sorted(set(getattr(policy, kind))) for kind in AcceptancePolicy.kinds()}
    document["gates"] = {gate: getattr(policy, f"{gate}_gate") for gate in AcceptancePolicy.gates()}
    write_private_file(policy_file(state_dir), json.dumps(document, indent=2).encode("utf-8"))


def check_acceptance(job: Job, policy: AcceptancePolicy) -> None:
    """Refuse a job the policy does not allow, saying which list it is missing from.

    Raises
    ------
    PolicyError
        Naming the train bundle, image, researcher key or project that is not allowed.
    """
    manifest = job.signed_manifest.manifest
    key_id = key_id_for_public_key(manifest.signing_public_key)
    checks = [
        ("researcher_keys", key_id, f"researcher {manifest.researcher!r}'s key {key_id}"),
        ("projects", manifest.project_id, f"project {manifest.project_id!r}"),
    ]
    if policy.code_gate != "manual":  # under a manual code gate, unlisted code waits for the operator
        checks.insert(0, ("bundles", manifest.bundle_hash, f"the train bundle {manifest.bundle_hash}"))
    for kind, value, what in checks:
        allowed = getattr(policy, kind)
        if allowed and value not in allowed:
            raise PolicyError(f"{what} is not on this station's allow-list of {kind.replace('_', ' ')}")
    if (
        policy.code_gate != "manual"
        and policy.images
        and manifest.image_digest is not None
        and manifest.image_digest not in policy.images
    ):
        raise PolicyError(f"the train image {manifest.image_digest} is not on this station's allow-list of images")


def check_resources(job: Job, *, cpus: float, memory_mb: float, timeout_s: float, gpus: int) -> None:
    """Refuse a job whose ``train.toml`` asks more than this station gives one job.

    Raises
    ------
    PolicyError
        Naming the resource, what the train asks and what the station allows.
    """
    asked = job.signed_manifest.manifest.resources
    caps = (
        ("cpu", cpus, "CPUs"),
        ("memory_mb", memory_mb, "MB of memory"),
        ("time_s", timeout_s, "seconds of run time"),
        ("gpu", float(gpus), "GPUs"),
    )
    for key, cap, unit in caps:
        if key in asked and asked[key] > cap:
            raise PolicyError(
                f"resource cap: the train asks {asked[key]:g} {unit}; this station allows at most {cap:g}"
            )
