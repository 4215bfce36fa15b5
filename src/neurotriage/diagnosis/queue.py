"""The diagnosis queue: studies claimed by workers under a lease, each diagnosed once.

A study joins the queue (`enqueue_pending`). A worker `claim`s the oldest claimable study in one
short transaction, with a fresh token and a lease that `keep_alive` renews while it works. On
PostgreSQL the claim reads with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take different rows
without waiting for each other; on SQLite every transaction begins IMMEDIATE, which serialises them.
The transaction that stores the finding first runs the claim's `fence`: it locks the study row and
goes on only while the token is still this claim's and the study has no finding, so a worker whose
lease ran out while another took the study over cannot store a second finding. A worker that dies
leaves its claim to run out and the next claim takes the study over. A failure is kept on the study
(`record_failure`), which goes to the back of the queue, or is parked once it has used its attempts.
Lease times come from the database's clock, so workers on machines with skewed clocks agree.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, text, true, update
from sqlalchemy.orm import Session

from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import Finding, Study, utcnow

log = logging.getLogger(__name__)

ERROR_CHARS = 2000  # last_error keeps the start of a long message


@dataclass(frozen=True)
class QueueSettings:
    """How long a claim lasts unless renewed, and how many attempts a study gets before it is parked."""

    lease_s: float = 60.0
    max_attempts: int = 3

    @property
    def heartbeat_s(self) -> float:
        """How often a working claim renews its lease: two renewals may fail before it runs out."""
        return self.lease_s / 3


class ClaimLost(Exception):
    """The study is no longer this claim's (its lease ran out and another worker took it over)."""


@dataclass(frozen=True)
class Claim:
    """A worker's claim on one queued study: what to diagnose, and the token that proves the claim."""

    study_id: int
    patient_id: int
    case_ref: str
    synthetic_seed: int | None
    token: str
    worker: str
    attempt: int
    waiting: int  # claimable studies left in the queue when this one was claimed
    url: str | None = None

    def fence(self, session: Session) -> None:
        """In the transaction that stores the finding: lock the study and take it off the queue, or raise
        ClaimLost when the claim was taken over or the study already has a finding."""
        study = _claimed_study(session, self)
        if session.scalar(select(exists().where(Finding.study_id == self.study_id))):
            raise ClaimLost(f"study {self.study_id}: already diagnosed by another worker; this result is discarded")
        study.queued_at = None
        _clear_claim(study)


def worker_name() -> str:
    """This process as the queue names its claims: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def db_now(session: Session) -> datetime:
    """Now as naive UTC from the database's clock on PostgreSQL (workers on several machines compare
    leases against one clock); SQLite serves one machine, so its clock."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(text("SELECT CAST(now() AT TIME ZONE 'UTC' AS timestamp)"))
    return utcnow()


def _not_diagnosed() -> ColumnElement[bool]:
    return ~exists().where(Finding.study_id == Study.id)


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Queued, not parked, not diagnosed, and unclaimed or with a lease that ran out."""
    return and_(
        Study.queued_at.is_not(None),
        Study.parked_at.is_(None),
        or_(Study.claim_token.is_(None), Study.lease_until < now),
        _not_diagnosed(),
    )


def _clear_claim(study: Study) -> None:
    study.claim_token = study.claimed_by = study.lease_until = None


def _park(study: Study, now: datetime) -> None:
    """Take a study off the queue for good, keeping its last error."""
    study.parked_at = now
    study.queued_at = None
    _clear_claim(study)


def _claimed_study(session: Session, claim: Claim) -> Study:
    """The claim's study, locked for this transaction; ClaimLost unless the claim still holds it."""
    study = session.scalar(
        select(Study).where(Study.id == claim.study_id).with_for_update().execution_options(populate_existing=True)
    )
    if study is None:
        raise ClaimLost(f"study {claim.study_id}: deleted while it was being diagnosed")
    if study.claim_token != claim.token:
        holder = study.claimed_by or "another worker"
        raise ClaimLost(f"study {claim.study_id}: the lease ran out and {holder} took it over; result discarded")
    return study


def enqueue(session: Session, study: Study) -> None:
    """Put one study on the queue in the caller's transaction (behind those queued before it)."""
    study.queued_at = db_now(session)


def enqueue_pending(url: str | None = None, *, parked: bool = False) -> int:
    """Queue every study that has no finding and is not queued yet, except parked ones unless `parked`
    (they start again with no attempts; their last error stays until they succeed). Returns how many
    joined the queue."""
    with transaction(url) as session:
        now = db_now(session)
        if parked:
            session.execute(
                update(Study)
                .where(Study.parked_at.is_not(None), _not_diagnosed())
                .values(parked_at=None, attempts=0)
                .execution_options(synchronize_session=False)
            )
        result = session.execute(
            update(Study)
            .where(Study.queued_at.is_(None), Study.parked_at.is_(None), _not_diagnosed())
            .values(queued_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount


def queue_counts(url: str | None = None) -> dict[str, int]:
    """Studies without a finding by queue state: waiting (claimable), claimed, parked, not queued."""
    with transaction(url) as session:
        now = db_now(session)
        pending = select(func.count(Study.id)).where(_not_diagnosed())
        return {
            "waiting": session.scalar(pending.where(_claimable(now))),
            "claimed": session.scalar(pending.where(Study.claim_token.is_not(None), Study.lease_until >= now)),
            "parked": session.scalar(pending.where(Study.parked_at.is_not(None))),
            "not_queued": session.scalar(pending.where(Study.queued_at.is_(None), Study.parked_at.is_(None))),
        }


def _take_over(study: Study, settings: QueueSettings, now: datetime) -> bool:
    """Note on a study whose worker stopped renewing its lease why that attempt ended; park it (and
    return False) when that was its last allowed attempt, so a case that kills its workers stops."""
    study.last_error = (
        f"attempt {study.attempts} by {study.claimed_by} did not finish: "
        f"its lease ran out at {study.lease_until:%Y-%m-%d %H:%M:%S} UTC"
    )
    if study.attempts < settings.max_attempts:
        return True
    _park(study, now)
    return False


def claim(
    settings: QueueSettings,
    worker: str,
    url: str | None = None,
    exclude: Collection[int] = (),
    where: ColumnElement[bool] | None = None,
) -> Claim | None:
    """Claim the oldest claimable study not in `exclude` (and matching `where`, a condition on studies)
    for `worker`; None when there is none."""
    with transaction(url) as session:
        now = db_now(session)
        scope = and_(Study.id.not_in(exclude), where if where is not None else true())
        candidates = (
            select(Study)
            .where(_claimable(now), scope)
            .order_by(Study.queued_at, Study.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        while (study := session.scalar(candidates)) is not None:
            if study.claim_token is None or _take_over(study, settings, now):
                break
        if study is None:
            return None
        study.claim_token = str(uuid.uuid4())
        study.claimed_by = worker[:200]
        study.lease_until = now + timedelta(seconds=settings.lease_s)
        study.attempts += 1
        session.flush()
        waiting = session.scalar(select(func.count(Study.id)).where(_claimable(now), scope))
        return Claim(
            study_id=study.id,
            patient_id=study.patient_id,
            case_ref=study.case_ref,
            synthetic_seed=study.synthetic_seed,
            token=study.claim_token,
            worker=study.claimed_by,
            attempt=study.attempts,
            waiting=waiting,
            url=url,
        )


def renew(claim: Claim, settings: QueueSettings) -> bool:
    """Extend the claim's lease by `lease_s` from now; False when the claim is no longer held."""
    with transaction(claim.url) as session:
        now = db_now(session)
        result = session.execute(
            update(Study)
            .where(Study.id == claim.study_id, Study.claim_token == claim.token)
            .values(lease_until=now + timedelta(seconds=settings.lease_s))
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def _renew_until(claim: Claim, settings: QueueSettings, stop: threading.Event) -> None:
    while not stop.wait(settings.heartbeat_s):
        try:
            if not renew(claim, settings):
                log.warning("study %s: the claim was taken over; its result will be discarded", claim.study_id)
                return
        except Exception as exc:  # a database blip: the lease has slack for two missed renewals
            log.warning("study %s: could not renew the lease: %s", claim.study_id, str(exc).splitlines()[0])


@contextmanager
def keep_alive(claim: Claim, settings: QueueSettings) -> Iterator[None]:
    """Renew the claim's lease every `heartbeat_s` from a thread while the block runs."""
    stop = threading.Event()
    beat = threading.Thread(target=_renew_until, args=(claim, settings, stop), name="lease", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()


def record_failure(claim: Claim, error: str, settings: QueueSettings) -> bool:
    """Keep why the claimed study failed and release it to the back of the queue, or park it once it has
    used `max_attempts`; returns whether it was parked. ClaimLost when the claim was taken over."""
    with transaction(claim.url) as session:
        study = _claimed_study(session, claim)
        now = db_now(session)
        study.last_error = error[:ERROR_CHARS]
        if study.attempts >= settings.max_attempts:
            _park(study, now)
            return True
        study.queued_at = now
        _clear_claim(study)
        return False


def release(claim: Claim) -> None:
    """Give an interrupted claim back, keeping the study's place in the queue; the attempt does not count."""
    with transaction(claim.url) as session:
        session.execute(
            update(Study)
            .where(Study.id == claim.study_id, Study.claim_token == claim.token)
            .values(claim_token=None, claimed_by=None, lease_until=None, attempts=Study.attempts - 1)
            .execution_options(synchronize_session=False)
        )
