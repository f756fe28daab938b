"""The station's side of secure aggregation: what it reveals, what it refuses, what it keeps on disk."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from protocol import SecAggSurvivors
from station.secagg import SecAggRefused, _Session, forget_round, reveal_for, secagg_state_file

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
