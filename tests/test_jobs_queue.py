"""The job queue on SQLite and PostgreSQL: leases, expiry, exactly-once completion, fairness,
quotas and cancellation."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from axhub.core.errors import ConflictError, PermissionDeniedError
from axhub.jobs.queue import JobQueue
from axhub.jobs.spec import ProbeSpec
from axhub.store.db import Database
from axhub.store.models import JobLogRow, JobRow, OrganizationRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope


def _orgs(db: Database, *slugs: str, quota: int = 2) -> list[str]:
    with db.session() as s:
        ids = []
        for slug in slugs:
            org = create_org(s, slug.title(), slug)
            org.max_concurrent_jobs = quota
            ids.append(org.id)
        return ids


def _submit(db: Database, queue: JobQueue, org_id: str, n: int = 1, **spec: object) -> list[str]:
    ids = []
    with db.session() as s:
        for _ in range(n):
            ids.append(queue.submit(OrgScope(s, org_id), ProbeSpec(**spec)).id)  # type: ignore[arg-type]
    return ids


def _job(db: Database, job_id: str) -> JobRow:
    with db.session() as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        return row


def test_lease_complete_once(database: Database) -> None:
    (org,) = _orgs(database, "acme")
    queue = JobQueue(database, lease_seconds=30)
    (job_id,) = _submit(database, queue, org)
    lease = queue.lease("w1")
    assert lease is not None and lease.job_id == job_id and lease.attempt == 1
    assert queue.lease("w2") is None  # nothing else to do
    assert queue.complete(lease, {"ok": True})
    assert not queue.complete(lease, {"ok": "again"})  # a second completion is refused
    row = _job(database, job_id)
    assert row.state == "succeeded" and row.result == {"ok": True} and row.progress == 1.0


def test_expired_lease_is_released_and_the_stale_worker_cannot_complete(database: Database) -> None:
    (org,) = _orgs(database, "acme")
    queue = JobQueue(database, lease_seconds=0.3)
    (job_id,) = _submit(database, queue, org)
    first = queue.lease("w1")
    assert first is not None
    assert queue.lease("w2") is None  # still leased
    time.sleep(0.4)
    second = queue.lease("w2")
    assert second is not None and second.job_id == job_id and second.attempt == 2
    assert second.token != first.token
    assert not queue.heartbeat(first).alive
    effects: list[str] = []
    assert not queue.complete(first, {"by": "w1"}, on_commit=lambda s: effects.append("w1"))
    assert queue.complete(second, {"by": "w2"}, on_commit=lambda s: effects.append("w2"))
    assert effects == ["w2"]
    assert _job(database, job_id).result == {"by": "w2"}


def test_out_of_attempts_fails_with_reason(database: Database) -> None:
    (org,) = _orgs(database, "acme")
    queue = JobQueue(database, lease_seconds=0.2)
    with database.session() as s:
        job_id = queue.submit(OrgScope(s, org), ProbeSpec(), max_attempts=1).id
    assert queue.lease("w1") is not None
    time.sleep(0.3)
    assert queue.lease("w2") is None
    row = _job(database, job_id)
    assert row.state == "failed" and "stopped responding" in (row.error or "")


def test_concurrent_leasing_hands_each_job_out_once(database: Database) -> None:
    (org,) = _orgs(database, "acme", quota=50)
    queue = JobQueue(database, lease_seconds=30)
    jobs = set(_submit(database, queue, org, n=12))

    def drain(worker: str) -> list[str]:
        got = []
        while (lease := queue.lease(worker)) is not None:
            got.append(lease.job_id)
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(drain, [f"w{i}" for i in range(4)]))
    leased = [j for r in results for j in r]
    assert sorted(leased) == sorted(jobs)  # all of them, none twice


def test_quota_limits_running_jobs_per_org(database: Database) -> None:
    (org,) = _orgs(database, "acme", quota=2)
    queue = JobQueue(database, lease_seconds=30)
    _submit(database, queue, org, n=3)
    first, second = queue.lease("w"), queue.lease("w")
    assert first is not None and second is not None
    assert queue.lease("w") is None  # quota of 2 reached
    assert queue.complete(first, {})
    assert queue.lease("w") is not None


def test_fair_round_robin_across_orgs(database: Database) -> None:
    a, b = _orgs(database, "alpha", "beta", quota=1)
    queue = JobQueue(database, lease_seconds=30)
    _submit(database, queue, a, n=4)
    _submit(database, queue, b, n=2)  # submitted later, yet served in turn
    order = []
    while (lease := queue.lease("w")) is not None:
        order.append("a" if lease.org_id == a else "b")
        assert queue.complete(lease, {})
    assert order == ["a", "b", "a", "b", "a", "a"]


def test_least_running_org_first(database: Database) -> None:
    a, b = _orgs(database, "alpha", "beta", quota=5)
    queue = JobQueue(database, lease_seconds=30)
    _submit(database, queue, a, n=3)
    first = queue.lease("w")
    assert first is not None and first.org_id == a
    _submit(database, queue, b, n=1)
    nxt = queue.lease("w")
    assert nxt is not None and nxt.org_id == b  # alpha already has one running


def test_priority_within_an_org(database: Database) -> None:
    (org,) = _orgs(database, "acme")
    queue = JobQueue(database)
    _submit(database, queue, org, priority=0)
    (urgent,) = _submit(database, queue, org, priority=5)
    lease = queue.lease("w")
    assert lease is not None and lease.job_id == urgent


def test_gpu_jobs_need_a_gpu_quota(database: Database) -> None:
    (org,) = _orgs(database, "acme")
    queue = JobQueue(database)
    with database.session() as s, pytest.raises(PermissionDeniedError):
        queue.submit(OrgScope(s, org), ProbeSpec(resource_class="gpu"))
    with database.session() as s:
        s.get_one(OrganizationRow, org).compute_class = "gpu"
    (job_id,) = _submit(database, queue, org, resource_class="gpu")
    assert queue.lease("cpu-only", resource_classes=("cpu",)) is None
    lease = queue.lease("gpu-node", resource_classes=("gpu",))
    assert lease is not None and lease.job_id == job_id


def test_cancel_queued_and_running(database: Database) -> None:
    (org,) = _orgs(database, "acme")
    queue = JobQueue(database)
    queued, running = _submit(database, queue, org, n=2)
    # the oldest is leased first
    lease = queue.lease("w")
    assert lease is not None and lease.job_id == queued
    with database.session() as s:
        queue.cancel(OrgScope(s, org), running)
    assert _job(database, running).state == "cancelled"
    with database.session() as s:
        queue.cancel(OrgScope(s, org), queued)
    beat = queue.heartbeat(lease)
    assert beat.alive and beat.cancel_requested
    assert queue.mark_cancelled(lease)
    assert _job(database, queued).state == "cancelled"
    with database.session() as s, pytest.raises(ConflictError):
        queue.cancel(OrgScope(s, org), queued)


def test_failure_retries_then_gives_up(database: Database) -> None:
    (org,) = _orgs(database, "acme")
    queue = JobQueue(database)
    (job_id,) = _submit(database, queue, org)
    for attempt in (1, 2, 3):
        lease = queue.lease("w")
        assert lease is not None and lease.attempt == attempt
        queue.fail(lease, "boom", retry=True)
    assert queue.lease("w") is None
    row = _job(database, job_id)
    assert row.state == "failed" and row.attempts == 3
    with database.session() as s:
        logs = s.scalars(select(JobLogRow.message).where(JobLogRow.job_id == job_id)).all()
    assert sum("will retry" in m for m in logs) == 2
