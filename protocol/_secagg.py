"""Secure aggregation: pairwise-masked updates so the hub learns only their (weighted) sum.

Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017,
https://eprint.iacr.org/2017/281. Per round each participant ``u`` makes two X25519 key pairs
(``c``: encrypts the shares it sends, ``s``: agrees the pairwise mask seeds) and a self-mask seed
``b``. The protocol, relayed by the hub (stations never connect to each other):

1. **keys**: ``u`` sends ``c_pk``, ``s_pk`` and its example count, signed with its Ed25519 key; the
   hub publishes the roster U1.
2. **shares**: ``u`` Shamir-splits ``s_sk`` and ``b`` (threshold ``t``) over the prime 2^521 - 1
   and sends each other member its two shares, AES-GCM encrypted under their ``c`` agreement; the
   hub publishes U2 (who shared) with the total example count W over U2.
3. **masked**: ``u`` sends ``y = q(w_u / W * x_u) + PRG(b_u) + sum_v ±PRG(s_uv)`` over U2 in the ring
   Z_2^32 (``+`` when ``u`` sorts before ``v``); pairwise masks of two senders cancel in the sum.
4. **unmask**: for the survivors U3 (who sent ``y``) each survivor reveals its share of ``b_v``;
   for the dropped U2 \\ U3 its share of ``s_sk_v`` — never both for one ``v``. The hub rebuilds
   the seeds from ``t`` shares, removes the masks and reads the fixed-point sum.

Everything here is pure: the station and the hub call the same functions.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from ._errors import DecryptionError, ProtocolError
from ._hashing import canonical_json
from ._keys import b64decode, b64encode, public_key_from_text
from ._schemas import ModelUpdateRef, PublicKey

__all__ = [
    "SECAGG_PRIME",
    "SecAggAdvert",
    "SecAggMember",
    "SecAggMeta",
    "SecAggPhase",
    "SecAggReveal",
    "SecAggRoster",
    "SecAggShare",
    "SecAggShares",
    "SecAggSharesFor",
    "SecAggSurvivors",
    "SecAggUpload",
    "advert_bytes",
    "agree_seed",
    "decrypt_share",
    "dequantise",
    "encrypt_share",
    "mask_from_seed",
    "mask_update",
    "public_key_text",
    "quantise",
    "raw_private_key",
    "reconstruct_secret",
    "scale_for",
    "split_secret",
    "threshold_for",
    "unmask_sum",
]

SECAGG_PRIME = 2**521 - 1
"""The Mersenne prime of the Shamir field: a 32-byte seed is one element."""

_RING = 1 << 32
_INFO_MASK = b"trainyard/secagg/mask/v1"
_INFO_SHARE = b"trainyard/secagg/share/v1"
_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw


class SecAggMeta(StrEnum):
    """Keys of a masked update's safetensors metadata (beside ``update_kind = secagg``)."""

    BASE = "secagg_base"
    """``delta``: the masked values are the change from the round's global model; ``weights``: the weights."""
    DTYPES = "secagg_dtypes"
    """JSON of each tensor's original dtype (``F32``, ``I64``, ...)."""


class SecAggPhase:
    """Names of the protocol's steps in the hub's station routes."""

    KEYS = "keys"
    ROSTER = "roster"
    SHARES = "shares"
    MASKED = "masked"
    SURVIVORS = "survivors"
    UNMASK = "unmask"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecAggAdvert(_Message):
    """Step 1: a participant's round keys and example count, signed by its station."""

    participant: str = Field(min_length=1, max_length=200)
    c_public: PublicKey
    s_public: PublicKey
    num_examples: int = Field(ge=1)
    signature: str


class SecAggMember(_Message):
    """One member of the roster U1, with the station signing key the advert verifies under."""

    advert: SecAggAdvert
    station: str
    station_signing_key: PublicKey


class SecAggRoster(_Message):
    """What the hub publishes after step 1: U1, in the order that fixes each member's share index."""

    train_id: str
    round: int = Field(ge=1)
    threshold: int = Field(ge=2)
    members: tuple[SecAggMember, ...]


class SecAggShare(_Message):
    """Step 2: the shares of ``sender``'s secrets for ``recipient``, encrypted for them."""

    sender: str
    recipient: str
    nonce: str
    ciphertext: str


class SecAggShares(_Message):
    """Step 2 upload: one encrypted share per other member of U1."""

    shares: tuple[SecAggShare, ...]


class SecAggSharesFor(_Message):
    """What the hub publishes after step 2: U2, its total example count, the shares for the caller."""

    senders: tuple[str, ...]
    total_examples: int = Field(ge=1)
    shares: tuple[SecAggShare, ...]


class SecAggUpload(_Message):
    """Step 3: the masked update (uploaded before as an artifact)."""

    update: ModelUpdateRef


class SecAggSurvivors(_Message):
    """What the hub publishes after step 3: who sent a masked update (U3) and who dropped."""

    survivors: tuple[str, ...]
    dropped: tuple[str, ...]


class SecAggReveal(_Message):
    """Step 4: the caller's shares of the survivors' self-mask seeds and the dropped members' keys."""

    self_mask_shares: dict[str, str] = Field(default_factory=dict)
    key_shares: dict[str, str] = Field(default_factory=dict)


def threshold_for(count: int, min_stations: int = 1) -> int:
    """Shares needed to rebuild a secret among ``count`` members: ⌈2n/3⌉, the plan's minimum, at least 2.

    More than half of the members is what stops a hub from collecting both kinds of share of one
    member from different halves of the roster.
    """
    if count < 2:
        raise ProtocolError("secure aggregation needs at least 2 participants")
    return min(count, max(2, math.ceil(2 * count / 3), min_stations))


def advert_bytes(
    *, train_id: str, round_number: int, participant: str, c_public: str, s_public: str, num_examples: int
) -> bytes:
    """The canonical bytes a station signs to advertise its round keys."""
    return canonical_json(
        {
            "purpose": "trainyard/secagg/advert/v1",
            "train_id": train_id,
            "round": round_number,
            "participant": participant,
            "c_public": c_public,
            "s_public": s_public,
            "num_examples": num_examples,
        }
    )


# -- Shamir secret sharing over GF(2^521 - 1) -------------------------------------------------


def split_secret(secret: bytes, *, threshold: int, count: int) -> list[int]:
    """Split a secret of at most 64 bytes into ``count`` shares; any ``threshold`` rebuild it.

    The share for member ``i`` (1-based) is the random degree ``threshold - 1`` polynomial with
    the secret as constant term, evaluated at ``x = i``.

    Examples
    --------
    >>> shares = split_secret(b"seed", threshold=2, count=3)
    >>> reconstruct_secret({1: shares[0], 3: shares[2]}, size=4)
    b'seed'
    """
    if not 2 <= threshold <= count:
        raise ProtocolError(f"a threshold of {threshold} among {count} shares is not possible")
    if len(secret) > 64:
        raise ProtocolError("a secret of more than 64 bytes does not fit the field")
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(SECAGG_PRIME) for _ in range(threshold - 1)]
    shares = []
    for x in range(1, count + 1):
        value = 0
        for coefficient in reversed(coefficients):  # Horner
            value = (value * x + coefficient) % SECAGG_PRIME
        shares.append(value)
    return shares


def reconstruct_secret(shares: Mapping[int, int], *, size: int = 32) -> bytes:
    """Rebuild a secret from shares ``{x: y}`` (at least the threshold of them) by Lagrange at 0.

    Raises
    ------
    ProtocolError
        When no shares are given, an ``x`` is 0 or the result does not fit ``size`` bytes (too few or
        inconsistent shares).
    """
    if not shares:
        raise ProtocolError("no shares to rebuild the secret from")
    if any(x <= 0 for x in shares):
        raise ProtocolError("share indices start at 1")
    total = 0
    for xi, yi in shares.items():
        numerator, denominator = 1, 1
        for xj in shares:
            if xj != xi:
                numerator = numerator * (-xj) % SECAGG_PRIME
                denominator = denominator * (xi - xj) % SECAGG_PRIME
        total = (total + yi * numerator * pow(denominator, -1, SECAGG_PRIME)) % SECAGG_PRIME
    if total >= 1 << (8 * size):
        raise ProtocolError("the shares do not rebuild a secret: too few of them, or they disagree")
    return total.to_bytes(size, "big")


# -- keys, seeds and the encrypted shares ------------------------------------------------------


def agree_seed(private: X25519PrivateKey, peer_public: str, *, context: bytes, purpose: str = "mask") -> bytes:
    """A 32-byte seed both ends of an X25519 pair derive alike (HKDF-SHA256 bound to ``context``)."""
    peer = public_key_from_text(peer_public, X25519PublicKey)
    assert isinstance(peer, X25519PublicKey)
    info = _INFO_MASK if purpose == "mask" else _INFO_SHARE
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=context, info=info).derive(private.exchange(peer))


def _share_aad(context: bytes, sender: str, recipient: str) -> bytes:
    return canonical_json({"context": b64encode(context), "sender": sender, "recipient": recipient})


def encrypt_share(plaintext: dict[str, Any], *, key: bytes, context: bytes, sender: str, recipient: str) -> SecAggShare:
    """Encrypt one member's shares for another (AES-256-GCM, sender and recipient bound in the tag)."""
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, canonical_json(plaintext), _share_aad(context, sender, recipient))
    return SecAggShare(sender=sender, recipient=recipient, nonce=b64encode(nonce), ciphertext=b64encode(ciphertext))


def decrypt_share(share: SecAggShare, *, key: bytes, context: bytes) -> dict[str, Any]:
    """Open a share addressed to the caller.

    Raises
    ------
    DecryptionError
        When it was not encrypted with this key, or any field of it was changed.
    """
    try:
        plain = AESGCM(key).decrypt(
            b64decode(share.nonce),
            b64decode(share.ciphertext),
            _share_aad(context, share.sender, share.recipient),
        )
        value = json.loads(plain)
    except (InvalidTag, ValueError, ProtocolError) as exc:
        raise DecryptionError(f"the share from {share.sender!r} does not open: it was changed or is not ours") from exc
    if not isinstance(value, dict):
        raise DecryptionError(f"the share from {share.sender!r} is not an object")
    return value


def mask_from_seed(seed: bytes, length: int) -> NDArray[np.uint32]:
    """The pseudo-random mask of ``length`` ring elements a 32-byte seed expands to (ChaCha20 keystream)."""
    if len(seed) != 32:
        raise ProtocolError("a mask seed is 32 bytes")
    encryptor = Cipher(algorithms.ChaCha20(seed, b"\x00" * 16), mode=None).encryptor()
    stream = encryptor.update(b"\x00" * (4 * length))
    return np.frombuffer(stream, dtype="<u4").astype(np.uint32)


# -- fixed point in Z_2^32 ---------------------------------------------------------------------


def scale_for(clip: float, count: int) -> float:
    """The fixed-point scale (a power of two) so a weighted sum of ``count`` clipped values cannot overflow.

    The weights sum to at most 1, so the sum is bounded by ``clip``; each member's rounding adds at most
    half a unit, hence ``clip * scale + count / 2 < 2^31``.
    """
    if clip <= 0 or count < 1:
        raise ProtocolError("secure aggregation needs a positive clip bound and at least one member")
    return float(2.0 ** math.floor(math.log2((2**31 - 1 - count) / clip)))


def quantise(values: NDArray[np.floating[Any]], *, weight: float, scale: float, clip: float) -> NDArray[np.uint32]:
    """``round(weight * clip(values) * scale)`` as elements of Z_2^32 (two's complement)."""
    clipped = np.clip(values.astype(np.float64), -clip, clip)
    fixed = np.rint(clipped * (weight * scale)).astype(np.int64)
    return (fixed % _RING).astype(np.uint32)


def dequantise(total: NDArray[np.uint32], *, scale: float) -> NDArray[np.float64]:
    """Read a ring sum back as signed fixed point."""
    signed = total.astype(np.int64)
    signed[signed >= 1 << 31] -= _RING
    return signed.astype(np.float64) / scale


def mask_update(
    fixed: NDArray[np.uint32], *, self_seed: bytes, pair_seeds: Mapping[str, bytes], me: str
) -> NDArray[np.uint32]:
    """``y = x + PRG(b) + sum(+PRG(s_uv) for v after me, -PRG(s_uv) for v before me)`` in Z_2^32."""
    masked = fixed.astype(np.uint32).copy()
    masked += mask_from_seed(self_seed, len(masked))
    for peer, seed in pair_seeds.items():
        if peer == me:
            continue
        mask = mask_from_seed(seed, len(masked))
        if me < peer:
            masked += mask
        else:
            masked -= mask
    return masked


def unmask_sum(
    total: NDArray[np.uint32],
    *,
    self_seeds: Sequence[bytes],
    dropped_pairs: Sequence[tuple[str, str, bytes]],
) -> NDArray[np.uint32]:
    """Remove the survivors' self masks and the masks they shared with dropped members from a ring sum.

    ``dropped_pairs`` holds ``(survivor, dropped, seed)`` for every survivor and dropped member of U2.
    """
    out = total.astype(np.uint32).copy()
    for seed in self_seeds:
        out -= mask_from_seed(seed, len(out))
    for survivor, dropped, seed in dropped_pairs:
        mask = mask_from_seed(seed, len(out))
        if survivor < dropped:
            out -= mask
        else:
            out += mask
    return out


def raw_private_key(key: X25519PrivateKey) -> bytes:
    """The raw 32 bytes of an X25519 private key (to share or keep on disk)."""
    return key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def public_key_text(key: X25519PrivateKey) -> str:
    """The base64url public key of an X25519 private key."""
    return b64encode(key.public_key().public_bytes(_RAW, _RAW_PUB))
