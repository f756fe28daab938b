"""The researcher's, steward's and admin's Python client for a Trainyard hub.

Method names follow the hub's operation ids. Private keys stay in this process: the
client signs manifests and opens sealed results locally.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx

from protocol import (
    Grant,
    KeyPair,
    ProtocolError,
    Recipient,
    ResultEnvelope,
    ResultPayload,
    SignedManifest,
    TrainManifest,
    TrainyardError,
    b64decode,
    content_address,
    key_id_for_public_key,
    open_sealed,
    sign_grant,
    sign_manifest,
    utc_now,
    verify_content_address,
    verify_envelope,
)

from ._bundle import build_bundle, read_train_config

__all__ = ["ClientError", "JobResult", "TrainyardClient"]

_COLLECTIONS_QUERY = """
query Collections($modality: String, $bodyPart: String, $minSubjects: Int) {
  collections(modality: $modality, bodyPart: $bodyPart, minSubjects: $minSubjects) {
    id iri station collection title description subjects studies series instances
    modalities { value count } bodyParts { value count } manufacturers { value count }
  }
}
"""


_SEARCH_QUERY = """
query Search($filter: CollectionFilter, $first: Int!, $after: String, $sort: CollectionSort!) {
  search(filter: $filter, first: $first, after: $after, sort: $sort) {
    totalCount
    nodes { id title station subjects modalities bodyParts diseases annotations dataUse minAge maxAge }
    facets {
      modality { value count } bodyPart { value count } station { value count } disease { value count }
      annotation { value count } dataUse { value count } subjects { value count } age { value count }
      purpose { value count }
    }
    pageInfo { endCursor hasNextPage }
  }
}
"""


_DECISION_MOVES = frozenset(
    {"approve", "offer-conditions", "decline", "request-information", "answer", "accept", "decline-offer"}
)


class ClientError(TrainyardError):
    """The hub refused a request; ``status`` is the HTTP status, the message its reason."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class JobResult:
    """A decrypted, verified result of one job."""

    payload: ResultPayload

    def json_output(self, name: str) -> Any:
        """Decode the declared output ``name`` as JSON."""
        try:
            return json.loads(b64decode(self.payload.files[name]))
        except KeyError as exc:
            raise ProtocolError(f"the result of job {self.payload.job_id} has no output {name!r}") from exc


class TrainyardClient:
    """A thin, typed client of the hub's HTTP API.

    Parameters
    ----------
    base_url
        The hub, e.g. ``http://127.0.0.1:8000``.
    token
        A bearer token from :meth:`login`, if already known.
    transport
        An httpx transport (tests pass an ASGI or mock transport).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout)
        self.token = token

    def __enter__(self) -> TrainyardClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the hub at {self._http.base_url}: {exc}") from exc
        if response.is_error:
            detail = _detail(response)
            raise ClientError(f"{method} {path} failed ({response.status_code}): {detail}", status=response.status_code)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # people
    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in and keep the bearer token for later calls."""
        answer: dict[str, Any] = self._json("POST", "/auth/login", json={"username": username, "password": password})
        self.token = answer["access_token"]
        return answer

    def read_user_me(self) -> dict[str, Any]:
        """Who the token belongs to."""
        result: dict[str, Any] = self._json("GET", "/users/me")
        return result

    def update_keys(self, keys: KeyPair) -> dict[str, Any]:
        """Register the public halves of a key pair; private keys never leave this process."""
        body = {"signing_public_key": keys.signing_public, "encryption_public_key": keys.encryption_public}
        result: dict[str, Any] = self._json("PUT", "/users/me/keys", json=body)
        return result

    def create_user(self, *, username: str, password: str, role: str, station: str | None = None) -> dict[str, Any]:
        """Create a user (admin only)."""
        body = {"username": username, "password": password, "role": role, "station": station}
        result: dict[str, Any] = self._json("POST", "/users", json=body)
        return result

    # API tokens
    def create_token(self, *, name: str, scopes: Sequence[str], ttl_days: int = 30) -> dict[str, Any]:
        """Create a scoped API token; the answer's ``token`` is its secret, shown only this once."""
        body = {"name": name, "scopes": list(scopes), "ttl_days": ttl_days}
        result: dict[str, Any] = self._json("POST", "/tokens", json=body)
        return result

    def read_tokens(self) -> list[dict[str, Any]]:
        """List the caller's API tokens (never their secrets)."""
        data: list[dict[str, Any]] = self._json("GET", "/tokens")["data"]
        return data

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        """Revoke one of the caller's API tokens."""
        result: dict[str, Any] = self._json("DELETE", f"/tokens/{token_id}")
        return result

    # stations and catalog
    def create_enrolment_token(self, station: str) -> str:
        """Create a one-time enrolment token for a station (admin only)."""
        return str(self._json("POST", "/stations/enrolment-tokens", json={"station": station})["token"])

    def read_stations(self) -> list[dict[str, Any]]:
        """List enrolled stations with their public keys."""
        data: list[dict[str, Any]] = self._json("GET", "/stations")["data"]
        return data

    def search_collections(
        self, *, modality: str | None = None, body_part: str | None = None, min_subjects: int | None = None
    ) -> list[dict[str, Any]]:
        """Search the catalog through GraphQL."""
        variables = {"modality": modality, "bodyPart": body_part, "minSubjects": min_subjects}
        answer = self._json("POST", "/graphql", json={"query": _COLLECTIONS_QUERY, "variables": variables})
        if answer.get("errors"):
            raise ClientError("catalog search failed: " + "; ".join(error["message"] for error in answer["errors"]))
        collections: list[dict[str, Any]] = answer["data"]["collections"]
        return collections

    def search(
        self,
        *,
        first: int = 20,
        after: str | None = None,
        sort: str = "SUBJECTS_DESC",
        **filters: Any,
    ) -> dict[str, Any]:
        """Faceted catalog search: ``totalCount``, ``nodes``, ``facets`` and ``pageInfo``.

        ``filters`` are the GraphQL ``CollectionFilter`` fields in snake case (``modality=["CT"]``,
        ``disease=["C34"]``, ``min_age=50``, ``purpose="DUO:0000006"``, ...); ``None`` values are left out.
        """
        wanted = {_camel(name): value for name, value in filters.items() if value not in (None, [], ())}
        variables = {"filter": wanted, "first": first, "after": after, "sort": sort}
        answer = self._json("POST", "/graphql", json={"query": _SEARCH_QUERY, "variables": variables})
        if answer.get("errors"):
            raise ClientError("catalog search failed: " + "; ".join(error["message"] for error in answer["errors"]))
        found: dict[str, Any] = answer["data"]["search"]
        return found

    # projects
    def create_project(
        self,
        title: str,
        purpose: str,
        *,
        data_use: Sequence[str] = (),
        diseases: Sequence[str] = (),
        ethics_reference: str | None = None,
        end_date: date | str | None = None,
        members: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Create a project owned by the current researcher.

        Parameters
        ----------
        title, purpose
            What the project is called and what the data is for (stewards read this).
        data_use
            The intended use as GA4GH DUO codes: a primary purpose (``DUO:0000042`` GRU,
            ``DUO:0000006`` HMB, ``DUO:0000007`` DS) and modifiers such as ``DUO:0000031``
            (methods development). Screening matches them against each collection's conditions.
        diseases
            ICD-10 codes (e.g. ``C34``) a disease-specific use is about.
        ethics_reference
            The ethics approval, for collections that require one (``DUO:0000021``).
        end_date
            The project's last day (``YYYY-MM-DD``); grants end by then.
        members
            Other researchers (user names) who work on it.
        """
        body = {
            "title": title,
            "purpose": purpose,
            "data_use": list(data_use),
            "diseases": list(diseases),
            "members": list(members),
            "ethics_reference": ethics_reference,
            "end_date": _iso_date(end_date),
        }
        result: dict[str, Any] = self._json("POST", "/projects", json=body)
        return result

    def read_projects(self) -> list[dict[str, Any]]:
        """The projects the current researcher owns or works on."""
        data: list[dict[str, Any]] = self._json("GET", "/projects")["data"]
        return data

    def read_project(self, project_id: str) -> dict[str, Any]:
        """One of the current researcher's projects."""
        result: dict[str, Any] = self._json("GET", f"/projects/{project_id}")
        return result

    def update_project(
        self,
        project_id: str,
        *,
        title: str | None = None,
        purpose: str | None = None,
        data_use: Sequence[str] | None = None,
        diseases: Sequence[str] | None = None,
        ethics_reference: str | None = None,
        end_date: date | str | None = None,
        members: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change a project (its owner only); what is left ``None`` stays as it is.

        Lists replace the project's lists. Grants already given keep their purpose and period.
        """
        changes = {
            "title": title,
            "purpose": purpose,
            "data_use": None if data_use is None else list(data_use),
            "diseases": None if diseases is None else list(diseases),
            "members": None if members is None else list(members),
            "ethics_reference": ethics_reference,
            "end_date": _iso_date(end_date),
        }
        body = {name: value for name, value in changes.items() if value is not None}
        result: dict[str, Any] = self._json("PATCH", f"/projects/{project_id}", json=body)
        return result

    # access requests
    def check_access_request(self, *, project_id: str, collections: Sequence[str]) -> dict[str, Any]:
        """Screen a would-be request without storing it: ``passed`` and ``findings``.

        Each finding names its ``collection`` (``"*"`` for the project), a ``severity``
        (``problem`` returns a request, ``note`` informs the steward), a ``code`` and a ``message``.
        """
        body = {"project_id": project_id, "collections": list(collections)}
        result: dict[str, Any] = self._json("POST", "/access-requests/check", json=body)
        return result

    def create_access_request(
        self, *, project_id: str, collections: Sequence[str], submit: bool = True
    ) -> dict[str, Any]:
        """Ask for access to collections across stations: one decision per collection.

        A submitted request is screened at once: it comes back ``forwarded`` (the stewards
        decide) or ``returned`` (its ``screening`` says why). With ``submit=False`` it stays a
        ``draft`` to change and submit later.
        """
        body = {"project_id": project_id, "collections": list(collections), "submit": submit}
        result: dict[str, Any] = self._json("POST", "/access-requests", json=body)
        return result

    def update_access_request(self, request_id: str, *, collections: Sequence[str]) -> dict[str, Any]:
        """Replace a draft's or returned request's collections."""
        path = f"/access-requests/{request_id}"
        result: dict[str, Any] = self._json("PATCH", path, json={"collections": list(collections)})
        return result

    def submit_access_request(self, request_id: str) -> dict[str, Any]:
        """Submit a draft or resubmit a returned request: screening runs again."""
        result: dict[str, Any] = self._json("POST", f"/access-requests/{request_id}/submit")
        return result

    def withdraw_access_request(self, request_id: str, *, comment: str = "") -> dict[str, Any]:
        """Withdraw a request that has not closed: its open decisions end; grants given stay."""
        path = f"/access-requests/{request_id}/withdraw"
        result: dict[str, Any] = self._json("POST", path, json={"comment": comment or None})
        return result

    def read_access_requests(self, state: str | None = None) -> list[dict[str, Any]]:
        """Access requests visible to the current user, optionally only those in ``state``."""
        params = {"state": state} if state else None
        data: list[dict[str, Any]] = self._json("GET", "/access-requests", params=params)["data"]
        return data

    def read_access_request(self, request_id: str) -> dict[str, Any]:
        """One access request with its decisions, screening report and project's use and end."""
        result: dict[str, Any] = self._json("GET", f"/access-requests/{request_id}")
        return result

    def read_access_request_events(self, request_id: str) -> list[dict[str, Any]]:
        """A request's history, oldest first: ``actor``, ``role``, ``at``, ``action``, states, ``comment``."""
        data: list[dict[str, Any]] = self._json("GET", f"/access-requests/{request_id}/events")["data"]
        return data

    def read_steward_digest(self, since: datetime | str | None = None) -> dict[str, Any]:
        """What waits for the steward's station: ``counts`` by state and the ``waiting`` decisions."""
        params = None if since is None else {"since": since if isinstance(since, str) else since.isoformat()}
        result: dict[str, Any] = self._json("GET", "/access-requests/digest", params=params)
        return result

    def move(self, request_id: str, decision_id: str, verb: str, *, comment: str = "") -> dict[str, Any]:
        """Make one move on a decision; return the request.

        Parameters
        ----------
        verb
            A steward's ``decline``, ``request-information`` (the comment is the question),
            ``offer-conditions`` (without a signed grant: see :meth:`offer_conditions_with_grant`)
            or ``approve`` (likewise: :meth:`approve_with_grant`); a researcher's ``answer``,
            ``accept`` or ``decline-offer``. Underscores work as well as hyphens.
        comment
            Why, or the question, answer or conditions; the hub says which moves need one.

        Raises
        ------
        ClientError
            For an unknown verb, or when the hub refuses the move (who may, from which state).
        """
        action = verb.replace("_", "-")
        if action not in _DECISION_MOVES:
            raise ClientError(f"no decision move {verb!r}: choose one of {', '.join(sorted(_DECISION_MOVES))}")
        path = f"/access-requests/{request_id}/decisions/{decision_id}/{action}"
        result: dict[str, Any] = self._json("POST", path, json={"comment": comment or None})
        return result

    def approve_with_grant(
        self,
        request: dict[str, Any],
        decision: dict[str, Any],
        *,
        keys: KeyPair,
        steward: str,
        valid_days: int = 365,
        comment: str = "",
    ) -> dict[str, Any]:
        """Approve one decision with a grant signed here, by the steward's own key.

        The grant names the project, the station and collection, the researcher and the key id of
        the researcher's signing key (as the hub reports it: compare it with the one the researcher
        gave you), the project's intended use as its purpose, and a validity period that ends by
        the project's end date. Stations run jobs only with grants their operator's trusted
        steward keys signed.

        Parameters
        ----------
        request, decision
            The request as :meth:`read_access_requests` gives it, and one of its decisions.

        Raises
        ------
        ClientError
            When the request has no researcher key yet, or the hub refuses the grant.
        """
        signed = self._sign_grant(request, decision, keys=keys, steward=steward, valid_days=valid_days)
        path = f"/access-requests/{request['id']}/decisions/{decision['id']}/approve"
        result: dict[str, Any] = self._json("POST", path, json={"comment": comment or None, "signed_grant": signed})
        return result

    def offer_conditions_with_grant(
        self,
        request: dict[str, Any],
        decision: dict[str, Any],
        conditions: str,
        *,
        keys: KeyPair,
        steward: str,
        valid_days: int = 365,
    ) -> dict[str, Any]:
        """Offer a grant signed here on ``conditions``; it starts when the researcher accepts them.

        The grant is built as in :meth:`approve_with_grant`.

        Raises
        ------
        ClientError
            When the conditions are empty, the request has no researcher key yet, or the hub
            refuses the grant.
        """
        if not conditions.strip():
            raise ClientError("say what the conditions are: the researcher accepts or declines them")
        signed = self._sign_grant(request, decision, keys=keys, steward=steward, valid_days=valid_days)
        path = f"/access-requests/{request['id']}/decisions/{decision['id']}/offer-conditions"
        result: dict[str, Any] = self._json("POST", path, json={"comment": conditions, "signed_grant": signed})
        return result

    def _sign_grant(
        self, request: dict[str, Any], decision: dict[str, Any], *, keys: KeyPair, steward: str, valid_days: int
    ) -> dict[str, Any]:
        if not request.get("requester_key_id"):
            raise ClientError(f"researcher {request['requester']!r} has no signing key registered yet")
        now = utc_now()
        not_after = now + timedelta(days=valid_days)
        if request.get("project_end_date"):
            # The project's last day counts in full: the grant may run until the midnight after it.
            end = date.fromisoformat(request["project_end_date"]) + timedelta(days=1)
            not_after = min(not_after, datetime.combine(end, time(), tzinfo=UTC))
        grant = Grant(
            grant_id=decision["id"],
            project_id=request["project_id"],
            station=decision["station"],
            collection=decision["collection"],
            researcher=request["requester"],
            researcher_key_id=request["requester_key_id"],
            purpose=tuple(request.get("project_data_use") or ()),
            steward=steward,
            steward_key_id=keys.key_id,
            not_before=now - timedelta(minutes=5),
            not_after=not_after,
            issued_at=now,
        )
        signed: dict[str, Any] = sign_grant(grant, keys.signing).model_dump(mode="json")
        return signed

    # grants
    def read_grants(self, state: str | None = None) -> list[dict[str, Any]]:
        """Grants visible to the current user (their projects', their station's), optionally in ``state``."""
        params = {"state": state} if state else None
        data: list[dict[str, Any]] = self._json("GET", "/grants", params=params)["data"]
        return data

    def read_grant(self, grant_id: str) -> dict[str, Any]:
        """One grant."""
        result: dict[str, Any] = self._json("GET", f"/grants/{grant_id}")
        return result

    def suspend_grant(self, grant_id: str, *, comment: str) -> dict[str, Any]:
        """Pause a grant (a steward, saying why): the project's jobs on the collection stop, none start."""
        return self._grant_move(grant_id, "suspend", comment)

    def resume_grant(self, grant_id: str, *, comment: str = "") -> dict[str, Any]:
        """End a grant's pause (a steward)."""
        return self._grant_move(grant_id, "resume", comment)

    def revoke_grant(self, grant_id: str, *, comment: str) -> dict[str, Any]:
        """End a grant for good (a steward, saying why): the project's jobs on the collection stop."""
        return self._grant_move(grant_id, "revoke", comment)

    def _grant_move(self, grant_id: str, action: str, comment: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"/grants/{grant_id}/{action}", json={"comment": comment or None})
        return result

    # trains and results
    def upload_artifact(self, data: bytes) -> str:
        """Upload bytes under their content address; return the address."""
        address = content_address(data)
        headers = {"Content-Type": "application/octet-stream"}
        self._request("PUT", f"/artifacts/{address}", content=data, headers=headers)
        return address

    def submit_train(
        self,
        train_dir: Path,
        *,
        keys: KeyPair,
        researcher: str,
        project_id: str,
        collections: list[str],
        parameters: dict[str, Any] | None = None,
        image_archive: bytes | None = None,
        image_digest: str | None = None,
        image_ref: str | None = None,
        co_recipients: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Bundle a train folder, upload it, sign its manifest and submit it.

        ``parameters`` are checked against the train's declared schema here, before anything
        is uploaded. With ``image_archive`` (a ``docker save`` tar) and ``image_digest`` (the
        image id), the archive is uploaded as an artifact and the manifest names the image.
        With ``image_ref`` (``registry/repository@sha256:…``) and ``image_digest``, stations that
        pull from registries fetch the image there instead. ``co_recipients`` are other members
        of the project for whom the stations also seal the results (their registered encryption
        keys, read from the project, go into the signed manifest).
        """
        config = read_train_config(train_dir)
        values = config.parameters_with(parameters)
        recipients: list[Recipient] = []
        if co_recipients:
            member_keys = self.read_project(project_id).get("member_keys", {})
            for name in dict.fromkeys(co_recipients):
                key = member_keys.get(name)
                if not key:
                    known = ", ".join(sorted(n for n in member_keys if n != researcher)) or "none"
                    raise ClientError(
                        f"{name!r} is not a member of project {project_id} with registered keys "
                        f"(members with keys: {known})",
                        status=None,
                    )
                recipients.append(Recipient(name=name, encryption_public_key=key))
        bundle_hash = self.upload_artifact(build_bundle(train_dir))
        if image_archive is not None:
            if image_digest is None:
                raise ProtocolError("an image archive needs the image's digest (its id, sha256:...)")
            self.upload_artifact(image_archive)
        if image_ref is not None and image_digest is None:
            raise ProtocolError("a registry reference needs the image's id (sha256:...), which stations check")
        manifest = TrainManifest(
            name=config.name,
            version=config.version,
            kind=config.kind,
            entrypoint=config.entrypoint,
            bundle_hash=bundle_hash,
            outputs=config.outputs,
            parameters=values,
            image_digest=image_digest,
            image_archive=None if image_archive is None else content_address(image_archive),
            image_ref=image_ref,
            resources=config.resources,
            federated=config.federated,
            co_recipients=tuple(recipients),
            project_id=project_id,
            collections=tuple(collections),
            researcher=researcher,
            signing_public_key=keys.signing_public,
            encryption_public_key=keys.encryption_public,
            created_at=utc_now(),
            nonce=secrets.token_hex(16),
        )
        return self.create_train(sign_manifest(manifest, keys.signing))

    def create_train(self, signed: SignedManifest) -> dict[str, Any]:
        """Submit a signed manifest; the hub creates one job per collection."""
        result: dict[str, Any] = self._json("POST", "/trains", json=signed.model_dump(mode="json"))
        return result

    def read_train(self, train_id: str) -> dict[str, Any]:
        """A train with the status of each of its jobs."""
        result: dict[str, Any] = self._json("GET", f"/trains/{train_id}")
        return result

    def read_train_rounds(self, train_id: str) -> dict[str, Any]:
        """A federated train's rounds: participants, aggregated and per-station metrics, bytes moved."""
        result: dict[str, Any] = self._json("GET", f"/trains/{train_id}/rounds")
        return result

    def read_models(self, project_id: str | None = None) -> dict[str, Any]:
        """The registered models of the caller's projects (``data`` and ``count``)."""
        params = {"project_id": project_id} if project_id else None
        result: dict[str, Any] = self._json("GET", "/models", params=params)
        return result

    def read_model(self, model_id: str) -> dict[str, Any]:
        """One registered model with its provenance."""
        result: dict[str, Any] = self._json("GET", f"/models/{model_id}")
        return result

    def fetch_model_weights(self, model_id: str) -> bytes:
        """Download a registered model's safetensors weights and check them against their content address."""
        model = self.read_model(model_id)
        response = self._request("GET", f"/models/{model_id}/weights")
        verify_content_address(response.content, model["address"])
        return response.content

    def download_model_weights(self, model_id: str, target: Path) -> Path:
        """Stream a registered model's weights to ``target``, hashing on the way; resume a partial download.

        The bytes land in ``<target>.part`` (a later call resumes it with an HTTP ``Range`` request) and
        take the name ``target`` only once they match the model's content address; nothing is held whole.
        """
        model = self.read_model(model_id)
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        have = partial.stat().st_size if partial.is_file() else 0
        if have:
            with partial.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        headers = {"Range": f"bytes={have}-"} if have else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        path = f"/models/{model_id}/weights"
        try:
            with self._http.stream("GET", path, headers=headers) as response:
                if response.status_code == 416:
                    partial.unlink(missing_ok=True)
                    return self.download_model_weights(model_id, target)
                if response.is_error:
                    response.read()
                    raise ClientError(
                        f"GET {path} failed ({response.status_code}): {_detail(response)}", status=response.status_code
                    )
                if response.status_code != 206:
                    digest, have = hashlib.sha256(), 0
                target.parent.mkdir(parents=True, exist_ok=True)
                with partial.open("r+b" if have else "wb") as out:
                    out.seek(have)
                    out.truncate()
                    for block in response.iter_bytes(1 << 20):
                        digest.update(block)
                        out.write(block)
        except httpx.HTTPError as exc:
            raise ClientError(f"the download of model {model_id} broke off (run it again to resume): {exc}") from exc
        got = "sha256:" + digest.hexdigest()
        if got != model["address"]:
            partial.unlink(missing_ok=True)
            raise ClientError(f"the weights of model {model_id} do not match their address {model['address']}: {got}")
        partial.replace(target)
        return target

    def cancel_train(self, train_id: str) -> dict[str, Any]:
        """Cancel a train's unfinished jobs; return the train with its jobs."""
        result: dict[str, Any] = self._json("POST", f"/trains/{train_id}/cancel")
        return result

    def read_job_result(self, job_id: str) -> ResultEnvelope:
        """The sealed, signed envelope a station uploaded for a job."""
        return ResultEnvelope.model_validate(self._json("GET", f"/jobs/{job_id}/result"))

    def fetch_result(self, job_id: str, *, keys: KeyPair | Sequence[KeyPair]) -> JobResult:
        """Download a job's result, verify the station's signature and decrypt it locally.

        Raises
        ------
        SignatureError
            When the envelope is not signed by the station the job ran at.
        DecryptionError
            When the result was not sealed for ``keys`` (or any of them: pass the current and
            retired pairs after a rotation) or was changed.
        """
        envelope = self.read_job_result(job_id)
        stations = {station["name"]: station for station in self.read_stations()}
        if envelope.station not in stations:
            raise ProtocolError(f"the result names an unknown station {envelope.station!r}")
        verify_envelope(envelope, stations[envelope.station]["signing_public_key"])
        if envelope.sealed is None:
            reason = envelope.failure.reason if envelope.failure else "no reason given"
            raise ClientError(f"job {job_id} at {envelope.station} failed: {reason}")
        candidates = [keys] if isinstance(keys, KeyPair) else list(keys)
        mine = {key_id_for_public_key(pair.encryption_public): pair for pair in candidates}
        boxes = [envelope.sealed, *envelope.sealed_for]  # the researcher's, then each co-recipient's
        box = next((box for box in boxes if box.recipient_key_id in mine), envelope.sealed)
        chosen = mine.get(box.recipient_key_id, candidates[0])
        payload = ResultPayload.model_validate_json(open_sealed(box, chosen.encryption))
        if payload.job_id != envelope.job_id or payload.station != envelope.station:
            raise ProtocolError("the sealed result belongs to another job or station")
        return JobResult(payload=payload)


def _detail(response: httpx.Response) -> str:
    """The hub's reason: its ``detail``, with validation errors as ``field: message`` (one per problem)."""
    try:
        answer = response.json()
    except ValueError:
        return response.text
    detail = answer.get("detail", response.text) if isinstance(answer, dict) else answer
    if isinstance(detail, list):
        problems = []
        for item in detail:
            if not isinstance(item, dict):
                problems.append(str(item))
                continue
            where = ".".join(str(part) for part in item.get("loc", ())[1:]) or "the request"
            problems.append(f"{where}: {item.get('msg', item)}")
        return "; ".join(problems)
    return str(detail)


def _iso_date(value: date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
