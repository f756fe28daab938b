"""The station's side of secure aggregation: what it reveals, what it refuses, what it keeps on disk."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from protocol import (
    FederatedPlan,
    Job,
    KeyPair,
    RoundSpec,
    SecAggAdvert,
    SecAggMember,
    SecAggRoster,
    SecAggSurvivors,
    SignedManifest,
    TrainKind,
    generate_key_pair,
)
from station.secagg import SecAggRefused, _Protocol, _Session, forget_round, reveal_for, secagg_state_file

SENDERS = ["a/ct", "b/ct", "c/ct", "d/ct"]
RECEIVED = {member: {"s": f"5{i}", "b": f"b{i}"} for i, member in enumerate(SENDERS)}


def _reveal(survivors: list[str], dropped: list[str], *, earlier: list[str] | None = None) -> object:
    return reveal_for(
        SecAggSurvivors(survivors=tuple(survivors), dropped=tuple(dropped)),
        senders=SENDERS,
        me="a/ct",
        threshold=3,
        received=RECEIVED,
        earlier=earlier,
    )


def test_reveal_gives_self_mask_shares_of_survivors_and_key_shares_of_the_dropped() -> None:
    reveal = _reveal(["a/ct", "b/ct", "c/ct"], ["d/ct"])

    assert reveal.self_mask_shares == {"a/ct": "b0", "b/ct": "b1", "c/ct": "b2"}  # type: ignore[attr-defined]
    assert reveal.key_shares == {"d/ct": "53"}  # type: ignore[attr-defined]


def test_a_hub_asking_for_both_shares_of_one_station_is_refused() -> None:
    with pytest.raises(SecAggRefused, match=r"both shares of d/ct"):
        _reveal(["a/ct", "b/ct", "c/ct", "d/ct"], ["d/ct"])


def test_a_hub_asking_again_with_other_survivors_is_refused() -> None:
    first = ["a/ct", "b/ct", "c/ct", "d/ct"]
    assert _reveal(first, [], earlier=first)  # the same question again (a restart) is answered alike

    with pytest.raises(SecAggRefused, match="asked again with other survivors"):
        _reveal(["a/ct", "b/ct", "c/ct"], ["d/ct"], earlier=first)


@pytest.mark.parametrize(
    ("survivors", "dropped", "message"),
    [
        (["a/ct", "b/ct"], ["c/ct", "d/ct"], "fewer than the threshold"),
        (["b/ct", "c/ct", "d/ct"], ["a/ct"], "not us"),
        (["a/ct", "b/ct", "c/ct"], [], "not the members that shared"),
        (["a/ct", "b/ct", "c/ct", "x/ct"], ["d/ct"], "not the members that shared"),
    ],
)
def test_reveal_refuses_survivors_that_do_not_add_up(survivors: list[str], dropped: list[str], message: str) -> None:
    with pytest.raises(SecAggRefused, match=message):
        _reveal(survivors, dropped)


def test_round_secrets_are_private_and_survive_a_restart(tmp_path: Path) -> None:
    path = secagg_state_file(tmp_path, "job/1")
    first = _Session.load(path)

    again = _Session.load(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert again.values == first.values
    assert again.key("s").public_key().public_bytes_raw() == first.key("s").public_key().public_bytes_raw()
    forget_round(tmp_path, "job/1")
    assert not path.exists()


def test_a_roster_with_a_member_the_signed_train_does_not_name_is_refused(
    researcher: KeyPair, job_for: Callable[..., Job], tmp_path: Path
) -> None:
    base = job_for(researcher, b"bundle")
    manifest = base.signed_manifest.manifest.model_copy(
        update={"kind": TrainKind.FEDERATED, "federated": FederatedPlan(secagg=True)}
    )
    job = base.model_copy(
        update={
            "round": RoundSpec(number=1),
            "signed_manifest": SignedManifest(manifest=manifest, signature=base.signed_manifest.signature),
        }
    )
    keys = generate_key_pair()

    def member(participant: str) -> SecAggMember:
        advert = SecAggAdvert(
            participant=participant,
            c_public=keys.encryption_public,
            s_public=keys.encryption_public,
            num_examples=10,
            signature="00",
        )
        return SecAggMember(advert=advert, station=participant.split("/")[0], station_signing_key=keys.signing_public)

    me = f"{job.station}/{job.collection}"
    roster = SecAggRoster(train_id=job.train_id, round=1, threshold=2, members=(member(me), member("invented/ct")))
    protocol_run = _Protocol(
        client=httpx.Client(),
        job=job,
        keys=keys,
        session=_Session.load(secagg_state_file(tmp_path, job.job_id)),
        wait_s=1,
        poll_s=0.1,
        sleep=lambda _: None,
    )

    with pytest.raises(SecAggRefused, match="invented/ct, which the signed train does not name"):
        protocol_run._check_roster(roster)
