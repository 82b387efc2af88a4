"""The persistent job queue in the metadata database: leases, heartbeats, fair scheduling.

How a job is never lost nor completed twice
-------------------------------------------
* A worker *leases* a job: the row gets ``state='running'``, a fresh ``lease_owner`` token
  (unique per lease, not per worker) and ``lease_expires_at``. The worker renews the lease with
  heartbeats while it works.
* A worker that dies stops heart-beating; once the lease has expired the job is eligible again
  and the next ``lease()`` hands it to another worker (``attempts`` counts the tries; after
  ``max_attempts`` it fails with the reason).
* Every state change a worker makes (progress, completion, failure) is a conditional UPDATE
  ``WHERE lease_owner = <its token> AND state = 'running'``. A worker that lost its lease (it was
  paused, partitioned, presumed dead) cannot complete the job: its UPDATE matches no row, and
  the side effects it wanted to commit with the completion (e.g. registering the trained model
  version) are rolled back in the same transaction. So a job's effects are committed once.

Leasing concurrently
--------------------
* PostgreSQL: the organisation's row is locked (``FOR UPDATE``) so its running count cannot
  change underneath the quota check, and the job is picked with ``FOR UPDATE SKIP LOCKED`` so
  workers never wait on each other's candidate rows.
* SQLite: one conditional ``UPDATE ... WHERE id = ? AND <still eligible> AND (<running count
  of the org>) < quota``. SQLite runs a statement under its single write lock, so the check and
  the claim are atomic; a worker that loses the race sees ``rowcount = 0`` and tries the next.

Fair scheduling across companies
--------------------------------
Among organisations with waiting jobs and room under their ``max_concurrent_jobs`` quota, the
one with the fewest running jobs goes first; ties go to the organisation served least recently
(round robin), then to the oldest waiting job. Inside one organisation: priority, then age.
Jobs asking for a resource class the organisation is not entitled to are refused at submit.

Compute hours
-------------
Every attempt a worker finishes is charged to its organisation (``store/metering.py``); a
class whose monthly hours are used up is refused at submit and not leased until it renews.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from axhub.core.domain import JobState
from axhub.core.errors import ConflictError, PermissionDeniedError
from axhub.core.ids import new_id
from axhub.core.timeutil import utcnow
from axhub.jobs.spec import AnySpec
from axhub.store import metering
from axhub.store.db import Database
from axhub.store.models import JobLogRow, JobRow, OrganizationRow
from axhub.store.scoped import OrgScope

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TERMINAL = frozenset({JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.CANCELLED.value})


@dataclass(frozen=True)
class Lease:
    """A worker's claim on one job for one attempt."""

    job_id: str
    org_id: str
    token: str
    attempt: int
    kind: str
    spec: dict[str, Any]
    resource_class: str


@dataclass(frozen=True)
class Beat:
    """What a heartbeat learned: is the lease still ours, did someone ask to cancel."""

    alive: bool
    cancel_requested: bool


class JobQueue:
    def __init__(self, db: Database, *, lease_seconds: float = 30.0) -> None:
        self.db = db
        self.lease_seconds = lease_seconds

    # ------------------------------------------------------------------ tenant side
    def submit(
        self,
        scope: OrgScope,
        spec: AnySpec,
        *,
        submitted_by: str | None = None,
        max_attempts: int = 3,
    ) -> JobRow:
        """Queue a job for the scope's organisation (checked against its compute class)."""
        org = scope.session.get(OrganizationRow, scope.org_id)
        if org is None:  # pragma: no cover - the principal's org always exists
            raise PermissionDeniedError("organisation not found")
        if spec.resource_class == "gpu" and org.compute_class != "gpu":
            raise PermissionDeniedError(
                "this organisation's quota does not include GPU jobs",
                hint="submit with resource_class 'cpu' or ask the data center to enable GPU",
            )
        metering.check_can_submit(scope.session, scope.org_id, spec.resource_class)
        row = scope.add(
            JobRow(
                kind=spec.kind,
                spec=spec.model_dump(mode="json"),
                state=JobState.QUEUED.value,
                priority=spec.priority,
                resource_class=spec.resource_class,
                max_attempts=max_attempts,
                submitted_by=submitted_by,
                created_at=utcnow(),
            )
        )
        scope.add(JobLogRow(job_id=row.id, message=f"queued ({spec.kind}, {spec.resource_class})"))
        return row

    def cancel(self, scope: OrgScope, job_id: str) -> JobRow:
        """Cancel a queued job at once; ask a running one to stop at its next checkpoint."""
        row = scope.get(JobRow, job_id)
        if row.state in TERMINAL:
            raise ConflictError(f"job '{job_id}' is already {row.state}", hint="nothing to cancel")
        if row.state == JobState.QUEUED.value:
            row.state = JobState.CANCELLED.value
            row.finished_at = utcnow()
            scope.add(JobLogRow(job_id=row.id, message="cancelled before it started"))
        else:
            row.cancel_requested = True
            scope.add(JobLogRow(job_id=row.id, message="cancel requested"))
        scope.session.flush()
        return row

    # ------------------------------------------------------------------ worker side
    def lease(
        self,
        worker_id: str,
        resource_classes: Iterable[str] = ("cpu", "gpu"),
        *,
        exclude_orgs: Iterable[str] = (),
    ) -> Lease | None:
        """Claim the next job fairly, or ``None`` when nothing is eligible. ``exclude_orgs``:
        organisations this worker must not serve now (they already hold the rest of its pool)."""
        classes = list(resource_classes)
        now = utcnow()
        self._settle_expired(now)
        skip = set(exclude_orgs)
        order = [org for org in self._org_order(now, classes) if org not in skip]
        if not order:
            return None
        with self.db.session() as s:  # monthly compute-hour quotas (store/metering.py)
            spent = metering.exhausted_classes(s, order, now)
        for org_id in order:
            allowed = [c for c in classes if c not in spent.get(org_id, ())]
            if not allowed:
                continue
            lease = (
                self._lease_postgres(org_id, worker_id, allowed)
                if self.db.is_postgres
                else self._lease_sqlite(org_id, worker_id, allowed)
            )
            if lease is not None:
                return lease
        return None

    def heartbeat(self, lease: Lease, progress: float | None = None) -> Beat:
        values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=self.lease_seconds)}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, float(progress)))
        with self.db.session() as s:
            res = s.execute(update(JobRow).where(*self._owned(lease)).values(**values))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return Beat(alive=False, cancel_requested=False)
            cancel = s.scalar(select(JobRow.cancel_requested).where(JobRow.id == lease.job_id))
            return Beat(alive=True, cancel_requested=bool(cancel))

    def log(self, lease: Lease, message: str, level: str = "info") -> None:
        with self.db.session() as s:
            OrgScope(s, lease.org_id).add(JobLogRow(job_id=lease.job_id, message=message, level=level))

    def complete(
        self,
        lease: Lease,
        result: dict[str, Any],
        on_commit: Callable[[Session], None] | None = None,
    ) -> bool:
        """Mark the job succeeded and commit ``on_commit``'s writes with it, only if the lease
        is still ours. Returns False (and writes nothing) when it is not."""
        with self.db.session() as s:
            res = s.execute(
                update(JobRow)
                .where(*self._owned(lease))
                .values(
                    state=JobState.SUCCEEDED.value,
                    progress=1.0,
                    result=result,
                    finished_at=utcnow(),
                    lease_expires_at=None,
                )
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                s.rollback()
                return False
            if on_commit is not None:
                on_commit(s)
            self._charge(s, lease, JobState.SUCCEEDED.value)
            OrgScope(s, lease.org_id).add(
                JobLogRow(job_id=lease.job_id, message=f"succeeded (attempt {lease.attempt})")
            )
            return True

    def fail(self, lease: Lease, error: str, *, retry: bool) -> bool:
        """Record a failure; the job goes back to the queue when ``retry`` and tries remain."""
        with self.db.session() as s:
            row = s.get(JobRow, lease.job_id)
            if row is None or row.lease_owner != lease.token or row.state != JobState.RUNNING.value:
                return False
            again = retry and row.attempts < row.max_attempts
            metering.record_attempt(s, row, outcome=JobState.FAILED.value, finished_at=utcnow())
            row.state = JobState.QUEUED.value if again else JobState.FAILED.value
            row.error = error[:4000]
            row.lease_owner = None
            row.lease_expires_at = None
            if not again:
                row.finished_at = utcnow()
            what = "will retry" if again else "failed"
            OrgScope(s, lease.org_id).add(
                JobLogRow(job_id=lease.job_id, level="error", message=f"{error[:1000]} ({what})")
            )
            return True

    def mark_cancelled(self, lease: Lease) -> bool:
        with self.db.session() as s:
            res = s.execute(
                update(JobRow)
                .where(*self._owned(lease))
                .values(state=JobState.CANCELLED.value, finished_at=utcnow(), lease_expires_at=None)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return False
            self._charge(s, lease, JobState.CANCELLED.value)
            OrgScope(s, lease.org_id).add(JobLogRow(job_id=lease.job_id, message="cancelled"))
            return True

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _charge(s: Session, lease: Lease, outcome: str) -> None:
        """Record the attempt's compute time in the transaction that ends it."""
        job = s.get(JobRow, lease.job_id)
        if job is not None:
            metering.record_attempt(s, job, outcome=outcome, finished_at=job.finished_at or utcnow())

    @staticmethod
    def _owned(lease: Lease) -> tuple[Any, ...]:
        return (
            JobRow.id == lease.job_id,
            JobRow.lease_owner == lease.token,
            JobRow.state == JobState.RUNNING.value,
        )

    @staticmethod
    def _eligible(now: datetime) -> Any:
        return and_(
            JobRow.cancel_requested.is_(False),
            or_(
                JobRow.state == JobState.QUEUED.value,
                and_(
                    JobRow.state == JobState.RUNNING.value,
                    JobRow.lease_expires_at < now,
                    JobRow.attempts < JobRow.max_attempts,
                ),
            ),
        )

    def _settle_expired(self, now: datetime) -> None:
        """Expired leases that can't be retried: out of attempts -> failed, cancel asked -> cancelled."""
        expired = and_(JobRow.state == JobState.RUNNING.value, JobRow.lease_expires_at < now)
        with self.db.session() as s:
            s.execute(
                update(JobRow)
                .where(expired, JobRow.cancel_requested.is_(True))
                .values(state=JobState.CANCELLED.value, finished_at=now, lease_owner=None)
            )
            s.execute(
                update(JobRow)
                .where(expired, JobRow.attempts >= JobRow.max_attempts)
                .values(
                    state=JobState.FAILED.value,
                    finished_at=now,
                    lease_owner=None,
                    error="the worker running this job stopped responding, and no attempts are left",
                )
            )

    def _org_order(self, now: datetime, classes: list[str]) -> list[str]:
        with self.db.session() as s:
            waiting = dict(
                s.execute(
                    select(JobRow.org_id, func.min(JobRow.created_at))
                    .where(self._eligible(now), JobRow.resource_class.in_(classes))
                    .group_by(JobRow.org_id)
                ).all()
            )
            if not waiting:
                return []
            running = dict(
                s.execute(
                    select(JobRow.org_id, func.count())
                    .where(JobRow.state == JobState.RUNNING.value, JobRow.lease_expires_at >= now)
                    .group_by(JobRow.org_id)
                ).all()
            )
            last_served = dict(
                s.execute(
                    select(JobRow.org_id, func.max(JobRow.started_at))
                    .where(JobRow.org_id.in_(list(waiting)))
                    .group_by(JobRow.org_id)
                ).all()
            )
            quotas = dict(
                s.execute(
                    select(OrganizationRow.id, OrganizationRow.max_concurrent_jobs).where(
                        OrganizationRow.id.in_(list(waiting))
                    )
                ).all()
            )

        def key(org_id: str) -> tuple[int, datetime, datetime]:
            return (int(running.get(org_id, 0)), _aware(last_served.get(org_id)), _aware(waiting[org_id]))

        return sorted((o for o in waiting if running.get(o, 0) < quotas.get(o, 0)), key=key)

    def _claim_values(self, worker_id: str, now: datetime) -> dict[str, Any]:
        return {
            "state": JobState.RUNNING.value,
            "lease_owner": f"{worker_id}:{new_id('lease')}"[:100],
            "lease_expires_at": now + timedelta(seconds=self.lease_seconds),
            "attempts": JobRow.attempts + 1,
            "started_at": now,
        }

    def _lease_postgres(self, org_id: str, worker_id: str, classes: list[str]) -> Lease | None:
        with self.db.session() as s:
            now = utcnow()
            quota = s.scalar(
                select(OrganizationRow.max_concurrent_jobs)
                .where(OrganizationRow.id == org_id)
                .with_for_update()
            )
            running = s.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.org_id == org_id, JobRow.state == "running", JobRow.lease_expires_at >= now)
            )
            if quota is None or int(running or 0) >= quota:
                return None
            job = s.scalars(
                select(JobRow)
                .where(JobRow.org_id == org_id, self._eligible(now), JobRow.resource_class.in_(classes))
                .order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if job is None:
                return None
            values = self._claim_values(worker_id, now)
            s.execute(update(JobRow).where(JobRow.id == job.id).values(**values))
            s.refresh(job)
            return self._lease_of(s, job)

    def _lease_sqlite(self, org_id: str, worker_id: str, classes: list[str]) -> Lease | None:
        for _ in range(5):
            with self.db.session() as s:
                now = utcnow()
                job_id = s.scalar(
                    select(JobRow.id)
                    .where(JobRow.org_id == org_id, self._eligible(now), JobRow.resource_class.in_(classes))
                    .order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)
                    .limit(1)
                )
                if job_id is None:
                    return None
                running_now = _running_count_subquery(org_id, now)
                quota = (
                    select(OrganizationRow.max_concurrent_jobs)
                    .where(OrganizationRow.id == org_id)
                    .scalar_subquery()
                )
                res = s.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, self._eligible(now), running_now < quota)
                    .values(**self._claim_values(worker_id, now))
                )
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    job = s.get(JobRow, job_id)
                    assert job is not None
                    s.refresh(job)
                    return self._lease_of(s, job)
                s.rollback()
        return None

    @staticmethod
    def _lease_of(s: Session, job: JobRow) -> Lease:
        assert job.lease_owner is not None
        OrgScope(s, job.org_id).add(
            JobLogRow(
                job_id=job.id,
                message=f"started on {job.lease_owner.split(':')[0]} (attempt {job.attempts})",
            )
        )
        return Lease(
            job_id=job.id,
            org_id=job.org_id,
            token=job.lease_owner,
            attempt=job.attempts,
            kind=job.kind,
            spec=dict(job.spec),
            resource_class=job.resource_class,
        )


def _running_count_subquery(org_id: str, now: datetime) -> Any:
    others = JobRow.__table__.alias("running_jobs")
    return (
        select(func.count())
        .select_from(others)
        .where(
            others.c.org_id == org_id,
            others.c.state == JobState.RUNNING.value,
            others.c.lease_expires_at >= now,
        )
        .scalar_subquery()
    )


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return _EPOCH
    return value if value.tzinfo else value.replace(tzinfo=UTC)
