"""The access workflow's three state machines and the one table that says who may move them.

An access request spans stations; each station's steward decides on each collection; an approved
decision is a grant. Every move is a row of :data:`TRANSITIONS`: the states it leaves from, the
state it reaches, the roles that may make it, and whether it needs a comment. Routes and the
sweep call :func:`check`; nothing else changes a state, so this table *is* the policy (the
README prints it, and a test walks every row).

``researcher`` means the request's own researcher, ``steward`` a steward of the decision's
station (the routes check both), ``system`` the hub itself (screening, expiry).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "OPEN_DECISIONS",
    "SYSTEM",
    "TRANSITIONS",
    "DecisionState",
    "GrantState",
    "RequestState",
    "Transition",
    "TransitionRefused",
    "check",
    "transition_table_markdown",
]

SYSTEM = "system"


class RequestState(StrEnum):
    """Where an access request stands as a whole."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    SCREENING = "screening"
    RETURNED = "returned"
    REJECTED = "rejected"
    FORWARDED = "forwarded"
    ACTIVE = "active"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class DecisionState(StrEnum):
    """Where one station's decision on one collection stands."""

    PENDING = "pending"
    INFORMATION_REQUESTED = "information_requested"
    CONDITIONS_OFFERED = "conditions_offered"
    APPROVED = "approved"
    DECLINED_BY_APPLICANT = "declined_by_applicant"
    DECLINED = "declined"
    EXPIRED = "expired"


class GrantState(StrEnum):
    """Where a grant (an approved decision) stands."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"


OPEN_DECISIONS = frozenset(
    {DecisionState.PENDING, DecisionState.INFORMATION_REQUESTED, DecisionState.CONDITIONS_OFFERED}
)
_OPEN_REQUESTS = frozenset(
    {
        RequestState.DRAFT,
        RequestState.SUBMITTED,
        RequestState.SCREENING,
        RequestState.RETURNED,
        RequestState.FORWARDED,
        RequestState.ACTIVE,
    }
)


@dataclass(frozen=True)
class Transition:
    """One allowed move: ``action`` on a ``kind`` leaves one of ``sources`` for ``target``."""

    kind: str
    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    needs_comment: bool = False
    description: str = ""


def _t(
    kind: str,
    action: str,
    sources: set[str] | frozenset[str],
    target: str,
    roles: set[str],
    description: str,
    *,
    needs_comment: bool = False,
) -> Transition:
    return Transition(kind, action, frozenset(sources), target, frozenset(roles), needs_comment, description)


_R, _D, _G = RequestState, DecisionState, GrantState
TRANSITIONS: tuple[Transition, ...] = (
    _t("request", "submit", {_R.DRAFT, _R.RETURNED}, _R.SUBMITTED, {"researcher"}, "send the request for screening"),
    _t("request", "screen", {_R.SUBMITTED}, _R.SCREENING, {SYSTEM}, "automatic checks start (DUO, conditions)"),
    _t("request", "forward", {_R.SCREENING}, _R.FORWARDED, {SYSTEM, "admin"}, "checks passed: stewards decide"),
    _t(
        "request",
        "return",
        {_R.SCREENING},
        _R.RETURNED,
        {SYSTEM, "admin"},
        "checks failed: the researcher fixes and resubmits",
        needs_comment=True,
    ),
    _t(
        "request",
        "reject",
        {_R.SUBMITTED, _R.SCREENING, _R.RETURNED},
        _R.REJECTED,
        {"admin"},
        "the hub refuses the request outright",
        needs_comment=True,
    ),
    _t("request", "activate", {_R.FORWARDED}, _R.ACTIVE, {SYSTEM}, "the first station approved"),
    _t("request", "close", {_R.FORWARDED, _R.ACTIVE}, _R.CLOSED, {SYSTEM}, "every station has decided"),
    _t("request", "withdraw", _OPEN_REQUESTS, _R.WITHDRAWN, {"researcher"}, "the researcher withdraws"),
    _t(
        "decision",
        "request_information",
        {_D.PENDING},
        _D.INFORMATION_REQUESTED,
        {"steward"},
        "the steward asks a question",
        needs_comment=True,
    ),
    _t(
        "decision",
        "answer",
        {_D.INFORMATION_REQUESTED},
        _D.PENDING,
        {"researcher"},
        "the researcher answers",
        needs_comment=True,
    ),
    _t(
        "decision",
        "offer_conditions",
        {_D.PENDING, _D.INFORMATION_REQUESTED},
        _D.CONDITIONS_OFFERED,
        {"steward"},
        "the steward offers a signed grant with conditions",
        needs_comment=True,
    ),
    _t(
        "decision",
        "approve",
        {_D.PENDING, _D.INFORMATION_REQUESTED},
        _D.APPROVED,
        {"steward"},
        "the steward approves without conditions",
    ),
    _t("decision", "accept", {_D.CONDITIONS_OFFERED}, _D.APPROVED, {"researcher"}, "the researcher accepts"),
    _t(
        "decision",
        "decline_offer",
        {_D.CONDITIONS_OFFERED},
        _D.DECLINED_BY_APPLICANT,
        {"researcher"},
        "the researcher declines the conditions",
    ),
    _t("decision", "decline", OPEN_DECISIONS, _D.DECLINED, {"steward"}, "the steward declines", needs_comment=True),
    _t("decision", "expire", OPEN_DECISIONS, _D.EXPIRED, {SYSTEM}, "nobody decided in time"),
    _t(
        "decision",
        "withdraw",
        OPEN_DECISIONS,
        _D.DECLINED_BY_APPLICANT,
        {"researcher"},
        "the researcher withdrew the whole request",
    ),
    _t(
        "grant",
        "suspend",
        {_G.ACTIVE},
        _G.SUSPENDED,
        {"steward"},
        "paused: jobs stop, none start",
        needs_comment=True,
    ),
    _t("grant", "resume", {_G.SUSPENDED}, _G.ACTIVE, {"steward"}, "the pause ends"),
    _t(
        "grant",
        "revoke",
        {_G.ACTIVE, _G.SUSPENDED},
        _G.REVOKED,
        {"steward"},
        "for good: jobs stop, none start",
        needs_comment=True,
    ),
    _t("grant", "expire", {_G.ACTIVE, _G.SUSPENDED}, _G.EXPIRED, {SYSTEM}, "the grant's end date passed"),
)
_BY_ACTION = {(row.kind, row.action): row for row in TRANSITIONS}


class TransitionRefused(Exception):
    """A move the table does not allow; ``status_code`` is 403 (who) or 409 (from where) or 400."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def _label(state: str) -> str:
    return state.replace("_", " ")


def check(kind: str, action: str, state: str, role: str, *, comment: str | None = None) -> Transition:
    """Return the row that allows ``role`` to make ``action`` from ``state``, or raise why not."""
    row = _BY_ACTION.get((kind, action))
    if row is None:
        raise TransitionRefused(400, f"a {kind} has no action {action!r}")
    if role not in row.roles:
        who = " or ".join(sorted(row.roles))
        raise TransitionRefused(403, f"only the {who} may {_label(action)} a {kind}, not a {role}")
    if state not in row.sources:
        sources = ", ".join(sorted(_label(source) for source in row.sources))
        raise TransitionRefused(
            409, f"cannot {_label(action)} a {kind} that is {_label(state)}: only one that is {sources}"
        )
    if row.needs_comment and not (comment or "").strip():
        raise TransitionRefused(400, f"to {_label(action)} a {kind}, say why (a comment is required)")
    return row


def transition_table_markdown() -> str:
    """The table as Markdown, for the README and for people."""
    lines = ["| object | action | from | to | who | comment |", "|---|---|---|---|---|---|"]
    for row in TRANSITIONS:
        sources = ", ".join(sorted(row.sources))
        roles = ", ".join(sorted(row.roles))
        lines.append(
            f"| {row.kind} | {row.action} | {sources} | {row.target} | {roles} | "
            f"{'required' if row.needs_comment else ''} |"
        )
    return "\n".join(lines)
