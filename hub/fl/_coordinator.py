"""Round orchestration: one job per station per round, aggregation, the next round, the registry.

Every step is a database transaction that can be repeated: a round is closed by the one caller
whose conditional update moves it from ``open`` (so two uploads arriving together aggregate once),
the new global model is a content-addressed artifact written before the row that names it, and
:meth:`RoundCoordinator.tick` (run at start-up and periodically) finishes whatever a hub restart
interrupted and closes rounds whose deadline passed.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import torch
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from hub import audit
from hub.blobs import BlobStore
from hub.models import (
    Collection,
    FLRound,
    FLRoundPublic,
    FLRun,
    FLRunPublic,
    FLUpdate,
    Job,
    ModelVersion,
    Project,
    RoundStatus,
    RunStatus,
    SecAggStep,
    Train,
)
from hub.strategies import RoundError, RoundFailure, is_batch_norm_parameter
from hub.strategies.dp import DifferentialPrivacy, epsilon_for
from protocol import FederatedPlan, JobStatus, ModelUpdateRef, RoundSpec, SignedManifest, UpdateKey, utc_now

from ._plans import (
    LazyResults,
    UpdateFormatError,
    check_update,
    decode_state,
    encode_state,
    rounds_for,
    strategy_for,
)
from ._secagg import SecureAggregation

__all__ = ["RoundCoordinator", "plan_of"]

logger = logging.getLogger(__name__)

_FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def plan_of(train: Train) -> FederatedPlan:
    """The train's signed federated plan (defaults when ``[federated]`` was left out)."""
    manifest = SignedManifest.model_validate(train.signed_manifest).manifest
    return manifest.federated or FederatedPlan()


class RoundCoordinator:
    """Runs the federated trains of one hub.

    Parameters
    ----------
    engine
        The hub's database.
    artifacts
        Where global models and station updates live (content-addressed).
    notify
        Called with the station ids that have new jobs (wakes their long-polls).
    """

    def __init__(self, engine: Engine, artifacts: BlobStore, *, notify: object = None) -> None:
        self.engine = engine
        self.artifacts = artifacts
        self._notify = notify
        self._lock = threading.Lock()
        self.secagg = SecureAggregation(artifacts)

    def __repr__(self) -> str:
        return f"RoundCoordinator(artifacts={self.artifacts!r})"

    # -- starting ---------------------------------------------------------------------------

    def start_run(self, *, session: Session, train: Train, collections: Sequence[Collection]) -> list[Job]:
        """Create the run and its first round's jobs (in the caller's transaction, not committed)."""
        plan = plan_of(train)
        ids = [collection.id for collection in collections]
        run = FLRun(
            train_id=train.id,
            strategy=plan.strategy,
            total_rounds=rounds_for(plan, ids),
            collections=ids,
            global_model=plan.initial_model,
        )
        session.add(run)
        return self._open_round(session, run, train, plan, 1)

    def _open_round(self, session: Session, run: FLRun, train: Train, plan: FederatedPlan, number: int) -> list[Job]:
        strategy = strategy_for(plan, run.collections)
        chosen = strategy.configure_round(number, run.collections, {})
        by_id = {row.id: row for row in session.exec(select(Collection).where(col(Collection.id).in_(list(chosen))))}
        jobs = []
        for collection_id, config in chosen.items():
            collection = by_id[collection_id]
            spec = RoundSpec(number=number, global_model=run.global_model, config=config)
            jobs.append(
                Job(
                    train_id=train.id,
                    station_id=collection.station_id,
                    collection_id=collection.id,
                    collection=collection.collection,
                    fl_round=number,
                    round_spec=spec.model_dump(mode="json"),
                )
            )
        session.add_all(jobs)
        size = self._size_of(run.global_model)
        deadline = utc_now() + timedelta(seconds=plan.round_deadline_s)
        session.add(
            FLRound(
                train_id=train.id, number=number, deadline=deadline, asked=list(chosen), bytes_down=size * len(jobs)
            )
        )
        if plan.secagg:
            self.secagg.open_round(
                session, train_id=train.id, number=number, round_deadline=deadline, base_model=run.global_model
            )
        run.current_round = number
        run.updated_at = utc_now()
        session.add(run)
        return jobs

    def _size_of(self, address: str | None) -> int:
        if address is None or not self.artifacts.has(address):
            return 0
        return self.artifacts.path_for(address).stat().st_size

    # -- updates ----------------------------------------------------------------------------

    def record_update(self, *, session: Session, job: Job, update_ref: ModelUpdateRef) -> None:
        """Remember a station's update for its job's round (idempotent), then try to close the round."""
        if session.get(FLUpdate, job.id) is None:
            session.add(
                FLUpdate(
                    job_id=job.id,
                    train_id=job.train_id,
                    round=job.fl_round or 0,
                    collection=job.collection_id,
                    address=update_ref.address,
                    size=update_ref.size,
                    num_examples=update_ref.num_examples,
                    metrics=dict(update_ref.metrics),
                )
            )
            session.commit()

    def advance(self, train_id: str, *, force_deadline: bool = False) -> FLRun | None:
        """Close the run's open round when it can be closed; open the next or finish the run."""
        with self._lock, Session(self.engine) as session:
            run = session.get(FLRun, train_id)
            train = session.get(Train, train_id)
            if run is None or train is None or run.status != RunStatus.RUNNING:
                return run
            round_row = self._round(session, train_id, run.current_round)
            if round_row is None or round_row.status != RoundStatus.OPEN:
                return run
            plan = plan_of(train)
            jobs = list(session.exec(select(Job).where(Job.train_id == train_id, Job.fl_round == run.current_round)))
            finished = [job for job in jobs if job.status in _FINISHED]
            late = utc_now() >= round_row.deadline or force_deadline
            updates = self._usable_updates(session, train_id, run.current_round, plan.max_staleness)
            fresh = [u for u in updates if u.round == run.current_round]
            if plan.secagg:
                if not self._secagg_ready(session, run, plan, round_row, jobs):
                    return run
                finished, late = jobs, True  # the protocol decided who is in; the rest are dropped
                updates = self._usable_updates(session, train_id, run.current_round, 0)
                fresh = updates
            if len(finished) < len(jobs) and not late:
                return run  # still waiting for stations within the deadline
            if late:
                self._drop_stragglers(session, jobs, keep_running=plan.max_staleness > 0)
            if not self._claim(session, round_row):
                return run
            self._close_round(session, run, train, plan, round_row, jobs, updates, fresh)
            return run

    def _secagg_ready(
        self, session: Session, run: FLRun, plan: FederatedPlan, round_row: FLRound, jobs: Sequence[Job]
    ) -> bool:
        """Move the round's secure aggregation on; True when the round can close (unmasked, or failed)."""
        sa = self.secagg.round_for(session, run.train_id, round_row.number)
        if sa is None:
            return False
        step = self.secagg.progress(session, sa=sa, plan=plan, round_row=round_row, jobs=jobs)
        if step == SecAggStep.FAILED:
            return True
        if step != SecAggStep.DONE:
            return False
        for job in jobs:
            session.refresh(job)
        # the survivors' envelopes follow their reveals; wait for them a step's time at most
        return all(job.status in _FINISHED for job in jobs) or utc_now() >= sa.step_deadline

    def _usable_updates(self, session: Session, train_id: str, number: int, staleness: int) -> list[FLUpdate]:
        query = select(FLUpdate).where(
            FLUpdate.train_id == train_id,
            col(FLUpdate.used_in_round).is_(None),
            col(FLUpdate.round) >= number - staleness,
            col(FLUpdate.round) <= number,
        )
        return sorted(session.exec(query), key=lambda u: (u.round, u.collection))

    def _drop_stragglers(self, session: Session, jobs: Sequence[Job], *, keep_running: bool) -> None:
        now = utc_now()
        for job in jobs:
            if job.status in _FINISHED:
                continue
            if keep_running and job.status == JobStatus.RUNNING:
                continue  # bounded staleness: its update may still join a later round
            job.status = JobStatus.CANCELLED
            job.failure = {"reason": "the round's deadline passed before this station delivered"}
            job.updated_at = now
            job.lease_expires_at = None
            session.add(job)
        session.commit()

    def _decodable_updates(
        self, updates: Sequence[FLUpdate], base: dict[str, torch.Tensor] | None, failures: list[RoundFailure]
    ) -> list[FLUpdate]:
        """The updates that decode against the round's model; each other one becomes its station's failure."""
        usable = []
        for item in updates:
            try:
                check_update(self.artifacts.path_for(item.address), base=base)
            except (UpdateFormatError, OSError) as exc:
                failures.append(RoundFailure(station=item.collection, reason=f"its update was refused: {exc}"))
                continue
            usable.append(item)
        return usable

    def _claim(self, session: Session, round_row: FLRound) -> bool:
        """Move the round out of ``open`` exactly once (other callers see 0 rows changed)."""
        changed = session.exec(
            update(FLRound)
            .where(col(FLRound.id) == round_row.id, col(FLRound.status) == RoundStatus.OPEN)
            .values(status=RoundStatus.AGGREGATED, finished_at=utc_now())
        ).rowcount
        session.commit()
        session.refresh(round_row)
        return bool(changed)

    def _close_round(
        self,
        session: Session,
        run: FLRun,
        train: Train,
        plan: FederatedPlan,
        round_row: FLRound,
        jobs: Sequence[Job],
        updates: Sequence[FLUpdate],
        fresh: Sequence[FLUpdate],
    ) -> None:
        number = round_row.number
        strategy = strategy_for(plan, run.collections)
        base = self._read_state(run.global_model)
        if plan.dp_clip_norm is not None and plan.dp_noise_multiplier is not None and base is not None:
            strategy = DifferentialPrivacy(
                strategy, base=base, clip_norm=plan.dp_clip_norm, noise_multiplier=plan.dp_noise_multiplier
            )
        delivered = {u.collection for u in fresh}
        failures = [
            RoundFailure(station=job.collection_id, reason=(job.failure or {}).get("reason", job.status.value))
            for job in jobs
            if job.collection_id not in delivered
        ]
        if not plan.secagg:
            updates = self._decodable_updates(updates, base, failures)
        entries = [(u.collection, u.num_examples, dict(u.metrics)) for u in updates]
        addresses = [u.address for u in updates]
        try:
            if plan.secagg:
                state, metrics, updates = self._secagg_result(
                    session, train.id, number, updates, failures, strategy=plan.strategy
                )
            else:
                results = LazyResults(entries, lambda i: self.artifacts.read_bytes(addresses[i]), base)
                state, metrics = strategy.aggregate_round(number, results, failures)
        except (RoundError, UpdateFormatError, ValueError) as exc:
            self._fail(session, run, round_row, f"round {number} could not be aggregated: {exc}")
            return
        address = self.artifacts.put_bytes(encode_state(state))  # durable before the rows naming it
        round_row.global_model = address
        round_row.contributed = [u.collection for u in updates]
        round_row.dropped = {f.station: f.reason for f in failures}
        round_row.metrics = metrics
        round_row.station_metrics = {u.collection: dict(u.metrics) for u in updates}
        round_row.bytes_up = sum(u.size for u in updates)
        session.add(round_row)
        for item in updates:
            item.used_in_round = number
            session.add(item)
        run.global_model = address
        stop = self._track_best(run, plan, metrics, number)
        if number >= run.total_rounds or stop:
            run.status = RunStatus.STOPPED_EARLY if stop and number < run.total_rounds else RunStatus.FINISHED
            run.reason = stop or None
            self._register(session, run, train, plan)
            new_jobs: list[Job] = []
        else:
            new_jobs = self._open_round(session, run, train, plan, number + 1)
        run.updated_at = utc_now()
        session.add(run)
        session.commit()
        audit.record_event(
            self.engine,
            actor="hub",
            role="hub",
            action="fl.round.aggregated",
            subject=train.id,
            details={"round": number, "stations": len(updates), "model": address},
        )
        if new_jobs and callable(self._notify):
            self._notify(job.station_id for job in new_jobs)

    def _secagg_result(
        self,
        session: Session,
        train_id: str,
        number: int,
        updates: Sequence[FLUpdate],
        failures: Sequence[RoundFailure],
        *,
        strategy: str,
    ) -> tuple[dict[str, torch.Tensor], dict[str, float], list[FLUpdate]]:
        """The unmasked mean of a secure-aggregation round, its metrics, and the survivors' (masked) updates."""
        sa = self.secagg.round_for(session, train_id, number)
        if sa is None or sa.step != SecAggStep.DONE or sa.result is None:
            reason = sa.reason if sa is not None and sa.reason else "the protocol did not finish"
            raise RoundError(f"secure aggregation failed: {reason}")
        survivors = set(sa.survivors)
        kept = [u for u in updates if u.collection in survivors]
        metrics = _weighted_metrics([(u.num_examples, dict(u.metrics)) for u in kept])
        metrics |= {"stations": float(len(survivors)), "failures": float(len(failures))}
        state = self._read_state(sa.result) or {}
        if strategy == "fedbn":  # batch norm stays at each station: it never enters the global model
            state = {key: value for key, value in state.items() if not is_batch_norm_parameter(key)}
        return state, metrics, kept

    def _track_best(self, run: FLRun, plan: FederatedPlan, metrics: dict[str, float], number: int) -> str:
        """Update the best metric; return why the run stops early (empty: keep going)."""
        name = plan.early_stopping_metric
        if not name or name not in metrics:
            return ""
        value = metrics[name]
        best = run.best_metric
        better = best is None or (value > best if plan.early_stopping_mode == "max" else value < best)
        if better:
            run.best_metric, run.best_round = value, number
            return ""
        waited = number - (run.best_round or number)
        if plan.early_stopping_patience and waited >= plan.early_stopping_patience:
            return f"{name} did not improve for {waited} rounds (best {run.best_metric:.4g} in round {run.best_round})"
        return ""

    def _read_state(self, address: str | None) -> dict[str, torch.Tensor] | None:
        if address is None:
            return None
        return decode_state(self.artifacts.read_bytes(address))

    def _fail(self, session: Session, run: FLRun, round_row: FLRound, reason: str) -> None:
        logger.warning("federated run %s failed: %s", run.train_id, reason)
        round_row.status = RoundStatus.FAILED
        session.add(round_row)
        run.status, run.reason, run.updated_at = RunStatus.FAILED, reason, utc_now()
        session.add(run)
        session.commit()

    def _register(self, session: Session, run: FLRun, train: Train, plan: FederatedPlan) -> None:
        """Put the final global model in the registry with its provenance."""
        assert run.global_model is not None
        manifest = SignedManifest.model_validate(train.signed_manifest).manifest
        earlier = session.exec(
            select(ModelVersion).where(ModelVersion.project_id == train.project_id, ModelVersion.name == train.name)
        ).all()
        rounds = list(session.exec(select(FLRound).where(FLRound.train_id == train.id).order_by(col(FLRound.number))))
        project = session.get(Project, train.project_id)
        collections = {  # the collection version each station trained on: its graph and publication time
            row.id: {"graph": row.graph_iri, "published_at": row.published_at.isoformat()}
            for row in session.exec(select(Collection).where(col(Collection.id).in_(run.collections)))
        }
        session.add(
            ModelVersion(
                project_id=train.project_id,
                train_id=train.id,
                name=train.name,
                version=1 + max((row.version for row in earlier), default=0),
                address=run.global_model,
                size=self._size_of(run.global_model),
                provenance={
                    "train": f"{manifest.name}@{manifest.version}",
                    "bundle": manifest.bundle_hash,
                    "image": manifest.image_digest,
                    "project": project.title if project else train.project_id,
                    "strategy": plan.strategy,
                    "plan": plan.model_dump(mode="json"),
                    "parameters": manifest.parameters,
                    "collections": collections,
                    "rounds": [
                        {
                            "round": r.number,
                            "stations": r.contributed,
                            "dropped": r.dropped,
                            "metrics": r.metrics,
                            "station_metrics": r.station_metrics,
                        }
                        for r in rounds
                    ],
                    "dp": _dp_budget(plan, rounds),
                    "stopped": run.reason,
                },
            )
        )

    @staticmethod
    def _round(session: Session, train_id: str, number: int) -> FLRound | None:
        return session.exec(select(FLRound).where(FLRound.train_id == train_id, FLRound.number == number)).first()

    # -- reading ----------------------------------------------------------------------------

    def read_run(self, *, session: Session, train_id: str) -> FLRunPublic | None:
        """A run with its rounds as the API shows it (None: not a federated train)."""
        run = session.get(FLRun, train_id)
        if run is None:
            return None
        rows = session.exec(select(FLRound).where(FLRound.train_id == train_id).order_by(col(FLRound.number))).all()
        model = session.exec(select(ModelVersion).where(ModelVersion.train_id == train_id)).first()
        return FLRunPublic(
            train_id=run.train_id,
            status=run.status,
            strategy=run.strategy,
            total_rounds=run.total_rounds,
            current_round=run.current_round,
            global_model=run.global_model,
            best_metric=run.best_metric,
            best_round=run.best_round,
            reason=run.reason,
            rounds=[FLRoundPublic.from_round(row) for row in rows],
            model_id=model.id if model else None,
        )

    # -- housekeeping -----------------------------------------------------------------------

    def cancel(self, train_id: str, *, reason: str) -> None:
        """Stop a run (its jobs are cancelled by the caller)."""
        with self._lock, Session(self.engine) as session:
            run = session.get(FLRun, train_id)
            if run is None or run.status != RunStatus.RUNNING:
                return
            run.status, run.reason, run.updated_at = RunStatus.CANCELLED, reason, utc_now()
            session.add(run)
            round_row = self._round(session, train_id, run.current_round)
            if round_row is not None and round_row.status == RoundStatus.OPEN:
                round_row.status = RoundStatus.CANCELLED
                session.add(round_row)
            session.commit()

    def tick(self) -> int:
        """Advance every running run (deadlines, restarts); return how many were looked at."""
        with Session(self.engine) as session:
            running = [row.train_id for row in session.exec(select(FLRun).where(FLRun.status == RunStatus.RUNNING))]
        for train_id in running:
            try:
                self.advance(train_id)
            except Exception:  # one broken run must not stop the others
                logger.exception("advancing federated run %s failed", train_id)
        return len(running)


def _weighted_metrics(entries: Sequence[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """Example-weighted means of the stations' metrics, and the example count (as the strategies report)."""
    out: dict[str, float] = {}
    for key in sorted({k for _, metrics in entries for k in metrics}):
        having = [(n, metrics[key]) for n, metrics in entries if key in metrics]
        weight = sum(n for n, _ in having)
        if weight:
            out[key] = sum(n * value for n, value in having) / weight
    out["num_examples"] = float(sum(n for n, _ in entries))
    return out


def _dp_budget(plan: FederatedPlan, rounds: Sequence[FLRound]) -> dict[str, Any] | None:
    """The (ε, δ) the run spent, when the plan adds noise: at the hub (Gaussian mechanism, RDP
    composition over the rounds) or at each station (DP-SGD: the largest ε a station reported)."""
    if plan.dp_sgd_noise_multiplier is not None:
        spent = {
            station: float(metrics[UpdateKey.DP_SGD_EPSILON.value])
            for row in rounds
            for station, metrics in row.station_metrics.items()
            if UpdateKey.DP_SGD_EPSILON.value in metrics
        }  # later rounds overwrite earlier ones: each station's ε so far
        rates = {
            station: float(metrics[UpdateKey.DP_SGD_SAMPLING_RATE.value])
            for row in rounds
            for station, metrics in row.station_metrics.items()
            if UpdateKey.DP_SGD_SAMPLING_RATE.value in metrics
        }
        return {
            "epsilon": max(spent.values()) if spent else None,
            "delta": plan.dp_delta,
            "noise_multiplier": plan.dp_sgd_noise_multiplier,
            "clip_norm": plan.dp_sgd_clip,
            "sampling_rate": max(rates.values()) if rates else None,
            "epochs": plan.local_epochs,
            "rounds": len(rounds),
            "stations": spent,
            "mechanism": "DP-SGD at each station (local DP on each station's data)",
        }
    if plan.dp_noise_multiplier is None or plan.dp_clip_norm is None:
        return None
    sigma, delta = plan.dp_noise_multiplier, plan.dp_delta
    epsilon = epsilon_for(noise_multiplier=sigma, rounds=len(rounds), delta=delta)
    return {
        "epsilon": None if math.isinf(epsilon) else epsilon,
        "delta": delta,
        "noise_multiplier": sigma,
        "clip_norm": plan.dp_clip_norm,
        "mechanism": "client-level clipping and Gaussian noise at the hub's aggregation (central DP)",
    }
