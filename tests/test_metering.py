"""Data-center metering on SQLite and PostgreSQL: usage per job attempt, monthly CPU/GPU-hour
quotas enforced where work is scheduled, fair shares under contention, the operator's API."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from axhub.jobs.queue import JobQueue
from axhub.jobs.spec import ProbeSpec
from axhub.store import metering
from axhub.store.db import Database
from axhub.store.models import JobRow, JobUsageRow, OrganizationRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope


def _orgs(db: Database, *slugs: str, quota: int = 2, compute_class: str = "cpu") -> list[str]:
    with db.session() as s:
        ids = []
        for slug in slugs:
            org = create_org(s, slug.title(), slug)
            org.max_concurrent_jobs = quota
            org.compute_class = compute_class
            ids.append(org.id)
        return ids


def _submit(db: Database, queue: JobQueue, org_id: str, n: int = 1, **spec: object) -> list[str]:
    with db.session() as s:
        return [queue.submit(OrgScope(s, org_id), ProbeSpec(**spec)).id for _ in range(n)]  # type: ignore[arg-type]


def _ran_for(db: Database, job_id: str, seconds: float) -> None:
    """Pretend the running attempt started ``seconds`` ago (instead of sleeping in a test)."""
    with db.session() as s:
        s.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(started_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def test_billing_month_is_the_seoul_calendar_month() -> None:
    start, end = metering.month_bounds(datetime(2026, 11, 30, 15, 30, tzinfo=UTC))  # 12-01 00:30 KST
    assert start == datetime(2026, 11, 30, 15, 0, tzinfo=UTC) and end == datetime(
        2026, 12, 31, 15, 0, tzinfo=UTC
    )


def test_usage_per_attempt_and_quota_enforced_at_scheduling(database: Database) -> None:
    (org,) = _orgs(database, "acme", compute_class="gpu")
    queue = JobQueue(database)
    with database.session() as s:
        metering.set_quota(s, org, cpu_hours=10 / 3600, gpu_hours=None)  # ten CPU-seconds a month
    first, waiting = _submit(database, queue, org, n=2)
    lease = queue.lease("node-1", ("cpu",))
    assert lease is not None and lease.job_id == first
    _ran_for(database, first, 12.0)
    assert queue.complete(lease, {})

    with database.session() as s:
        (usage,) = s.scalars(select(JobUsageRow).where(JobUsageRow.job_id == first)).all()
        assert usage.outcome == "succeeded" and usage.worker == "node-1" and usage.attempt == 1
        assert 11.5 < usage.run_seconds < 14 and usage.wait_seconds is not None
        assert metering.exhausted_classes(s, [org]) == {org: {"cpu"}}
        (month,) = metering.org_summary(s, [org])
        assert month.cpu_hours == pytest.approx(usage.run_seconds / 3600, abs=1e-6) and month.jobs == 1

    # the job already queued is held, a new one is refused with the reason and the renewal date
    assert queue.lease("node-1", ("cpu",)) is None
    with database.session() as s, pytest.raises(metering.QuotaExhaustedError) as refused:
        queue.submit(OrgScope(s, org), ProbeSpec())
    text = str(refused.value)
    assert "CPU quota" in text and "of 0.00277778 CPU-hours" in text and "renews on" in text and "KST" in text

    # GPU hours are a separate quota: GPU work still runs
    (gpu_job,) = _submit(database, queue, org, resource_class="gpu")
    gpu_lease = queue.lease("gpu-node", ("cpu", "gpu"))
    assert gpu_lease is not None and gpu_lease.job_id == gpu_job
    assert queue.fail(gpu_lease, "boom", retry=False)
    with database.session() as s:
        assert {u.resource_class: u.outcome for u in s.scalars(select(JobUsageRow))} == {
            "cpu": "succeeded",
            "gpu": "failed",
        }
        metering.set_quota(s, org, cpu_hours=1.0, gpu_hours=None)  # the operator raises it
    again = queue.lease("node-1", ("cpu",))
    assert again is not None and again.job_id == waiting


def test_two_companies_flooding_the_queue_get_equal_shares(database: Database) -> None:
    a, b = _orgs(database, "alpha", "bravo", quota=10)
    queue = JobQueue(database)
    _submit(database, queue, a, n=24)  # alpha floods first...
    _submit(database, queue, b, n=24)  # ...then bravo
    # Four workers, each finishing its job before leasing the next: who got the first 16 slots?
    served: list[str] = []
    running = [queue.lease(f"w{i}") for i in range(4)]
    for _ in range(16):
        lease = running.pop(0)
        assert lease is not None
        served.append(lease.org_id)
        queue.complete(lease, {})
        running.append(queue.lease(f"w{len(served) % 4}"))
    counts = Counter(served)
    assert counts[a] == counts[b] == 8, counts
    # and at any moment both companies hold half of the running slots
    assert Counter(lease.org_id for lease in running if lease) == {a: 2, b: 2}

    # once alpha's monthly hours are spent, bravo gets every worker
    with database.session() as s:
        metering.set_quota(s, a, cpu_hours=0.0, gpu_hours=None)
    for lease in running:
        assert lease is not None and queue.complete(lease, {})
    assert {queue.lease(f"x{i}").org_id for i in range(4)} == {b}  # type: ignore[union-attr]


def test_operator_api_for_quotas_usage_and_utilisation(tmp_path: Path) -> None:
    from _api_helpers import make_hub

    hub = make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}", executor="none")
    with hub.db.session() as s:
        acme = s.scalars(select(OrganizationRow).where(OrganizationRow.slug == "acme")).one().id
    queue = JobQueue(hub.db)
    (job_id,) = _submit(hub.db, queue, acme)
    lease = queue.lease("node-7")
    assert lease is not None
    _ran_for(hub.db, job_id, 30.0)
    queue.complete(lease, {})

    with hub.client("a_admin") as c:
        assert c.get("/api/v1/platform/metering/orgs").status_code == 403
        assert c.put(f"/api/v1/platform/orgs/{acme}/compute-quota", json={}).status_code == 403
    with hub.client("operator") as op:
        r = op.put(f"/api/v1/platform/orgs/{acme}/compute-quota", json={"cpu_hours_per_month": 0.005})
        assert r.status_code == 200, r.text
        assert r.json()["cpu_quota"] == 0.005 and r.json()["cpu_hours"] == pytest.approx(30 / 3600, rel=0.05)
        assert op.put("/api/v1/platform/orgs/org_nope/compute-quota", json={}).status_code == 404
        assert (
            op.put(
                f"/api/v1/platform/orgs/{acme}/compute-quota", json={"cpu_hours_per_month": -1}
            ).status_code
            == 422
        )
        months = {m["slug"]: m for m in op.get("/api/v1/platform/metering/orgs").json()}
        assert months["acme"]["jobs"] == 1 and months["beta"]["cpu_hours"] == 0.0
        series = op.get("/api/v1/platform/metering/usage", params={"bucket": "day"}).json()
        assert [(p["slug"], p["resource_class"], p["attempts"]) for p in series] == [("acme", "cpu", 1)]
        util = op.get("/api/v1/platform/metering/utilisation", params={"bucket": "hour"}).json()
        assert sum(b["busy_workers"]["cpu"] for b in util["buckets"]) == pytest.approx(30 / 3600, rel=0.05)
        assert any(b["jobs_started"] == 1 and b["wait_mean_s"] is not None for b in util["buckets"])
        assert util["queued_now"] == {"cpu": 0, "gpu": 0}
        bad = op.get("/api/v1/platform/metering/usage", params={"since": "2030-01-01T00:00:00Z"})
        assert bad.status_code == 422
    with hub.client("a_engineer") as c:
        mine = c.get("/api/v1/org/compute-usage").json()
        assert mine["slug"] == "acme" and mine["cpu_quota"] == 0.005
        refused = c.post("/api/v1/jobs", json={"kind": "probe"})
        assert refused.status_code == 403 and "CPU quota" in refused.text and "renews on" in refused.text
    with hub.client("b_admin") as c:
        assert c.get("/api/v1/org/compute-usage").json()["slug"] == "beta"
