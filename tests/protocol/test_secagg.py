"""Secure aggregation's pure parts: Shamir sharing, masks, fixed point, the masks cancelling in a sum."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import (
    DecryptionError,
    ProtocolError,
    agree_seed,
    decrypt_share,
    dequantise,
    encrypt_share,
    mask_from_seed,
    mask_update,
    public_key_text,
    quantise,
    raw_private_key,
    reconstruct_secret,
    scale_for,
    split_secret,
    threshold_for,
    unmask_sum,
)

CONTEXT = b"train-1|round-1"


def test_any_threshold_of_shares_rebuilds_the_secret() -> None:
    secret = bytes(range(32))
    shares = split_secret(secret, threshold=3, count=5)

    for chosen in ((1, 2, 3), (2, 4, 5), (1, 3, 5), (1, 2, 3, 4, 5)):
        assert reconstruct_secret({x: shares[x - 1] for x in chosen}) == secret


def test_fewer_shares_than_the_threshold_tell_nothing() -> None:
    secret = bytes(range(32))
    shares = split_secret(secret, threshold=3, count=5)

    with pytest.raises(ProtocolError, match="too few"):
        reconstruct_secret({1: shares[0], 2: shares[1]})


@pytest.mark.parametrize(("threshold", "count"), [(1, 3), (4, 3)])
def test_split_refuses_impossible_thresholds(threshold: int, count: int) -> None:
    with pytest.raises(ProtocolError, match="not possible"):
        split_secret(b"x" * 32, threshold=threshold, count=count)


@pytest.mark.parametrize(("count", "expected"), [(2, 2), (3, 2), (4, 3), (6, 4), (10, 7)])
def test_threshold_is_two_thirds_and_at_least_two(count: int, expected: int) -> None:
    assert threshold_for(count) == expected
    assert threshold_for(count, min_stations=count) == count


def test_mask_is_deterministic_per_seed_and_uniform() -> None:
    first, again, other = (
        mask_from_seed(b"a" * 32, 100_000),
        mask_from_seed(b"a" * 32, 100_000),
        mask_from_seed(b"b" * 32, 100_000),
    )

    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert abs(first.astype(np.float64).mean() / 2**32 - 0.5) < 0.01


def test_both_ends_agree_on_a_pair_seed_and_share_keys() -> None:
    u, v = X25519PrivateKey.generate(), X25519PrivateKey.generate()

    assert agree_seed(u, public_key_text(v), context=CONTEXT) == agree_seed(v, public_key_text(u), context=CONTEXT)
    assert agree_seed(u, public_key_text(v), context=CONTEXT) != agree_seed(u, public_key_text(v), context=b"other")
    key = agree_seed(u, public_key_text(v), context=CONTEXT, purpose="share")
    box = encrypt_share({"b": "1"}, key=key, context=CONTEXT, sender="u", recipient="v")
    assert decrypt_share(box, key=agree_seed(v, public_key_text(u), context=CONTEXT, purpose="share"), context=CONTEXT)
    with pytest.raises(DecryptionError, match="does not open"):
        decrypt_share(box.model_copy(update={"recipient": "w"}), key=key, context=CONTEXT)


def test_quantisation_round_trips_within_half_a_unit_and_clips() -> None:
    values = np.array([-100.0, -1.5, 0.0, 1e-6, 2.25, 100.0])
    scale = scale_for(64.0, 4)

    back = dequantise(quantise(values, weight=1.0, scale=scale, clip=64.0), scale=scale)

    assert np.allclose(back, np.clip(values, -64, 64), atol=1 / scale)


def test_scale_leaves_room_for_every_member() -> None:
    scale = scale_for(64.0, 1000)
    worst = 64.0 * scale + 1000 / 2
    assert worst < 2**31
    assert scale >= 2**24


def _members(n: int) -> tuple[list[str], dict[str, X25519PrivateKey], dict[str, bytes]]:
    names = [f"site-{chr(97 + i)}/ct" for i in range(n)]
    keys = {name: X25519PrivateKey.generate() for name in names}
    seeds = {name: bytes(np.random.default_rng(i).bytes(32)) for i, name in enumerate(names)}
    return names, keys, seeds


def _masked(
    names: list[str], keys: dict[str, X25519PrivateKey], seeds: dict[str, bytes], plain: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    scale = scale_for(64.0, len(names))
    out = {}
    for name in names:
        pairs = {
            peer: agree_seed(keys[name], public_key_text(keys[peer]), context=CONTEXT) for peer in names if peer != name
        }
        fixed = quantise(plain[name], weight=1 / len(names), scale=scale, clip=64.0)
        out[name] = mask_update(fixed, self_seed=seeds[name], pair_seeds=pairs, me=name)
    return out


def test_masks_cancel_in_the_sum_of_all_members() -> None:
    names, keys, seeds = _members(4)
    rng = np.random.default_rng(1)
    plain = {name: rng.normal(size=500) for name in names}
    masked = _masked(names, keys, seeds, plain)

    total = np.zeros(500, dtype=np.uint32)
    for name in names:
        total += masked[name]
    clean = unmask_sum(total, self_seeds=[seeds[n] for n in names], dropped_pairs=[])

    expected = sum(plain.values()) / 4
    assert np.allclose(dequantise(clean, scale=scale_for(64.0, 4)), expected, atol=1e-6)


def test_a_dropped_members_masks_come_off_with_its_rebuilt_key() -> None:
    names, keys, seeds = _members(4)
    rng = np.random.default_rng(2)
    plain = {name: rng.normal(size=500) for name in names}
    masked = _masked(names, keys, seeds, plain)
    survivors, dropped = names[:3], names[3]
    shares = split_secret(raw_private_key(keys[dropped]), threshold=3, count=4)
    rebuilt = X25519PrivateKey.from_private_bytes(reconstruct_secret({1: shares[0], 2: shares[1], 3: shares[2]}))

    total = np.zeros(500, dtype=np.uint32)
    for name in survivors:
        total += masked[name]
    pairs = [(s, dropped, agree_seed(rebuilt, public_key_text(keys[s]), context=CONTEXT)) for s in survivors]
    clean = unmask_sum(total, self_seeds=[seeds[n] for n in survivors], dropped_pairs=pairs)

    expected = sum(plain[n] for n in survivors) / 4
    assert np.allclose(dequantise(clean, scale=scale_for(64.0, 4)), expected, atol=1e-6)


def test_one_masked_update_alone_is_unrelated_to_its_plain_update() -> None:
    names, keys, seeds = _members(4)
    plain = {name: np.linspace(-1, 1, 10_000) for name in names}
    masked = _masked(names, keys, seeds, plain)

    alone = dequantise(masked[names[0]], scale=scale_for(64.0, 4))

    assert abs(np.corrcoef(alone, plain[names[0]])[0, 1]) < 0.05
    assert np.abs(alone).mean() > 10  # decoding it gives values spread over the whole range, not the update
