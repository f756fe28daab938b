"""The client's access-workflow calls: what they send, the grants they sign, and the errors they raise."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from client import ClientError, TrainyardClient
from protocol import SignedGrant, generate_key_pair, verify_grant

HMB, MDS = "DUO:0000006", "DUO:0000031"


class _Hub:
    """A mock hub that records every request and answers ``{"id": ...}`` (or a given answer)."""

    def __init__(self, answer: httpx.Response | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answer or httpx.Response(200, json={"id": "x", "data": []})

    def body(self, index: int = -1) -> Any:
        return json.loads(self.seen[index].content or b"null")

    def client(self) -> TrainyardClient:
        return TrainyardClient("http://hub", token="t", transport=httpx.MockTransport(self))


def _request(**fields: Any) -> dict[str, Any]:
    return {
        "id": "r1",
        "project_id": "p1",
        "requester": "rosa",
        "requester_key_id": generate_key_pair().key_id,
        "project_data_use": [HMB, MDS],
        "project_end_date": None,
        "decisions": [{"id": "d1", "station": "site-a", "collection": "lung"}],
    } | fields


def _signed(hub: _Hub) -> SignedGrant:
    return SignedGrant.model_validate(hub.body()["signed_grant"])


def test_approve_with_grant_signs_the_projects_use_until_its_end() -> None:
    hub, keys = _Hub(), generate_key_pair()
    end = date.today() + timedelta(days=10)
    request = _request(project_end_date=end.isoformat())

    hub.client().approve_with_grant(request, request["decisions"][0], keys=keys, steward="steward-a", valid_days=365)

    assert hub.seen[-1].url.path == "/access-requests/r1/decisions/d1/approve"
    grant = verify_grant(_signed(hub), keys.signing_public)
    assert grant.purpose == (HMB, MDS)
    assert grant.not_after == datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    assert (grant.project_id, grant.station, grant.collection, grant.researcher) == ("p1", "site-a", "lung", "rosa")


def test_approve_with_grant_without_an_end_date_runs_valid_days() -> None:
    hub, keys = _Hub(), generate_key_pair()
    request = _request()

    hub.client().approve_with_grant(request, request["decisions"][0], keys=keys, steward="steward-a", valid_days=7)

    grant = _signed(hub).grant
    assert timedelta(days=6, hours=23) < grant.not_after - grant.issued_at <= timedelta(days=7)


def test_approve_with_grant_needs_the_researchers_key() -> None:
    hub = _Hub()
    request = _request(requester_key_id=None)

    with pytest.raises(ClientError, match="no signing key registered"):
        hub.client().approve_with_grant(request, request["decisions"][0], keys=generate_key_pair(), steward="s")
    assert hub.seen == []


def test_offer_conditions_with_grant_sends_the_conditions_as_the_comment() -> None:
    hub, keys = _Hub(), generate_key_pair()
    request = _request()
    client = hub.client()

    client.offer_conditions_with_grant(request, request["decisions"][0], "Cite us", keys=keys, steward="steward-a")
    with pytest.raises(ClientError, match="say what the conditions are"):
        client.offer_conditions_with_grant(request, request["decisions"][0], "  ", keys=keys, steward="steward-a")

    assert hub.seen[-1].url.path == "/access-requests/r1/decisions/d1/offer-conditions"
    assert hub.body()["comment"] == "Cite us" and _signed(hub).grant.purpose == (HMB, MDS)
    assert len(hub.seen) == 1


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("decline", "decline"),
        ("request_information", "request-information"),
        ("request-information", "request-information"),
        ("answer", "answer"),
        ("accept", "accept"),
        ("decline-offer", "decline-offer"),
    ],
)
def test_move_posts_the_verb_with_its_comment(verb: str, path: str) -> None:
    hub = _Hub()

    hub.client().move("r1", "d1", verb, comment="why")

    assert hub.seen[-1].url.path == f"/access-requests/r1/decisions/d1/{path}"
    assert hub.body() == {"comment": "why"}


def test_move_refuses_an_unknown_verb_here() -> None:
    hub = _Hub()

    with pytest.raises(ClientError, match="no decision move 'reject': choose one of accept, answer"):
        hub.client().move("r1", "d1", "reject")
    assert hub.seen == []


def test_project_and_request_calls_send_what_was_given() -> None:
    hub = _Hub()
    client = hub.client()

    client.create_project("T", "P", data_use=[HMB], end_date=date(2030, 1, 31), members=("tom",))
    created = hub.body()
    client.update_project("p1", data_use=[HMB, MDS], end_date="2030-06-30")
    updated = hub.body()
    client.create_access_request(project_id="p1", collections=["site-a/lung"], submit=False)
    drafted = hub.body()
    client.withdraw_access_request("r1")
    withdrawn = hub.body()
    client.read_steward_digest(since=datetime(2026, 5, 1, tzinfo=UTC))
    client.read_grants(state="active")

    assert created == {
        "title": "T",
        "purpose": "P",
        "data_use": [HMB],
        "diseases": [],
        "members": ["tom"],
        "ethics_reference": None,
        "end_date": "2030-01-31",
    }
    assert updated == {"data_use": [HMB, MDS], "end_date": "2030-06-30"}
    assert drafted == {"project_id": "p1", "collections": ["site-a/lung"], "submit": False}
    assert withdrawn == {"comment": None}
    assert hub.seen[-2].url.params["since"] == "2026-05-01T00:00:00+00:00"
    assert (hub.seen[-1].url.path, hub.seen[-1].url.params["state"]) == ("/grants", "active")


def test_grant_moves_post_their_comment() -> None:
    hub = _Hub()
    client = hub.client()

    client.suspend_grant("g1", comment="audit")
    client.resume_grant("g1")
    client.revoke_grant("g1", comment="over")

    assert [request.url.path for request in hub.seen] == [
        "/grants/g1/suspend",
        "/grants/g1/resume",
        "/grants/g1/revoke",
    ]
    assert [json.loads(request.content) for request in hub.seen] == [
        {"comment": "audit"},
        {"comment": None},
        {"comment": "over"},
    ]


def test_validation_errors_read_as_field_and_message() -> None:
    detail = [
        {"type": "string_pattern_mismatch", "loc": ["body", "data_use", 0], "msg": "String should match pattern"},
        {"type": "missing", "loc": ["body", "title"], "msg": "Field required"},
    ]
    hub = _Hub(httpx.Response(422, json={"detail": detail}))

    with pytest.raises(ClientError) as caught:
        hub.client().create_project("T", "P", data_use=["health"])

    assert caught.value.status == 422
    assert str(caught.value).endswith("(422): data_use.0: String should match pattern; title: Field required")
