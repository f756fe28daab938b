"""The access workflow through the API: drafts, screening, per-collection decisions, expiry, digest."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hub_factories import EnrolledStation, Headers, HubFactory, Researcher

from hub import Settings
from protocol import CollectionMetadata, DiseaseCode, Grant, Role, generate_key_pair, sign_grant

HMB, GRU, DS, MDS, NMDS, IRB = (
    "DUO:0000006",
    "DUO:0000042",
    "DUO:0000007",
    "DUO:0000031",
    "DUO:0000015",
    "DUO:0000021",
)


def _publish(
    hub: HubFactory, station: EnrolledStation, name: str, conditions: list[str], diseases: tuple[str, ...] = ()
) -> str:
    metadata = CollectionMetadata(
        data_use=tuple(conditions),
        disease_codes=tuple(DiseaseCode(system="ICD-10", code=code) for code in diseases),
    )
    return hub.publish(station, name, metadata=metadata)


def _project(client: TestClient, researcher: Researcher, **fields: Any) -> dict[str, Any]:
    body = {"title": "Nodules", "purpose": "Train a nodule detector", "data_use": [HMB, MDS], **fields}
    answer = client.post("/projects", json=body, headers=researcher.headers)
    assert answer.status_code == 201, answer.text
    project: dict[str, Any] = answer.json()
    return project


def _ask(
    client: TestClient, researcher: Researcher, project: dict[str, Any], collections: list[str], *, submit: bool = True
) -> dict[str, Any]:
    body = {"project_id": project["id"], "collections": collections, "submit": submit}
    answer = client.post("/access-requests", json=body, headers=researcher.headers)
    assert answer.status_code == 201, answer.text
    request: dict[str, Any] = answer.json()
    return request


def _decide(
    client: TestClient, request: dict[str, Any], verb: str, headers: Headers, comment: str | None = None, index: int = 0
) -> Any:
    decision = request["decisions"][index]["id"]
    body = {} if comment is None else {"comment": comment}
    return client.post(f"/access-requests/{request['id']}/decisions/{decision}/{verb}", json=body, headers=headers)


def _events(client: TestClient, request: dict[str, Any], headers: Headers) -> list[tuple[str, str, str]]:
    answer = client.get(f"/access-requests/{request['id']}/events", headers=headers)
    assert answer.status_code == 200, answer.text
    return [(event["kind"], event["action"], event["to_state"]) for event in answer.json()["data"]]


# -- the request as a whole -----------------------------------------------------------------


def test_draft_then_submit_is_screened_and_forwarded(
    client: TestClient, hub: HubFactory, researcher: Researcher, station: EnrolledStation, steward_headers: Headers
) -> None:
    collection = _publish(hub, station, "chest-ct", [HMB])
    project = _project(client, researcher)
    draft = _ask(client, researcher, project, [collection], submit=False)
    assert draft["status"] == "draft"
    assert client.get("/access-requests", headers=steward_headers).json()["count"] == 0

    answer = client.post(f"/access-requests/{draft['id']}/submit", headers=researcher.headers)

    assert answer.status_code == 200, answer.text
    request = answer.json()
    assert request["status"] == "forwarded"
    assert request["screening"]["passed"] is True
    assert _events(client, request, researcher.headers) == [
        ("request", "create", "draft"),
        ("request", "submit", "submitted"),
        ("request", "screen", "screening"),
        ("request", "forward", "forwarded"),
    ]
    assert client.get("/access-requests", headers=steward_headers).json()["count"] == 1


def test_screening_returns_then_resubmit_after_fixing_the_project(
    client: TestClient, hub: HubFactory, researcher: Researcher, station: EnrolledStation
) -> None:
    collection = _publish(hub, station, "chest-ct", [HMB, IRB])
    project = _project(client, researcher)

    request = _ask(client, researcher, project, [collection])

    assert request["status"] == "returned"
    assert request["screening"]["passed"] is False
    codes = [finding["code"] for finding in request["screening"]["findings"]]
    assert codes == ["ethics-approval-missing"]
    history = client.get(f"/access-requests/{request['id']}/events", headers=researcher.headers).json()["data"]
    assert history[-1]["actor"] == "system"
    assert "ethics reference" in history[-1]["comment"]

    fixed = client.patch(
        f"/projects/{project['id']}", json={"ethics_reference": "METC 2026-114"}, headers=researcher.headers
    )
    assert fixed.status_code == 200, fixed.text
    again = client.post(f"/access-requests/{request['id']}/submit", headers=researcher.headers)

    assert again.json()["status"] == "forwarded"
    assert [finding["code"] for finding in again.json()["screening"]["findings"]] == ["ethics-approval"]


def test_check_shows_mismatches_before_submission_and_stores_nothing(
    client: TestClient, hub: HubFactory, researcher: Researcher, station: EnrolledStation
) -> None:
    no_training = _publish(hub, station, "chest-ct", [GRU, NMDS])
    lungs_only = _publish(hub, station, "lung-ct", [DS], ("C34",))
    project = _project(client, researcher)
    body = {"project_id": project["id"], "collections": [no_training, lungs_only]}

    answer = client.post("/access-requests/check", json=body, headers=researcher.headers)

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["passed"] is False
    found = {(finding["collection"], finding["code"]) for finding in report["findings"]}
    assert found == {
        (no_training, "methods-development-forbidden"),
        (lungs_only, "purpose-not-permitted"),
    }
    assert client.get("/access-requests", headers=researcher.headers).json()["count"] == 0


def test_disease_specific_collection_with_matching_disease_passes(
    client: TestClient, hub: HubFactory, researcher: Researcher, station: EnrolledStation
) -> None:
    lungs_only = _publish(hub, station, "lung-ct", [DS], ("C34.1",))
    matching = _project(client, researcher, data_use=[DS, MDS], diseases=["C34"])
    other = _project(client, researcher, data_use=[DS, MDS], diseases=["C50"])

    assert _ask(client, researcher, matching, [lungs_only])["status"] == "forwarded"
    returned = _ask(client, researcher, other, [lungs_only])
    assert returned["status"] == "returned"
    assert "none of the project's diseases matches" in returned["screening"]["findings"][0]["message"]


def test_change_collections_of_a_returned_request(
    client: TestClient, hub: HubFactory, researcher: Researcher, station: EnrolledStation
) -> None:
    forbidden = _publish(hub, station, "chest-ct", [GRU, NMDS])
    allowed = _publish(hub, station, "lung-ct", [GRU])
    project = _project(client, researcher)
    request = _ask(client, researcher, project, [forbidden])
    assert request["status"] == "returned"

    changed = client.patch(
        f"/access-requests/{request['id']}", json={"collections": [allowed]}, headers=researcher.headers
    )
    resubmitted = client.post(f"/access-requests/{request['id']}/submit", headers=researcher.headers)

    assert changed.status_code == 200, changed.text
    assert [f"{d['station']}/{d['collection']}" for d in changed.json()["decisions"]] == [allowed]
    assert resubmitted.json()["status"] == "forwarded"
    refused = client.patch(
        f"/access-requests/{request['id']}", json={"collections": [forbidden]}, headers=researcher.headers
    )
    assert refused.status_code == 409
    assert "only a draft or returned request can change" in refused.json()["detail"]


def test_submit_twice_is_refused_with_the_reason(
    client: TestClient, researcher: Researcher, project_id: str, collection_id: str
) -> None:
    request = _ask(client, researcher, {"id": project_id}, [collection_id])

    again = client.post(f"/access-requests/{request['id']}/submit", headers=researcher.headers)

    assert again.status_code == 409
    assert again.json()["detail"] == ("cannot submit a request that is forwarded: only one that is draft, returned")


def test_only_the_requester_submits_or_withdraws(
    client: TestClient, hub: HubFactory, researcher: Researcher, project_id: str, collection_id: str
) -> None:
    request = _ask(client, researcher, {"id": project_id}, [collection_id], submit=False)
    mallory = hub.create_researcher("mallory")

    for verb in ("submit", "withdraw"):
        answer = client.post(f"/access-requests/{request['id']}/{verb}", headers=mallory.headers)
        assert answer.status_code == 403
    assert client.get(f"/access-requests/{request['id']}", headers=mallory.headers).status_code == 403


def test_withdraw_ends_open_decisions(
    client: TestClient, researcher: Researcher, project_id: str, collection_id: str, steward_headers: Headers
) -> None:
    request = _ask(client, researcher, {"id": project_id}, [collection_id])

    answer = client.post(
        f"/access-requests/{request['id']}/withdraw", json={"comment": "funding ended"}, headers=researcher.headers
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "withdrawn"
    assert answer.json()["decisions"][0]["status"] == "declined_by_applicant"
    late = _decide(client, request, "approve", steward_headers)
    assert late.status_code == 409
    again = client.post(f"/access-requests/{request['id']}/withdraw", headers=researcher.headers)
    assert again.status_code == 409
    assert "that is withdrawn" in again.json()["detail"]


def test_admin_rejects_a_returned_request(
    client: TestClient, hub: HubFactory, researcher: Researcher, station: EnrolledStation, admin_headers: Headers
) -> None:
    collection = _publish(hub, station, "chest-ct", [GRU, NMDS])
    request = _ask(client, researcher, _project(client, researcher), [collection])
    path = f"/access-requests/{request['id']}"

    without_reason = client.post(f"{path}/reject", json={}, headers=admin_headers)
    rejected = client.post(f"{path}/reject", json={"comment": "out of scope"}, headers=admin_headers)
    resubmit = client.post(f"{path}/submit", headers=researcher.headers)

    assert without_reason.status_code == 400
    assert "say why" in without_reason.json()["detail"]
    assert rejected.json()["status"] == "rejected"
    assert resubmit.status_code == 409
    assert client.post(f"{path}/forward", json={}, headers=admin_headers).status_code == 409


# -- one station's decision -----------------------------------------------------------------


def test_information_requested_then_answered_then_approved(
    client: TestClient, researcher: Researcher, project_id: str, collection_id: str, steward_headers: Headers
) -> None:
    request = _ask(client, researcher, {"id": project_id}, [collection_id])

    no_question = _decide(client, request, "request-information", steward_headers)
    asked = _decide(client, request, "request-information", steward_headers, "Which cohort, exactly?")
    answered = _decide(client, request, "answer", researcher.headers, "Smokers over 50")
    approved = _decide(client, request, "approve", steward_headers)

    assert no_question.status_code == 400
    assert asked.json()["decisions"][0]["status"] == "information_requested"
    assert answered.json()["decisions"][0]["status"] == "pending"
    assert approved.json()["decisions"][0]["status"] == "approved"
    assert approved.json()["status"] == "closed"
    history = client.get(f"/access-requests/{request['id']}/events", headers=researcher.headers).json()["data"]
    moves = [(event["action"], event["actor"], event["role"], event["comment"]) for event in history[-5:]]
    assert moves == [
        ("request_information", "steward-a", "steward", "Which cohort, exactly?"),
        ("answer", "rosa", "researcher", "Smokers over 50"),
        ("approve", "steward-a", "steward", None),
        ("activate", "system", "system", None),  # the first station approved
        ("close", "system", "system", None),  # ... and every station has decided
    ]
    (grant,) = client.get("/grants", headers=researcher.headers).json()["data"]
    assert grant["status"] == "active"
    assert grant["purpose"] == [HMB, MDS]
    assert grant["allowed_action"] == "remote-processing"


def test_conditions_offered_then_accepted(
    client: TestClient, researcher: Researcher, project_id: str, collection_id: str, steward_headers: Headers
) -> None:
    request = _ask(client, researcher, {"id": project_id}, [collection_id])

    offered = _decide(client, request, "offer-conditions", steward_headers, "Acknowledge Site A in publications")
    steward_accepts = _decide(client, request, "accept", steward_headers)
    grants_while_offered = client.get("/grants", headers=researcher.headers).json()["count"]
    accepted = _decide(client, request, "accept", researcher.headers)

    assert offered.json()["decisions"][0]["status"] == "conditions_offered"
    assert steward_accepts.status_code == 403
    assert grants_while_offered == 0
    assert accepted.json()["decisions"][0]["status"] == "approved"
    (grant,) = client.get("/grants", headers=researcher.headers).json()["data"]
    assert grant["conditions"] == "Acknowledge Site A in publications"
    assert grant["steward"] == "steward-a"


def test_conditions_declined_by_applicant(
    client: TestClient, researcher: Researcher, project_id: str, collection_id: str, steward_headers: Headers
) -> None:
    request = _ask(client, researcher, {"id": project_id}, [collection_id])
    _decide(client, request, "offer-conditions", steward_headers, "Only on weekends")

    declined = _decide(client, request, "decline-offer", researcher.headers, "cannot meet that")

    assert declined.json()["decisions"][0]["status"] == "declined_by_applicant"
    assert declined.json()["status"] == "closed"
    assert client.get("/grants", headers=researcher.headers).json()["count"] == 0


def test_one_request_across_stations_is_active_then_closed(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    admin_headers: Headers,
    station: EnrolledStation,
    steward_headers: Headers,
) -> None:
    site_b = hub.enrol_station(admin_headers, "site-b")
    steward_b = hub.create_user("steward-b", Role.STEWARD, station="site-b")
    first, second = hub.publish(station), hub.publish(site_b)
    request = _ask(client, researcher, _project(client, researcher), [first, second])
    index = {decision["station"]: n for n, decision in enumerate(request["decisions"])}

    approved = _decide(client, request, "approve", steward_headers, index=index["site-a"])
    wrong_station = _decide(client, request, "decline", steward_headers, "no", index=index["site-b"])
    declined = _decide(client, request, "decline", steward_b, "no consent for AI", index=index["site-b"])

    assert approved.json()["status"] == "active"
    assert wrong_station.status_code == 403
    assert declined.json()["status"] == "closed"
    assert {d["station"]: d["status"] for d in declined.json()["decisions"]} == {
        "site-a": "approved",
        "site-b": "declined",
    }


def test_open_decisions_expire(
    client: TestClient,
    settings: Settings,
    researcher: Researcher,
    project_id: str,
    collection_id: str,
    steward_headers: Headers,
) -> None:
    request = _ask(client, researcher, {"id": project_id}, [collection_id])
    settings.decision_ttl_days = 0.5 / 86400  # half a second

    time.sleep(0.6)
    answer = client.get("/access-requests?state=closed", headers=researcher.headers)

    (closed,) = answer.json()["data"]
    assert closed["decisions"][0]["status"] == "expired"
    assert _events(client, request, researcher.headers)[-2:] == [
        ("decision", "expire", "expired"),
        ("request", "close", "closed"),
    ]
    assert _decide(client, request, "approve", steward_headers).status_code == 409


def test_steward_digest_lists_what_waits(
    client: TestClient,
    hub: HubFactory,
    researcher: Researcher,
    station: EnrolledStation,
    steward_headers: Headers,
) -> None:
    collections = [hub.publish(station, name) for name in ("chest-ct", "lung-ct", "head-ct")]
    request = _ask(client, researcher, _project(client, researcher), collections)
    before = datetime.now(UTC)
    # decisions come by collection id: chest-ct, head-ct, lung-ct
    _decide(client, request, "request-information", steward_headers, "Why lung CT twice?", index=2)
    _decide(client, request, "approve", steward_headers, index=0)

    answer = client.get("/access-requests/digest", params={"since": before.isoformat()}, headers=steward_headers)

    assert answer.status_code == 200, answer.text
    digest = answer.json()
    assert digest["station"] == "site-a"
    assert digest["counts"] == {"approved": 1, "grant_active": 1, "information_requested": 1, "pending": 1}
    (waiting,) = digest["waiting"]
    assert waiting["collection"] == "site-a/head-ct"
    assert waiting["project_title"] == "Nodules"
    assert digest["events_since"] == 2
    assert client.get("/access-requests/digest", headers=researcher.headers).status_code == 403


# -- projects -------------------------------------------------------------------------------


def test_project_members_see_it_and_its_requests(
    client: TestClient, hub: HubFactory, researcher: Researcher, collection_id: str
) -> None:
    mallory, eve = hub.create_researcher("mallory"), hub.create_researcher("eve")
    project = _project(client, researcher, members=["mallory"])
    request = _ask(client, researcher, project, [collection_id])

    assert client.get(f"/projects/{project['id']}", headers=mallory.headers).status_code == 200
    assert client.get(f"/access-requests/{request['id']}", headers=mallory.headers).status_code == 200
    assert client.get(f"/projects/{project['id']}", headers=eve.headers).status_code == 404
    changed = client.patch(f"/projects/{project['id']}", json={"title": "Mine now"}, headers=mallory.headers)
    assert changed.status_code == 403
    assert "owner" in changed.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data_use": ["DUO:6"]}, "DUO:"),
        ({"members": ["steward-a"]}, "member 'steward-a' is not a researcher"),
        ({"members": ["nobody"]}, "member 'nobody' is not a researcher"),
        ({"end_date": "next year"}, "date"),
        ({"end_date": (date.today() - timedelta(days=1)).isoformat()}, "a project's end date cannot be in the past"),
        ({"diseases": ["lung cancer"]}, "diseases"),
    ],
)
def test_create_project_bad_input(
    client: TestClient, researcher: Researcher, steward_headers: Headers, fields: dict[str, Any], message: str
) -> None:
    body = {"title": "T", "purpose": "P", **fields}

    answer = client.post("/projects", json=body, headers=researcher.headers)

    assert answer.status_code in (400, 422)
    assert message in str(answer.json()["detail"])


def test_signed_grant_must_stay_within_the_project(
    client: TestClient, researcher: Researcher, collection_id: str, steward_headers: Headers
) -> None:
    keys = generate_key_pair()
    body = {"signing_public_key": keys.signing_public, "encryption_public_key": keys.encryption_public}
    assert client.put("/users/me/keys", json=body, headers=steward_headers).status_code == 200
    end = date.today() + timedelta(days=10)
    project = _project(client, researcher, end_date=end.isoformat())
    request = _ask(client, researcher, project, [collection_id])
    decision = request["decisions"][0]
    now = datetime.now(UTC)
    grant = Grant(
        grant_id=decision["id"],
        project_id=project["id"],
        station=decision["station"],
        collection=decision["collection"],
        researcher="rosa",
        researcher_key_id=researcher.keys.key_id,
        steward="steward-a",
        steward_key_id=keys.key_id,
        purpose=(GRU,),
        not_before=now,
        not_after=now + timedelta(days=30),
        issued_at=now,
    )
    signed = sign_grant(grant, keys.signing).model_dump(mode="json")

    answer = client.post(
        f"/access-requests/{request['id']}/decisions/{decision['id']}/approve",
        json={"signed_grant": signed},
        headers=steward_headers,
    )

    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert "goes beyond the project's data use" in detail
    assert f"after the project's end date {end.isoformat()}" in detail
