"""``trainyard projects|requests|grants``: the access workflow from the command line, against a real hub."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from client_hub import PASSWORD, ServedHub
from sqlmodel import Session
from typer.testing import CliRunner

from client import TrainyardClient
from client.cli import app
from hub import crud
from hub.governance import TRANSITIONS
from hub.models import Collection, Station, UserCreate
from protocol import CollectionMetadata, DiseaseCode, Role, generate_key_pair, utc_now

HMB, GRU, MDS = "DUO:0000006", "DUO:0000042", "DUO:0000031"
STEWARD = "steward-a"


def _trainyard(home: Path, *args: str) -> tuple[int, str]:
    env = {"TRAINYARD_CONFIG_DIR": str(home), "TRAINYARD_PASSWORD": PASSWORD, "COLUMNS": "250"}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def _ok(home: Path, *args: str) -> str:
    code, output = _trainyard(home, *args)
    assert code == 0, output
    return output


def _one_line(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture
def homes(served_hub: ServedHub, tmp_path: Path) -> tuple[Path, Path]:
    """Rosa and the steward of site-a, logged in with registered keys; site-a has collections lung and copd."""
    with Session(served_hub.app.state.engine) as session:
        keys = generate_key_pair()
        session.add(
            Station(id="site-a", signing_public_key=keys.signing_public, encryption_public_key=keys.encryption_public)
        )
        session.commit()
        for name, conditions, disease in (("lung", (HMB,), "C34.1"), ("copd", (GRU,), "J44.9")):
            metadata = CollectionMetadata(
                data_use=conditions, disease_codes=(DiseaseCode(system="ICD-10", code=disease),)
            )
            session.add(
                Collection(
                    id=f"site-a/{name}",
                    station_id="site-a",
                    collection=name,
                    title=name,
                    summary={},
                    metadata_=metadata.model_dump(mode="json"),
                    graph_iri=f"{served_hub.url}/catalog/site-a/{name}",
                    published_at=utc_now(),
                )
            )
        session.commit()
        crud.create_user(
            session=session,
            user_create=UserCreate(username=STEWARD, password=PASSWORD, role=Role.STEWARD, station="site-a"),
        )
        crud.create_user(
            session=session, user_create=UserCreate(username="tom", password=PASSWORD, role=Role.RESEARCHER)
        )
    rosa, steward = tmp_path / "rosa", tmp_path / "steward"
    for home, user in ((rosa, "rosa"), (steward, STEWARD)):
        _ok(home, "login", "--hub", served_hub.url, "--user", user)
        _ok(home, "keys", "init", "--no-passphrase")
    return rosa, steward


def _client(hub: ServedHub, user: str) -> TrainyardClient:
    client = TrainyardClient(hub.url)
    client.login(user, PASSWORD)
    return client


def _id(word: str, output: str) -> str:
    found = re.search(rf"{word} (\w+)", output)
    assert found is not None, output
    return found.group(1)


def _project(rosa: Path, *args: str) -> str:
    return _id("project", _ok(rosa, "projects", "create", "--title", "Nodules", "--purpose", "Train a detector", *args))


def _request(output: str) -> str:
    return _id("request", output)


def test_projects_create_list_update(served_hub: ServedHub, homes: tuple[Path, Path]) -> None:
    rosa, _steward = homes
    end = (date.today() + timedelta(days=90)).isoformat()

    created = _ok(
        rosa,
        "projects", "create", "--title", "Nodules", "--purpose", "Train a detector",
        "--use", HMB, "--use", MDS, "--disease", "c34", "--ethics", "IRB-2026-7", "--end-date", end, "--member", "tom",
    )  # fmt: skip
    project_id = _id("project", created)
    listing = _ok(rosa, "projects", "list")
    updated = _ok(rosa, "projects", "update", project_id, "--use", GRU, "--title", "Nodules II")
    code, bad = _trainyard(rosa, "projects", "create", "--title", "T", "--purpose", "P", "--use", "health")

    assert f"data use {HMB}, {MDS}; diseases C34; ethics IRB-2026-7; ends {end}; members tom" in _one_line(created)
    assert f"trainyard requests check --project {project_id}" in _one_line(created)
    assert project_id in listing and "IRB-2026-7" in listing and "tom" in listing
    assert "Nodules II" in updated and f"data use {GRU};" in updated and "diseases C34" in updated
    assert code == 1 and "data_use.0" in bad and "DUO" in bad


def test_check_create_returned_fix_resubmit(served_hub: ServedHub, homes: tuple[Path, Path]) -> None:
    rosa, _steward = homes
    project = _project(rosa, "--use", GRU)

    checked = _one_line(_ok(rosa, "requests", "check", "--project", project, "--collection", "site-a/lung"))
    returned = _one_line(_ok(rosa, "requests", "create", "--project", project, "--collection", "site-a/lung"))
    request_id = _request(returned)
    _ok(rosa, "projects", "update", project, "--use", HMB)
    forwarded = _one_line(_ok(rosa, "requests", "submit", request_id))

    assert "purpose-not-permitted" in checked and "Screening found 1 problem(s)" in checked
    assert f"trainyard projects update {project}" in checked
    assert f"request {request_id}: returned" in returned and "purpose-not-permitted" in returned
    assert f"trainyard requests submit {request_id}" in returned
    assert f"request {request_id}: forwarded" in forwarded and "Screening passed" in forwarded
    assert f"trainyard requests show {request_id}" in forwarded


def test_draft_submit_with_other_collections_and_withdraw(served_hub: ServedHub, homes: tuple[Path, Path]) -> None:
    rosa, _steward = homes
    project = _project(rosa, "--use", HMB)

    drafted = _one_line(_ok(rosa, "requests", "create", "--project", project, "--collection", "site-a/lung", "--draft"))
    request_id = _request(drafted)
    submitted = _one_line(_ok(rosa, "requests", "submit", request_id, "--collection", "site-a/copd"))
    listed = _ok(rosa, "requests", "list", "--state", "forwarded")
    withdrawn = _one_line(_ok(rosa, "requests", "withdraw", request_id, "--comment", "wrong cohort"))
    code, again = _trainyard(rosa, "requests", "withdraw", request_id)
    code_state, bad_state = _trainyard(rosa, "requests", "list", "--state", "nonsense")

    assert f"request {request_id}: draft" in drafted and f"trainyard requests submit {request_id}" in drafted
    assert "forwarded — 1 collection(s), 1 decision(s) open" in submitted
    assert request_id in listed and "site-a/copd" in listed and "site-a/lung" not in listed
    assert f"request {request_id}: withdrawn" in withdrawn
    assert code == 1 and "cannot withdraw a request that is withdrawn" in _one_line(again)
    assert code_state == 1 and "state:" in bad_state


def test_ask_answer_offer_accept_and_grant_moves(served_hub: ServedHub, homes: tuple[Path, Path]) -> None:
    rosa, steward = homes
    end = date.today() + timedelta(days=30)
    project = _project(rosa, "--use", HMB, "--use", MDS, "--end-date", end.isoformat())
    request_id = _request(_ok(rosa, "requests", "create", "--project", project, "--collection", "site-a/lung"))
    with _client(served_hub, STEWARD) as client:
        decision = client.read_access_request(request_id)["decisions"][0]["id"]

    digest = _one_line(_ok(steward, "requests", "digest"))
    asked = _one_line(_ok(steward, "requests", "ask", request_id, decision, "--comment", "Which [ethics] board?"))
    answered = _one_line(_ok(rosa, "requests", "answer", request_id, decision, "--comment", "The regional one"))
    offered = _one_line(
        _ok(
            steward, "requests", "offer", request_id, decision, "--conditions", "No re-identification", "--days", "3650"
        )
    )
    accepted = _one_line(_ok(rosa, "requests", "accept", request_id, decision))
    shown = _one_line(_ok(rosa, "requests", "show", request_id))
    with _client(served_hub, "rosa") as client:
        grant = client.read_grants()[0]
    granted = _one_line(_ok(rosa, "grants", "list", "--state", "active"))
    suspended = _one_line(_ok(steward, "grants", "suspend", grant["id"], "--comment", "audit"))
    resumed = _one_line(_ok(steward, "grants", "resume", grant["id"]))
    revoked = _one_line(_ok(steward, "grants", "revoke", grant["id"], "--comment", "study over"))
    code, refused = _trainyard(rosa, "grants", "revoke", grant["id"], "--comment", "mine")

    assert "station site-a: pending 1" in digest and request_id in digest and decision in digest
    assert "site-a/lung: information requested" in asked and "trainyard requests answer" in asked
    assert "site-a/lung: pending" in answered
    assert "site-a/lung: conditions offered" in offered and f"trainyard requests accept {request_id}" in offered
    assert "site-a/lung: approved" in accepted and f"request {request_id} is closed" in accepted
    assert "Which [ethics] board?" in shown and "The regional one" in shown and "No re-identification" in shown
    for action in ("submit", "screen", "forward", "request information", "answer", "offer conditions", "accept"):
        assert action in shown, action
    assert "decision site-a/lung" in shown and "conditions offered → approved" in shown
    assert f"{STEWARD} (steward)" in shown and "rosa (researcher)" in shown and "system (system)" in shown
    # The signed grant carries the project's use and ends with the project (not 3650 days from now).
    assert grant["purpose"] == [HMB, MDS] and grant["conditions"] == "No re-identification"
    until = datetime.fromisoformat(grant["not_after"].replace("Z", "+00:00"))
    assert until == datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    assert grant["id"] in granted and f"{HMB}, {MDS}" in granted
    assert f"grant {grant['id']} (site-a/lung, project {project}): suspended" in suspended
    assert resumed.endswith(": active") and revoked.endswith(": revoked")
    assert code == 1 and "needs the steward role" in _one_line(refused)


def test_decline_reject_alias_and_decline_offer(served_hub: ServedHub, homes: tuple[Path, Path]) -> None:
    rosa, steward = homes
    project = _project(rosa, "--use", HMB)
    both = ("--collection", "site-a/lung", "--collection", "site-a/copd")
    first = _request(_ok(rosa, "requests", "create", "--project", project, *both))
    second = _request(_ok(rosa, "requests", "create", "--project", project, "--collection", "site-a/lung"))
    with _client(served_hub, STEWARD) as client:
        ids = {d["collection"]: d["id"] for d in client.read_access_request(first)["decisions"]}
        lung, copd = ids["lung"], ids["copd"]
        other = client.read_access_request(second)["decisions"][0]["id"]

    declined = _one_line(_ok(steward, "requests", "decline", first, lung, "--comment", "no ethics approval yet"))
    rejected = _one_line(_ok(steward, "requests", "reject", first, copd, "--comment", "no consent"))
    _ok(steward, "requests", "offer", second, other, "--conditions", "Cite the biobank")
    refused = _one_line(_ok(rosa, "requests", "decline-offer", second, other, "--comment", "cannot cite"))
    code, late = _trainyard(steward, "requests", "decline", first, lung, "--comment", "again")
    helped = _ok(steward, "requests", "--help")

    assert "site-a/lung: declined" in declined and f"request {first} is forwarded" in declined
    assert "site-a/copd: declined" in rejected and f"request {first} is closed" in rejected
    assert "site-a/lung: declined by applicant" in refused
    assert code == 1 and "cannot decline a decision that is declined" in _one_line(late)
    assert "decline-offer" in helped and "reject" not in helped


def test_approve_signs_the_projects_use(served_hub: ServedHub, homes: tuple[Path, Path]) -> None:
    rosa, steward = homes
    project = _project(rosa, "--use", HMB, "--use", MDS, "--disease", "C34")
    request_id = _request(_ok(rosa, "requests", "create", "--project", project, "--collection", "site-a/lung"))
    with _client(served_hub, STEWARD) as client:
        decision = client.read_access_request(request_id)["decisions"][0]["id"]

    approved = _one_line(_ok(steward, "requests", "approve", request_id, decision, "--days", "30"))
    code, unknown = _trainyard(steward, "requests", "approve", request_id, "nope")
    listed = _ok(steward, "grants", "list")
    digest = _one_line(_ok(steward, "requests", "digest", "--since", "2020-01-01"))

    assert "grant signed with your key" in approved
    assert f"{HMB}, {MDS}" in listed and "site-a/lung" in listed
    assert code == 2 and "no decision nope" in unknown
    assert "approved 1" in digest and "grant active 1" in digest and "No decision waits for you" in digest


def test_steward_cannot_decide_a_returned_request(served_hub: ServedHub, homes: tuple[Path, Path]) -> None:
    rosa, steward = homes
    project = _project(rosa)  # no data use: screening returns the request
    request_id = _request(_ok(rosa, "requests", "create", "--project", project, "--collection", "site-a/lung"))
    with _client(served_hub, "rosa") as client:
        decision = client.read_access_request(request_id)["decisions"][0]["id"]

    code, output = _trainyard(steward, "requests", "decline", request_id, decision, "--comment", "no")

    assert code == 1
    assert "the request is returned: stewards decide once screening has forwarded it" in _one_line(output)


# Each command that moves something, and the row of the governance table it makes.
_MOVES = {
    ("requests", "withdraw"): ("request", "withdraw", "comment"),
    ("requests", "approve"): ("decision", "approve", "comment"),
    ("requests", "offer"): ("decision", "offer_conditions", "conditions"),
    ("requests", "decline"): ("decision", "decline", "comment"),
    ("requests", "reject"): ("decision", "decline", "comment"),
    ("requests", "ask"): ("decision", "request_information", "comment"),
    ("requests", "answer"): ("decision", "answer", "comment"),
    ("requests", "accept"): ("decision", "accept", "comment"),
    ("requests", "decline-offer"): ("decision", "decline_offer", "comment"),
    ("grants", "suspend"): ("grant", "suspend", "comment"),
    ("grants", "resume"): ("grant", "resume", "comment"),
    ("grants", "revoke"): ("grant", "revoke", "comment"),
}


@pytest.mark.parametrize(("group", "command"), sorted(_MOVES))
def test_a_comment_is_required_exactly_where_the_table_says(group: str, command: str) -> None:
    kind, action, option = _MOVES[(group, command)]
    row = next(row for row in TRANSITIONS if (row.kind, row.action) == (kind, action))
    commands: Any = typer.main.get_group(app).commands[group]
    param = next(param for param in commands.commands[command].params if param.name == option)

    assert param.required is row.needs_comment
