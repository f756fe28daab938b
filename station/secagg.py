"""The station's part of secure aggregation: mask the round's update so the hub learns only the sum.

After the train ran and its plain update was taken from the outputs, :func:`mask_round_update` runs
the four steps of :mod:`protocol._secagg` with the hub (which relays every message; the station
never connects to another station): advertise signed round keys, send encrypted Shamir shares of its
secrets to the roster, upload the masked update, reveal the shares the hub may have — for each member
either the self-mask share (it survived) or the mask-key share (it dropped), never both.

The round's secrets live in ``secagg/<job>.json`` under the station's state (mode 0600), with every
step's outcome, so a station restarted in the middle resumes the protocol with the same keys.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from numpy.typing import NDArray
from pydantic import ValidationError

from protocol import (
    DEFAULT_CHUNK_BYTES,
    DecryptionError,
    FederatedPlan,
    Job,
    KeyPair,
    ModelUpdateRef,
    SecAggAdvert,
    SecAggMeta,
    SecAggPhase,
    SecAggReveal,
    SecAggRoster,
    SecAggShares,
    SecAggSharesFor,
    SecAggSurvivors,
    SecAggUpload,
    SignatureError,
    TrainyardError,
    advert_bytes,
    agree_seed,
    content_address,
    decrypt_share,
    encrypt_share,
    mask_update,
    public_key_text,
    quantise,
    raw_private_key,
    scale_for,
    sign_bytes,
    split_secret,
    threshold_for,
    verify_bytes,
)
from trainkit.compression import read_safetensors, write_safetensors

from .outbox import file_name_for_job
from .state import write_private_file
from .transfer import TransferError, TransferRefused, answer_summary, upload_file

__all__ = ["SecAggRefused", "forget_round", "mask_round_update", "reveal_for", "secagg_state_file"]

logger = logging.getLogger(__name__)

_DTYPE_NAMES = {"int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


class SecAggRefused(TrainyardError):
    """Secure aggregation cannot complete: the hub misbehaved, ended the round, or never finished a step."""


def secagg_state_file(state_root: Path, job_id: str) -> Path:
    """Where one job's round secrets and progress are kept."""
    return state_root / "secagg" / f"{file_name_for_job(job_id)}.json"


def _context(job: Job) -> bytes:
    assert job.round is not None
    return f"trainyard/secagg/{job.train_id}/{job.round.number}".encode()


@dataclass
class _Session:
    """One job's secrets and what each step settled (saved after every step)."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> _Session:
        if path.is_file():
            return cls(path, json.loads(path.read_text(encoding="utf-8")))
        session = cls(path)
        session.values = {
            "c": raw_private_key(X25519PrivateKey.generate()).hex(),
            "s": raw_private_key(X25519PrivateKey.generate()).hex(),
            "b": secrets.token_bytes(32).hex(),
        }
        session.save()
        return session

    def save(self) -> None:
        write_private_file(self.path, json.dumps(self.values).encode("utf-8"))

    def key(self, name: str) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(bytes.fromhex(self.values[name]))


class _Protocol:
    """The four steps for one job, over the station's signed HTTP client."""

    def __init__(
        self,
        *,
        client: httpx.Client,
        job: Job,
        keys: KeyPair,
        session: _Session,
        wait_s: float,
        poll_s: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.client, self.job, self.keys, self.session = client, job, keys, session
        self.wait_s, self.poll_s, self._sleep = wait_s, poll_s, sleep
        self.plan = job.signed_manifest.manifest.federated or FederatedPlan()
        self.me = f"{job.station}/{job.collection}"
        self.base = f"/stations/me/jobs/{quote(job.job_id, safe='')}"
        assert job.round is not None
        self.number = job.round.number

    # -- HTTP -------------------------------------------------------------------------------------

    def _put(self, step: str, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                response = self.client.put(f"{self.base}/secagg/{step}", json=body)
            except httpx.HTTPError as exc:
                logger.warning("secure aggregation %s of job %s: %s", step, self.job.job_id, type(exc).__name__)
            else:
                if response.status_code == 200:
                    return
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    raise SecAggRefused(f"the hub refused the {step} step: {answer_summary(response)}")
            if time.monotonic() > deadline:
                raise SecAggRefused(f"the hub did not take the {step} step within {self.wait_s:g} s")
            self._sleep(self.poll_s)

    def _wait_for(self, publication: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                response = self.client.get(f"{self.base}/secagg/{publication}")
            except httpx.HTTPError as exc:
                logger.warning("secure aggregation %s of job %s: %s", publication, self.job.job_id, type(exc).__name__)
            else:
                if response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    ended = answer_summary(response)
                    raise SecAggRefused(f"the hub ended secure aggregation at the {publication}: {ended}")
            if time.monotonic() > deadline:
                raise SecAggRefused(
                    f"the hub did not publish the {publication} of secure aggregation within {self.wait_s:g} s"
                )
            self._sleep(self.poll_s)

    def _upload_artifact(self, path: Path, address: str) -> None:
        """The masked update as an artifact: one request up to a chunk, a resumable upload above."""
        if path.stat().st_size <= DEFAULT_CHUNK_BYTES:
            response = self.client.put(
                f"{self.base}/update/{address}",
                content=path.read_bytes(),
                headers={"content-type": "application/octet-stream"},
            )
            if response.status_code in (200, 201):
                return
            if response.status_code != 413:
                raise SecAggRefused(f"the hub refused the masked update: {answer_summary(response)}")
        try:
            upload_file(self.client, self.job.job_id, path, address=address)
        except (TransferRefused, TransferError) as exc:
            raise SecAggRefused(f"the hub did not take the masked update: {exc}") from exc

    # -- the steps --------------------------------------------------------------------------------

    def advertise(self, num_examples: int) -> None:
        """Step 1: the round's public keys and example count, signed with the station's key."""
        if self.session.values.get("advertised"):
            self._put(SecAggPhase.KEYS, self.session.values["advertised"])
            return
        c_public, s_public = public_key_text(self.session.key("c")), public_key_text(self.session.key("s"))
        signed = advert_bytes(
            train_id=self.job.train_id,
            round_number=self.number,
            participant=self.me,
            c_public=c_public,
            s_public=s_public,
            num_examples=num_examples,
        )
        advert = SecAggAdvert(
            participant=self.me,
            c_public=c_public,
            s_public=s_public,
            num_examples=num_examples,
            signature=sign_bytes(self.keys.signing, signed),
        )
        body = advert.model_dump(mode="json")
        self.session.values["advertised"] = body
        self.session.save()
        self._put(SecAggPhase.KEYS, body)

    def read_roster(self) -> SecAggRoster:
        """The roster U1: every member's advert verifies under its station's key, ours is in it unchanged."""
        if "roster" not in self.session.values:
            try:
                roster = SecAggRoster.model_validate(self._wait_for(SecAggPhase.ROSTER))
            except ValidationError as exc:
                raise SecAggRefused(f"the hub's roster is malformed ({exc.error_count()} errors)") from exc
            self._check_roster(roster)
            self.session.values["roster"] = roster.model_dump(mode="json")
            self.session.save()
        return SecAggRoster.model_validate(self.session.values["roster"])

    def _check_roster(self, roster: SecAggRoster) -> None:
        if roster.train_id != self.job.train_id or roster.round != self.number:
            raise SecAggRefused("the hub's roster is for another train or round")
        names = [member.advert.participant for member in roster.members]
        if len(set(names)) != len(names) or self.me not in names:
            raise SecAggRefused("the hub's roster repeats a member or leaves this station out")
        foreign = sorted(set(names) - set(self.job.signed_manifest.manifest.collections))
        if foreign:  # the researcher signed which collections take part; the hub cannot add members
            raise SecAggRefused(f"the hub's roster lists {', '.join(foreign)}, which the signed train does not name")
        for member in roster.members:
            advert = member.advert
            if advert.participant.split("/", 1)[0] != member.station:
                raise SecAggRefused(f"the roster lists {advert.participant} under station {member.station}")
            signed = advert_bytes(
                train_id=roster.train_id,
                round_number=roster.round,
                participant=advert.participant,
                c_public=advert.c_public,
                s_public=advert.s_public,
                num_examples=advert.num_examples,
            )
            try:
                verify_bytes(member.station_signing_key, signed, advert.signature)
            except SignatureError as exc:
                raise SecAggRefused(f"the keys of {advert.participant} in the roster are not signed by it") from exc
        mine = next(m.advert for m in roster.members if m.advert.participant == self.me)
        if mine.model_dump(mode="json") != self.session.values["advertised"]:
            raise SecAggRefused("the roster carries other keys for this station than it sent")
        if roster.threshold != threshold_for(len(names), self.plan.min_stations):
            raise SecAggRefused(f"the hub asks for a threshold of {roster.threshold}, not the protocol's")

    def send_shares(self, roster: SecAggRoster) -> None:
        """Step 2: Shamir shares of the mask key and the self-mask seed, encrypted for each other member."""
        if "shares_sent" not in self.session.values:
            count = len(roster.members)
            s_shares = split_secret(bytes.fromhex(self.session.values["s"]), threshold=roster.threshold, count=count)
            b_shares = split_secret(bytes.fromhex(self.session.values["b"]), threshold=roster.threshold, count=count)
            boxes = []
            for index, member in enumerate(roster.members):
                plain = {"s": format(s_shares[index], "x"), "b": format(b_shares[index], "x")}
                if member.advert.participant == self.me:
                    self.session.values["own_share"] = plain
                    continue
                key = agree_seed(
                    self.session.key("c"), member.advert.c_public, context=_context(self.job), purpose="share"
                )
                boxes.append(
                    encrypt_share(
                        plain, key=key, context=_context(self.job), sender=self.me, recipient=member.advert.participant
                    )
                )
            boxes.sort(key=lambda box: box.recipient)
            self.session.values["shares_sent"] = SecAggShares(shares=tuple(boxes)).model_dump(mode="json")
            self.session.save()
        self._put(SecAggPhase.SHARES, self.session.values["shares_sent"])

    def read_shares(self, roster: SecAggRoster) -> tuple[list[str], int]:
        """U2 and its example count (checked against the roster), and the shares others sent us (opened)."""
        if "senders" not in self.session.values:
            try:
                answer = SecAggSharesFor.model_validate(self._wait_for(SecAggPhase.SHARES))
            except ValidationError as exc:
                raise SecAggRefused(f"the hub's shares are malformed ({exc.error_count()} errors)") from exc
            adverts = {m.advert.participant: m.advert for m in roster.members}
            senders = list(answer.senders)
            if not set(senders) <= set(adverts) or self.me not in senders or len(set(senders)) != len(senders):
                raise SecAggRefused("the hub's list of members that shared is not part of the roster")
            if len(senders) < roster.threshold:
                raise SecAggRefused(f"only {len(senders)} members shared, fewer than the threshold {roster.threshold}")
            if answer.total_examples != sum(adverts[m].num_examples for m in senders):
                raise SecAggRefused("the hub's total example count is not the sum the members advertised")
            received: dict[str, dict[str, str]] = {self.me: self.session.values["own_share"]}
            for box in answer.shares:
                if box.recipient != self.me or box.sender not in senders or box.sender in received:
                    raise SecAggRefused(f"the hub relayed a share from {box.sender} to {box.recipient} here")
                key = agree_seed(
                    self.session.key("c"), adverts[box.sender].c_public, context=_context(self.job), purpose="share"
                )
                try:
                    plain = decrypt_share(box, key=key, context=_context(self.job))
                except DecryptionError as exc:
                    raise SecAggRefused(str(exc)) from exc
                received[box.sender] = {"s": str(plain.get("s", "")), "b": str(plain.get("b", ""))}
            if set(received) != set(senders):
                raise SecAggRefused("the hub did not relay a share from every member that shared")
            self.session.values.update(senders=senders, total=answer.total_examples, received=received)
            self.session.save()
        return list(self.session.values["senders"]), int(self.session.values["total"])

    def send_masked(
        self,
        roster: SecAggRoster,
        senders: list[str],
        total: int,
        *,
        update: bytes,
        num_examples: int,
        base: bytes | None,
    ) -> tuple[bytes, ModelUpdateRef]:
        """Step 3: y = q(w/W · (update - global)) + PRG(b) + Σ±PRG(s_uv) over U2, uploaded as uint32 safetensors."""
        path = self.session.path.with_suffix(".masked")
        if path.is_file():
            data = path.read_bytes()
        else:
            data = self._masked_bytes(roster, senders, total, update=update, num_examples=num_examples, base=base)
            write_private_file(path, data)
        ref = ModelUpdateRef(address=content_address(data), size=len(data), num_examples=num_examples)
        self._upload_artifact(path, ref.address)
        self._put(SecAggPhase.MASKED, SecAggUpload(update=ref).model_dump(mode="json"))
        return data, ref

    def _masked_bytes(
        self,
        roster: SecAggRoster,
        senders: list[str],
        total: int,
        *,
        update: bytes,
        num_examples: int,
        base: bytes | None,
    ) -> bytes:
        try:
            tensors, meta = read_safetensors(update)
            global_tensors = read_safetensors(base)[0] if base is not None else None
        except ValueError as exc:
            raise SecAggRefused(f"the update cannot be masked: {exc}") from exc
        if meta.get("update_kind", "weights") == "delta":
            if global_tensors is None:
                raise SecAggRefused("the train wrote a change (update_kind = delta) but the round has no global model")
            tensors = {
                k: (v.astype(np.float64) + global_tensors[k].astype(np.float64)) if k in global_tensors else v
                for k, v in tensors.items()
            }
        keys = sorted(tensors)
        dtypes = {
            k: "F32" if np.issubdtype(tensors[k].dtype, np.floating) else _DTYPE_NAMES.get(str(tensors[k].dtype), "F32")
            for k in keys
        }
        parts: list[NDArray[np.float64]] = []
        for key in keys:
            values = tensors[key].astype(np.float64)
            if global_tensors is not None:
                if key not in global_tensors or global_tensors[key].shape != values.shape:
                    raise SecAggRefused(f"the update's {key!r} does not match the global model")
                values = values - global_tensors[key].astype(np.float64)
            parts.append(values.reshape(-1))
        flat = np.concatenate(parts) if parts else np.zeros(0)
        clip = self.plan.secagg_clip
        fixed = quantise(flat, weight=num_examples / total, scale=scale_for(clip, len(roster.members)), clip=clip)
        adverts = {m.advert.participant: m.advert for m in roster.members}
        pairs = {
            peer: agree_seed(self.session.key("s"), adverts[peer].s_public, context=_context(self.job))
            for peer in senders
            if peer != self.me
        }
        masked = mask_update(fixed, self_seed=bytes.fromhex(self.session.values["b"]), pair_seeds=pairs, me=self.me)
        out: dict[str, NDArray[np.generic]] = {}
        offset = 0
        for key in keys:
            size = tensors[key].size
            out[key] = masked[offset : offset + size].reshape(tensors[key].shape)
            offset += size
        metadata = {
            "update_kind": "secagg",
            SecAggMeta.BASE.value: "delta" if global_tensors is not None else "weights",
            SecAggMeta.DTYPES.value: json.dumps(dtypes, sort_keys=True),
        }
        return write_safetensors(out, metadata)

    def reveal(self, senders: list[str]) -> None:
        """Step 4: the self-mask shares of the survivors and the key shares of the dropped — never both of one."""
        try:
            answer = SecAggSurvivors.model_validate(self._wait_for(SecAggPhase.SURVIVORS))
        except ValidationError as exc:
            raise SecAggRefused(f"the hub's survivors are malformed ({exc.error_count()} errors)") from exc
        reveal = reveal_for(
            answer,
            senders=senders,
            me=self.me,
            threshold=int(self.session.values["roster"]["threshold"]),
            received=self.session.values["received"],
            earlier=self.session.values.get("revealed"),
        )
        self.session.values["revealed"] = sorted(answer.survivors)
        self.session.save()
        self._put(SecAggPhase.UNMASK, reveal.model_dump(mode="json"))


def reveal_for(
    answer: SecAggSurvivors,
    *,
    senders: list[str],
    me: str,
    threshold: int,
    received: dict[str, dict[str, str]],
    earlier: list[str] | None,
) -> SecAggReveal:
    """The shares to reveal for the hub's survivors; refuse whatever would unmask one member's update.

    Raises
    ------
    SecAggRefused
        When the hub names a member both survived and dropped, asks again with other survivors than
        before, names members outside U2, leaves this station out, or keeps fewer than the threshold.
    """
    survivors, dropped = set(answer.survivors), set(answer.dropped)
    both = sorted(survivors & dropped)
    if both:
        raise SecAggRefused(
            f"the hub asked for both shares of {', '.join(both)} (its self-mask seed and its mask key): refused, "
            "together they would reveal that station's update"
        )
    if earlier is not None and sorted(survivors) != sorted(earlier):
        raise SecAggRefused(
            "the hub asked again with other survivors than before: refused, the two answers together could "
            "reveal a station's update"
        )
    if survivors | dropped != set(senders):
        raise SecAggRefused("the hub's survivors and dropped members are not the members that shared")
    if me not in survivors or len(survivors) < threshold:
        raise SecAggRefused(
            f"the hub keeps {len(survivors)} survivors, fewer than the threshold {threshold}, or not us"
        )
    return SecAggReveal(
        self_mask_shares={member: received[member]["b"] for member in sorted(survivors)},
        key_shares={member: received[member]["s"] for member in sorted(dropped)},
    )


def mask_round_update(
    *,
    client: httpx.Client,
    job: Job,
    keys: KeyPair,
    state_root: Path,
    update: bytes,
    num_examples: int,
    base: bytes | None,
    poll_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bytes, ModelUpdateRef]:
    """Run secure aggregation for one round's job; return the masked update and its reference.

    Parameters
    ----------
    client
        The station's signed HTTP client for the hub.
    job
        The round's job (its plan has ``secagg = true``).
    keys
        The station's keys; the round keys are signed with its Ed25519 key.
    state_root
        The station's state directory; the round's secrets are kept there until the job is answered.
    update
        The plain update the train wrote (safetensors weights, or a change with ``update_kind = delta``).
    num_examples
        The update's example count (its weight in the sum).
    base
        The round's global model (safetensors), or None in a first round without one.

    Raises
    ------
    SecAggRefused
        When the hub misbehaves, ends the round, or does not finish a step within the round's deadline.
    """
    plan = job.signed_manifest.manifest.federated or FederatedPlan()
    session = _Session.load(secagg_state_file(state_root, job.job_id))
    steps = _Protocol(
        client=client, job=job, keys=keys, session=session, wait_s=plan.round_deadline_s, poll_s=poll_s, sleep=sleep
    )
    steps.advertise(num_examples)
    roster = steps.read_roster()
    steps.send_shares(roster)
    senders, total = steps.read_shares(roster)
    data, ref = steps.send_masked(roster, senders, total, update=update, num_examples=num_examples, base=base)
    steps.reveal(senders)
    return data, ref


def forget_round(state_root: Path, job_id: str) -> None:
    """Remove a job's round secrets once its answer is kept (they are useless after the round)."""
    path = secagg_state_file(state_root, job_id)
    path.unlink(missing_ok=True)
    path.with_suffix(".masked").unlink(missing_ok=True)
