"""The role-by-state table: every row allows exactly its roles, from exactly its states."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.governance import (
    SYSTEM,
    TRANSITIONS,
    DecisionState,
    GrantState,
    RequestState,
    Transition,
    TransitionRefused,
    check,
    transition_table_markdown,
)

ROLES = ("researcher", "steward", "admin", SYSTEM)
STATES: dict[str, tuple[str, ...]] = {
    "request": tuple(RequestState),
    "decision": tuple(DecisionState),
    "grant": tuple(GrantState),
}


def _name(row: Transition) -> str:
    return f"{row.kind}.{row.action}"


@pytest.mark.parametrize("row", TRANSITIONS, ids=_name)
def test_row_allows_its_roles_from_its_states(row: Transition) -> None:
    for role in row.roles:
        for source in row.sources:
            assert check(row.kind, row.action, source, role, comment="because") is row


@pytest.mark.parametrize("row", TRANSITIONS, ids=_name)
def test_row_refuses_other_roles_with_403(row: Transition) -> None:
    source = next(iter(row.sources))
    for role in set(ROLES) - row.roles:
        with pytest.raises(TransitionRefused) as refused:
            check(row.kind, row.action, source, role, comment="because")

        assert refused.value.status_code == 403
        assert f"not a {role}" in refused.value.message


@pytest.mark.parametrize("row", TRANSITIONS, ids=_name)
def test_row_refuses_other_states_with_409(row: Transition) -> None:
    role = next(iter(row.roles))
    for state in set(STATES[row.kind]) - row.sources:
        with pytest.raises(TransitionRefused) as refused:
            check(row.kind, row.action, state, role, comment="because")

        assert refused.value.status_code == 409
        assert f"that is {state.replace('_', ' ')}" in refused.value.message


@pytest.mark.parametrize("row", [row for row in TRANSITIONS if row.needs_comment], ids=_name)
@pytest.mark.parametrize("comment", [None, "", "   "])
def test_row_that_needs_a_comment_refuses_none(row: Transition, comment: str | None) -> None:
    with pytest.raises(TransitionRefused) as refused:
        check(row.kind, row.action, next(iter(row.sources)), next(iter(row.roles)), comment=comment)

    assert refused.value.status_code == 400
    assert "say why" in refused.value.message


def test_unknown_action() -> None:
    with pytest.raises(TransitionRefused) as refused:
        check("grant", "extend", GrantState.ACTIVE, "steward")

    assert refused.value.status_code == 400


def test_every_state_is_reachable_and_targets_are_states() -> None:
    for kind, states in STATES.items():
        rows = [row for row in TRANSITIONS if row.kind == kind]
        targets = {row.target for row in rows}
        sources = set().union(*(row.sources for row in rows))

        assert targets <= set(states)
        assert sources <= set(states)
        initial = {RequestState.DRAFT, DecisionState.PENDING, GrantState.ACTIVE}
        assert set(states) - targets <= initial, f"{kind}: unreachable {set(states) - targets - initial}"


def test_final_states_have_no_way_out() -> None:
    final = {
        RequestState.REJECTED,
        RequestState.CLOSED,
        RequestState.WITHDRAWN,
        DecisionState.APPROVED,
        DecisionState.DECLINED,
        DecisionState.DECLINED_BY_APPLICANT,
        DecisionState.EXPIRED,
        GrantState.REVOKED,
        GrantState.EXPIRED,
    }

    leaving = {source for row in TRANSITIONS for source in row.sources}

    assert final & leaving == set()


def test_markdown_table_has_a_line_per_row() -> None:
    lines = transition_table_markdown().splitlines()

    assert lines[0].startswith("| object | action |")
    assert len(lines) == 2 + len(TRANSITIONS)
    assert "| grant | revoke | active, suspended | revoked | steward | required |" in lines


def test_readme_prints_the_table_the_code_enforces() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")

    assert transition_table_markdown() in readme
