"""A local federation whose stations all granted one researcher's project: for benchmarks and tests.

``trainyard demo`` walks through search, screening and approval step by step; benchmarks and
end-to-end tests only need the end state: a running hub, N running stations with a synthetic
collection each, and a project that holds a steward-signed grant on every collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol import KeyPair, generate_key_pair

from ._client import TrainyardClient
from ._federation import FederationError, LocalFederation

__all__ = ["GrantedProject", "set_up_granted_project"]

_RESEARCHER = "rosa"
_USE = ["DUO:0000006", "DUO:0000031"]  # health/medical research, methods development


@dataclass(frozen=True)
class GrantedProject:
    """The researcher's side of a federation set up by :func:`set_up_granted_project`."""

    hub_url: str
    researcher: str
    password: str
    keys: KeyPair
    project_id: str
    collections: tuple[str, ...]

    def client(self) -> TrainyardClient:
        """A client logged in as the researcher (the caller closes it)."""
        client = TrainyardClient(self.hub_url)
        client.login(self.researcher, self.password)
        return client


def set_up_granted_project(
    federation: LocalFederation,
    *,
    stations: Sequence[str],
    password: str,
    executor: str = "sandbox",
    collection: str = "c",
    patients: int = 8,
) -> GrantedProject:
    """Start the hub and ``stations``, and give one project a signed grant on each station's collection.

    Parameters
    ----------
    federation
        A federation whose hub is not started yet.
    stations
        Station names; station ``i`` gets site index ``i % 3`` (its scanner vendor and intensity shift).
    password
        The admin's, the researcher's and every steward's password.
    executor
        The stations' executor (``sandbox`` or ``docker``).
    collection, patients
        The synthetic collection each station harvests and publishes.

    Raises
    ------
    FederationError
        When a process fails to start or the access request is not forwarded to the stewards.
    """
    federation.start_hub(admin_password=password)
    stewards = {name: generate_key_pair() for name in stations}
    with TrainyardClient(federation.hub_url) as admin:
        admin.login("admin", password)
        admin.create_user(username=_RESEARCHER, password=password, role="researcher")
        tokens = {}
        for name in stations:
            admin.create_user(username=f"steward-{name}", password=password, role="steward", station=name)
            tokens[name] = admin.create_enrolment_token(name)
    for index, name in enumerate(stations):
        federation.prepare_station(
            name,
            token=tokens[name],
            collection=collection,
            title=f"{collection} at {name}",
            site_index=index % 3,
            seed=index + 1,
            patients=patients,
            steward=(f"steward-{name}", stewards[name].signing_public),
        )
        federation.start_station(name, executor=executor)
    keys = generate_key_pair()
    collections = tuple(f"{name}/{collection}" for name in stations)
    with TrainyardClient(federation.hub_url) as researcher:
        researcher.login(_RESEARCHER, password)
        researcher.update_keys(keys)
        project = researcher.create_project("Granted", "Benchmarks and end-to-end tests", data_use=_USE)
        request = researcher.create_access_request(project_id=project["id"], collections=list(collections))
    if request["status"] != "forwarded":
        raise FederationError(f"the access request was {request['status']}: {request.get('screening')}")
    for name in stations:
        with TrainyardClient(federation.hub_url) as steward:
            steward.login(f"steward-{name}", password)
            steward.update_keys(stewards[name])
            pending = steward.read_access_request(request["id"])
            for decision in pending["decisions"]:
                if decision["station"] == name and decision["status"] == "pending":
                    steward.approve_with_grant(pending, decision, keys=stewards[name], steward=f"steward-{name}")
    return GrantedProject(federation.hub_url, _RESEARCHER, password, keys, project["id"], collections)
