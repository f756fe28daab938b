"""Secure aggregation at the hub: relay the stations' protocol messages, then unmask only the sum.

The hub never sees a station's plain update. It keeps each step's messages (``SecAggMessage``),
moves a round's protocol (``SecAggRound``) to its next step when every member still expected has
answered or the step's deadline passed with at least the threshold of them, and in the end rebuilds
from ``t`` shares the self-mask seeds of the survivors and the mask keys of the members that dropped
after sharing, removes those masks from the ring sum of the masked updates and divides by the
survivors' share of the examples. See :mod:`protocol._secagg` for the protocol itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from numpy.typing import NDArray
from pydantic import BaseModel, ValidationError
from sqlmodel import Session, select

from hub.blobs import BlobStore
from hub.models import FLRound, Job, SecAggMessage, SecAggRound, SecAggStep, Station
from protocol import (
    FederatedPlan,
    JobStatus,
    ProtocolError,
    SecAggAdvert,
    SecAggMember,
    SecAggMeta,
    SecAggPhase,
    SecAggReveal,
    SecAggRoster,
    SecAggShares,
    SecAggSharesFor,
    SecAggSurvivors,
    SecAggUpload,
    SignatureError,
    advert_bytes,
    agree_seed,
    dequantise,
    reconstruct_secret,
    scale_for,
    threshold_for,
    unmask_sum,
    utc_now,
    verify_bytes,
)
from trainkit.compression import read_safetensors

from ._plans import decode_state, encode_state

__all__ = ["SecAggError", "SecureAggregation", "secagg_context"]

logger = logging.getLogger(__name__)


_FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
_TORCH_DTYPES = {
    "F16": torch.float32,
    "F32": torch.float32,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_ORDER = [SecAggStep.KEYS, SecAggStep.SHARES, SecAggStep.MASKED, SecAggStep.UNMASK, SecAggStep.DONE]
_PUT_STEP = {
    SecAggPhase.KEYS: SecAggStep.KEYS,
    SecAggPhase.SHARES: SecAggStep.SHARES,
    SecAggPhase.MASKED: SecAggStep.MASKED,
    SecAggPhase.UNMASK: SecAggStep.UNMASK,
}
_GET_AFTER = {
    SecAggPhase.ROSTER: SecAggStep.SHARES,
    SecAggPhase.SHARES: SecAggStep.MASKED,
    SecAggPhase.SURVIVORS: SecAggStep.UNMASK,
}


class SecAggError(Exception):
    """A station's secure-aggregation request the hub refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def secagg_context(train_id: str, number: int) -> bytes:
    """What every seed and share of one round is bound to."""
    return f"trainyard/secagg/{train_id}/{number}".encode()


def _step_index(step: SecAggStep) -> int:
    return _ORDER.index(step) if step in _ORDER else len(_ORDER)


class SecureAggregation:
    """The hub's part of the protocol, for the coordinator and the station routes."""

    def __init__(self, artifacts: BlobStore) -> None:
        self.artifacts = artifacts

    def __repr__(self) -> str:
        return f"SecureAggregation(artifacts={self.artifacts!r})"

    # -- rows ---------------------------------------------------------------------------------

    @staticmethod
    def open_round(
        session: Session, *, train_id: str, number: int, round_deadline: datetime, base_model: str | None
    ) -> None:
        """Start a round's protocol (in the caller's transaction): it waits for keys until the round's deadline."""
        session.add(SecAggRound(train_id=train_id, round=number, step_deadline=round_deadline, base_model=base_model))

    @staticmethod
    def round_for(session: Session, train_id: str, number: int) -> SecAggRound | None:
        """The protocol state of one round."""
        query = select(SecAggRound).where(SecAggRound.train_id == train_id, SecAggRound.round == number)
        return session.exec(query).first()

    @staticmethod
    def _messages(session: Session, sa: SecAggRound, step: SecAggStep) -> list[SecAggMessage]:
        query = select(SecAggMessage).where(
            SecAggMessage.train_id == sa.train_id, SecAggMessage.round == sa.round, SecAggMessage.step == step.value
        )
        return list(session.exec(query))

    def _adverts(self, session: Session, sa: SecAggRound) -> dict[str, SecAggAdvert]:
        return {m.sender: SecAggAdvert.model_validate(m.body) for m in self._messages(session, sa, SecAggStep.KEYS)}

    # -- the station's requests ----------------------------------------------------------------

    def _round_of_job(self, session: Session, job: Job) -> SecAggRound:
        if job.fl_round is None:
            raise SecAggError(400, f"job {job.id!r} is not a federated round's job")
        sa = self.round_for(session, job.train_id, job.fl_round)
        if sa is None:
            raise SecAggError(400, f"the round of job {job.id!r} does not use secure aggregation")
        return sa

    def put_message(self, session: Session, *, job: Job, phase: str, body: Any) -> None:
        """Store one step's message of the job's station (the same message again is a no-op).

        Raises
        ------
        SecAggError
            When the message is malformed, unsigned, for another member, or the round moved past the step.
        """
        step = _PUT_STEP.get(phase)
        if step is None:
            raise SecAggError(404, f"no secure-aggregation step {phase!r} to send (keys, shares, masked, unmask)")
        sa = self._round_of_job(session, job)
        me = job.collection_id
        existing = session.exec(
            select(SecAggMessage).where(
                SecAggMessage.train_id == sa.train_id,
                SecAggMessage.round == sa.round,
                SecAggMessage.step == step.value,
                SecAggMessage.sender == me,
            )
        ).all()
        model = self._parse(step, body)
        if existing:
            if self._stored_body(step, existing) == model.model_dump(mode="json"):
                return  # a retry
            raise SecAggError(409, f"{me} already sent its {phase} for this round; they are final")
        if sa.step == SecAggStep.FAILED:
            raise SecAggError(410, f"secure aggregation of this round failed: {sa.reason}")
        if sa.step != step:
            raise SecAggError(409, f"the round's secure aggregation is at step {sa.step.value!r}, not {phase!r}")
        if job.status in _FINISHED:
            raise SecAggError(409, f"job {job.id!r} is {job.status.value}")
        rows = self._check(session, sa, job, step, model)
        session.add_all(rows)
        session.commit()

    @staticmethod
    def _parse(step: SecAggStep, body: Any) -> BaseModel:
        kinds: dict[SecAggStep, type[BaseModel]] = {
            SecAggStep.KEYS: SecAggAdvert,
            SecAggStep.SHARES: SecAggShares,
            SecAggStep.MASKED: SecAggUpload,
            SecAggStep.UNMASK: SecAggReveal,
        }
        try:
            return kinds[step].model_validate(body)
        except ValidationError as exc:
            raise SecAggError(422, f"the {step.value} message is malformed: {exc.error_count()} error(s)") from exc

    @staticmethod
    def _stored_body(step: SecAggStep, rows: Sequence[SecAggMessage]) -> dict[str, Any]:
        if step == SecAggStep.SHARES:
            ordered = sorted(rows, key=lambda r: r.recipient)
            return {"shares": [row.body for row in ordered]}
        return dict(rows[0].body)

    def _check(
        self, session: Session, sa: SecAggRound, job: Job, step: SecAggStep, model: BaseModel
    ) -> list[SecAggMessage]:
        me = job.collection_id

        def row(body: dict[str, Any], recipient: str = "") -> SecAggMessage:
            return SecAggMessage(
                train_id=sa.train_id, round=sa.round, step=step.value, sender=me, recipient=recipient, body=body
            )

        if isinstance(model, SecAggAdvert):
            if model.participant != me:
                raise SecAggError(403, f"job {job.id!r} speaks for {me}, not for {model.participant}")
            station = session.get(Station, job.station_id)
            if station is None:
                raise SecAggError(403, f"station {job.station_id!r} is not enrolled")
            signed = advert_bytes(
                train_id=sa.train_id,
                round_number=sa.round,
                participant=me,
                c_public=model.c_public,
                s_public=model.s_public,
                num_examples=model.num_examples,
            )
            try:
                verify_bytes(station.signing_public_key, signed, model.signature)
            except SignatureError as exc:
                raise SecAggError(403, f"the keys are not signed by station {station.id!r}: {exc}") from exc
            return [row(model.model_dump(mode="json"))]
        if isinstance(model, SecAggShares):
            if me not in sa.roster:
                raise SecAggError(409, f"{me} is not in this round's roster")
            wanted = sorted(set(sa.roster) - {me})
            recipients = sorted(share.recipient for share in model.shares)
            if recipients != wanted or any(share.sender != me for share in model.shares):
                raise SecAggError(400, "the shares must come from the sender, one for each other member of the roster")
            ordered = sorted(model.shares, key=lambda s: s.recipient)
            return [row(share.model_dump(mode="json"), share.recipient) for share in ordered]
        if isinstance(model, SecAggUpload):
            if me not in sa.senders:
                raise SecAggError(409, f"{me} did not share its keys in this round")
            ref = model.update
            if not self.artifacts.has(ref.address):
                raise SecAggError(409, f"the masked update {ref.address} is not uploaded: PUT it first")
            if self.artifacts.path_for(ref.address).stat().st_size != ref.size:
                raise SecAggError(400, "the masked update's size is not the one the message says")
            return [row(model.model_dump(mode="json"))]
        assert isinstance(model, SecAggReveal)
        if me not in sa.survivors:
            raise SecAggError(409, f"{me} sent no masked update in this round")
        dropped = set(sa.senders) - set(sa.survivors)
        if set(model.self_mask_shares) != set(sa.survivors) or set(model.key_shares) != dropped:
            raise SecAggError(
                400, "the reveal must hold a self-mask share of every survivor and a key share of each dropped"
            )
        return [row(model.model_dump(mode="json"))]

    def read_publication(self, session: Session, *, job: Job, phase: str) -> BaseModel | None:
        """What the hub publishes to the job's station after a step (None: not yet).

        Raises
        ------
        SecAggError
            When the step is unknown, the round failed, or the station is no longer a member.
        """
        after = _GET_AFTER.get(phase)
        if after is None:
            raise SecAggError(404, f"no secure-aggregation publication {phase!r} (roster, shares, survivors)")
        sa = self._round_of_job(session, job)
        if sa.step == SecAggStep.FAILED:
            raise SecAggError(410, f"secure aggregation of this round failed: {sa.reason}")
        if _step_index(sa.step) < _step_index(after):
            return None
        me = job.collection_id
        if phase == SecAggPhase.ROSTER:
            if me not in sa.roster:
                raise SecAggError(409, f"{me} did not send its keys before the round's deadline")
            adverts = self._adverts(session, sa)
            members = []
            for member in sa.roster:
                station_id = member.split("/", 1)[0]
                station = session.get(Station, station_id)
                if station is None:
                    raise SecAggError(500, f"station {station_id!r} of the roster is no longer enrolled")
                members.append(
                    SecAggMember(
                        advert=adverts[member], station=station_id, station_signing_key=station.signing_public_key
                    )
                )
            return SecAggRoster(train_id=sa.train_id, round=sa.round, threshold=sa.threshold, members=tuple(members))
        if phase == SecAggPhase.SHARES:
            if me not in sa.senders:
                raise SecAggError(409, f"{me} did not send its shares before the step's deadline")
            rows = [
                row
                for row in self._messages(session, sa, SecAggStep.SHARES)
                if row.recipient == me and row.sender in sa.senders
            ]
            return SecAggSharesFor(
                senders=tuple(sa.senders),
                total_examples=sa.total_examples,
                shares=tuple(SecAggShares.model_validate({"shares": [r.body for r in rows]}).shares),
            )
        if me not in sa.survivors:
            raise SecAggError(409, f"{me} did not send its masked update before the step's deadline")
        dropped = tuple(m for m in sa.senders if m not in sa.survivors)
        return SecAggSurvivors(survivors=tuple(sa.survivors), dropped=dropped)

    # -- moving on -------------------------------------------------------------------------------

    def progress(
        self, session: Session, *, sa: SecAggRound, plan: FederatedPlan, round_row: FLRound, jobs: Sequence[Job]
    ) -> SecAggStep:
        """Move the protocol as far as it can go now; return the step it is in (commits)."""
        while sa.step not in (SecAggStep.DONE, SecAggStep.FAILED):
            if not self._advance_step(session, sa, plan, round_row, jobs):
                break
        return sa.step

    def _advance_step(
        self, session: Session, sa: SecAggRound, plan: FederatedPlan, round_row: FLRound, jobs: Sequence[Job]
    ) -> bool:
        now = utc_now()
        by_member = {job.collection_id: job for job in jobs}
        expected = {
            SecAggStep.KEYS: list(by_member),
            SecAggStep.SHARES: sa.roster,
            SecAggStep.MASKED: sa.senders,
            SecAggStep.UNMASK: sa.survivors,
        }[sa.step]
        answered = {m.sender for m in self._messages(session, sa, sa.step)} & set(expected)
        waiting = [m for m in expected if m not in answered and by_member[m].status not in _FINISHED]
        if waiting and now < sa.step_deadline:
            return False
        members = sorted(answered)
        deadline = now + timedelta(seconds=plan.secagg_phase_s)
        if sa.step == SecAggStep.KEYS:
            if len(members) < max(2, plan.min_stations):
                return self._failed(
                    session,
                    sa,
                    f"only {len(members)} station(s) sent their keys; secure aggregation needs at least "
                    f"{max(2, plan.min_stations)}",
                )
            sa.roster, sa.threshold, sa.step = (
                members,
                threshold_for(len(members), plan.min_stations),
                SecAggStep.SHARES,
            )
        else:
            if len(members) < sa.threshold:
                return self._failed(
                    session,
                    sa,
                    f"only {len(members)} station(s) answered the {sa.step.value} step, fewer than the "
                    f"threshold of {sa.threshold}",
                )
            if sa.step == SecAggStep.SHARES:
                adverts = self._adverts(session, sa)
                sa.senders, sa.step = members, SecAggStep.MASKED
                sa.total_examples = sum(adverts[m].num_examples for m in members)
            elif sa.step == SecAggStep.MASKED:
                sa.survivors, sa.step = members, SecAggStep.UNMASK
            else:
                try:
                    sa.result = self._unmask(session, sa, plan, members)
                except (ProtocolError, ValueError) as exc:
                    return self._failed(session, sa, f"the masks cannot be removed: {exc}")
                sa.step = SecAggStep.DONE
        sa.step_deadline = deadline
        session.add(sa)
        self._drop_outsiders(session, sa, jobs)
        session.commit()
        logger.info("secure aggregation of %s round %d: now %s", sa.train_id, sa.round, sa.step.value)
        return True

    @staticmethod
    def _failed(session: Session, sa: SecAggRound, reason: str) -> bool:
        sa.step, sa.reason = SecAggStep.FAILED, reason
        session.add(sa)
        session.commit()
        return True

    @staticmethod
    def _drop_outsiders(session: Session, sa: SecAggRound, jobs: Sequence[Job]) -> None:
        """Cancel the jobs of members the protocol went on without (their station dropped out)."""
        members = {
            SecAggStep.SHARES: sa.roster,
            SecAggStep.MASKED: sa.senders,
            SecAggStep.UNMASK: sa.survivors,
            SecAggStep.DONE: sa.survivors,
        }.get(sa.step, [])
        now = utc_now()
        for job in jobs:
            if job.status in _FINISHED or job.collection_id in members:
                continue
            job.status = JobStatus.CANCELLED
            job.failure = {"reason": f"the station dropped out of secure aggregation (step {sa.step.value})"}
            job.updated_at, job.lease_expires_at = now, None
            session.add(job)

    # -- unmasking --------------------------------------------------------------------------------

    def _unmask(self, session: Session, sa: SecAggRound, plan: FederatedPlan, revealers: list[str]) -> str:
        """Rebuild the seeds, sum the survivors' masked updates, remove the masks; return the mean's address."""
        index = {member: i + 1 for i, member in enumerate(sa.roster)}
        reveals = {
            m.sender: SecAggReveal.model_validate(m.body)
            for m in self._messages(session, sa, SecAggStep.UNMASK)
            if m.sender in revealers
        }
        adverts = self._adverts(session, sa)
        dropped = [m for m in sa.senders if m not in sa.survivors]

        def rebuild(owner: str, kind: str) -> bytes:
            shares = {}
            for revealer, reveal in reveals.items():
                table = reveal.self_mask_shares if kind == "b" else reveal.key_shares
                shares[index[revealer]] = int(table[owner], 16)
            return reconstruct_secret(shares)

        context = secagg_context(sa.train_id, sa.round)
        self_seeds = [rebuild(member, "b") for member in sa.survivors]
        pairs: list[tuple[str, str, bytes]] = []
        for member in dropped:
            key = X25519PrivateKey.from_private_bytes(rebuild(member, "s"))
            for survivor in sa.survivors:
                pairs.append((survivor, member, agree_seed(key, adverts[survivor].s_public, context=context)))
        uploads = {
            m.sender: SecAggUpload.model_validate(m.body).update for m in self._messages(session, sa, SecAggStep.MASKED)
        }
        total: NDArray[np.uint32] | None = None
        layout: list[tuple[str, tuple[int, ...]]] = []
        meta: dict[str, str] = {}
        for member in sa.survivors:
            data = self.artifacts.read_bytes(uploads[member].address)
            tensors, metadata = read_safetensors(data)
            if any(t.dtype != np.uint32 for t in tensors.values()):
                raise ValueError(f"the masked update of {member} is not uint32 ring elements")
            shape = [(key, tuple(tensors[key].shape)) for key in sorted(tensors)]
            if total is None:
                layout, meta = shape, metadata
                total = np.zeros(sum(int(np.prod(s)) for _, s in layout), dtype=np.uint32)
            elif shape != layout:
                raise ValueError(f"the masked update of {member} has other tensors than the others")
            if not layout:
                raise ValueError(f"the masked update of {member} holds no tensors")
            total += np.concatenate([tensors[key].reshape(-1) for key, _ in layout])
        assert total is not None
        clean = unmask_sum(total, self_seeds=self_seeds, dropped_pairs=pairs)
        weight = sum(adverts[m].num_examples for m in sa.survivors) / sa.total_examples
        mean = dequantise(clean, scale=scale_for(plan.secagg_clip, len(sa.roster))) / weight
        state = self._state_from(mean, layout, meta, round_model=self._round_base(sa, meta))
        return self.artifacts.put_bytes(encode_state(state))

    def _round_base(self, sa: SecAggRound, meta: dict[str, str]) -> dict[str, torch.Tensor] | None:
        """The round's global model: the stations masked their change from it (round 1 without one: weights)."""
        kind = "delta" if sa.base_model is not None else "weights"
        if meta.get(SecAggMeta.BASE) != kind:
            raise ValueError(f"the masked updates must be {kind} ({SecAggMeta.BASE} = {kind})")
        if sa.base_model is None:
            return None
        return decode_state(self.artifacts.read_bytes(sa.base_model))

    @staticmethod
    def _state_from(
        mean: NDArray[np.float64],
        layout: list[tuple[str, tuple[int, ...]]],
        meta: dict[str, str],
        *,
        round_model: dict[str, torch.Tensor] | None,
    ) -> dict[str, torch.Tensor]:
        try:
            dtypes = json.loads(meta.get(SecAggMeta.DTYPES, "{}"))
        except ValueError as exc:
            raise ValueError(f"the masked update's dtypes are not JSON: {exc}") from exc
        state: dict[str, torch.Tensor] = {}
        offset = 0
        for key, shape in layout:
            size = int(np.prod(shape)) if shape else 1
            values = torch.from_numpy(mean[offset : offset + size].reshape(shape).copy())
            offset += size
            if round_model is not None:
                if key not in round_model:
                    raise ValueError(f"the masked update names {key!r}, which the global model lacks")
                values = values + round_model[key].double()
            dtype = _TORCH_DTYPES.get(str(dtypes.get(key, "F32")), torch.float32)
            state[key] = values.to(dtype) if dtype.is_floating_point else values.round().to(dtype)
        return state
