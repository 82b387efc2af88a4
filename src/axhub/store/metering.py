"""Data-center metering: compute hours per company per month, quotas, utilisation and queue wait.

* **What is charged.** Each attempt of a job that a worker finished (succeeded, failed, cancelled
  while running) becomes one ``job_usage`` row with its wall-clock run time; the job's resource
  class says whether those are CPU-hours or GPU-hours (a ``gpu`` job holds one GPU and one CPU
  slot; it is charged as GPU-hours only). An attempt lost because its worker died is not charged:
  the platform's failure is not the company's bill.
* **Billing month.** Calendar months in Asia/Seoul, where the data center and its customers are.
* **Quotas.** ``compute_quotas`` holds CPU- and GPU-hours per month per company (NULL: no limit).
  They are enforced where work is scheduled: a job of an exhausted class is refused at submission
  with a message saying which quota, how much was used and when it renews, and jobs already
  queued are not leased until the next month (or a higher quota). A job that started under its
  quota runs to its end, so a month can overshoot by at most the jobs running when it ran out.

These tables are platform data (see ``store/platform.py``); tenants see their own figures only
through :func:`org_summary`, which takes the caller's organisation id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axhub.core.errors import PermissionDeniedError
from axhub.core.timeutil import utcnow
from axhub.store.models import ComputeQuotaRow, JobRow, JobUsageRow, OrganizationRow

BILLING_TZ = ZoneInfo("Asia/Seoul")
CLASSES = ("cpu", "gpu")


class QuotaExhaustedError(PermissionDeniedError):
    """The company has used its compute hours of this class for the billing month."""


def month_bounds(at: datetime | None = None) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the Asia/Seoul calendar month holding ``at``."""
    local = (at or utcnow()).astimezone(BILLING_TZ)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start.astimezone(UTC), end.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- recording
def record_attempt(
    session: Session, job: JobRow, *, outcome: str, finished_at: datetime
) -> JobUsageRow | None:
    """Charge the attempt ``job`` is finishing (call in the transaction that ends it)."""
    if job.started_at is None:  # cancelled before it ever ran: nothing used
        return None
    started = _aware(job.started_at)
    row = JobUsageRow(
        org_id=job.org_id,
        job_id=job.id,
        attempt=max(1, int(job.attempts)),
        resource_class=job.resource_class,
        worker=(job.lease_owner or "").split(":")[0][:100],
        outcome=outcome,
        queued_at=_aware(job.created_at),
        started_at=started,
        finished_at=finished_at,
        run_seconds=max(0.0, (finished_at - started).total_seconds()),
        wait_seconds=max(0.0, (started - _aware(job.created_at)).total_seconds())
        if job.attempts <= 1
        else None,
    )
    session.add(row)
    return row


# ---------------------------------------------------------------------------- quotas
def set_quota(
    session: Session, org_id: str, *, cpu_hours: float | None, gpu_hours: float | None
) -> ComputeQuotaRow:
    row = session.get(ComputeQuotaRow, org_id)
    if row is None:
        row = ComputeQuotaRow(org_id=org_id)
        session.add(row)
    row.cpu_hours_per_month = cpu_hours
    row.gpu_hours_per_month = gpu_hours
    row.updated_at = utcnow()
    session.flush()
    return row


def quotas(session: Session, org_ids: Iterable[str]) -> dict[str, dict[str, float | None]]:
    ids = list(org_ids)
    found = {
        r.org_id: {"cpu": r.cpu_hours_per_month, "gpu": r.gpu_hours_per_month}
        for r in session.scalars(select(ComputeQuotaRow).where(ComputeQuotaRow.org_id.in_(ids)))
    }
    return {o: found.get(o, {"cpu": None, "gpu": None}) for o in ids}


def hours_used(
    session: Session, org_ids: Iterable[str] | None = None, at: datetime | None = None
) -> dict[str, dict[str, float]]:
    """Hours charged this billing month, per company and resource class."""
    start, end = month_bounds(at)
    stmt = (
        select(JobUsageRow.org_id, JobUsageRow.resource_class, func.sum(JobUsageRow.run_seconds))
        .where(JobUsageRow.finished_at >= start, JobUsageRow.finished_at < end)
        .group_by(JobUsageRow.org_id, JobUsageRow.resource_class)
    )
    ids = None if org_ids is None else list(org_ids)
    if ids is not None:
        stmt = stmt.where(JobUsageRow.org_id.in_(ids))
    used: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(CLASSES, 0.0))
    for org_id, cls, seconds in session.execute(stmt).all():
        used[org_id][cls] = float(seconds or 0.0) / 3600.0
    return {o: used[o] for o in (ids if ids is not None else list(used))}


def exhausted_classes(
    session: Session, org_ids: Iterable[str], at: datetime | None = None
) -> dict[str, set[str]]:
    """Resource classes each company may not start more work in this month."""
    limits = {o: q for o, q in quotas(session, org_ids).items() if any(v is not None for v in q.values())}
    if not limits:
        return {}
    used = hours_used(session, limits, at)
    return {
        o: {c for c in CLASSES if q[c] is not None and used[o][c] >= float(q[c] or 0.0)}
        for o, q in limits.items()
    }


def check_can_submit(session: Session, org_id: str, resource_class: str, at: datetime | None = None) -> None:
    """Refuse new work of a class whose monthly hours are used up, saying what and until when."""
    limit = quotas(session, [org_id])[org_id].get(resource_class)
    if limit is None:
        return
    used = hours_used(session, [org_id], at)[org_id][resource_class]
    if used < float(limit):
        return
    _, end = month_bounds(at)
    renews = end.astimezone(BILLING_TZ).strftime("%Y-%m-%d %H:%M KST")
    raise QuotaExhaustedError(
        f"this organisation has used its {resource_class.upper()} quota for the month: "
        f"{used:.2f} of {float(limit):g} {resource_class.upper()}-hours "
        f"(이번 달 {resource_class.upper()} 사용 한도를 모두 사용했습니다)",
        hint=f"the quota renews on {renews}; ask the data center for more hours or wait until then",
    )


# ---------------------------------------------------------------------------- operator views
@dataclass(frozen=True)
class OrgMonth:
    org_id: str
    slug: str
    month: str
    cpu_hours: float
    gpu_hours: float
    cpu_quota: float | None
    gpu_quota: float | None
    jobs: int


def org_summary(
    session: Session, org_ids: Iterable[str] | None = None, at: datetime | None = None
) -> list[OrgMonth]:
    """This month's hours against the quota, per company (one company for a tenant's own view)."""
    orgs = session.scalars(select(OrganizationRow).order_by(OrganizationRow.slug)).all()
    wanted = None if org_ids is None else set(org_ids)
    orgs = [o for o in orgs if wanted is None or o.id in wanted]
    ids = [o.id for o in orgs]
    used = hours_used(session, ids, at)
    limits = quotas(session, ids)
    start, end = month_bounds(at)
    counts = dict(
        session.execute(
            select(JobUsageRow.org_id, func.count(func.distinct(JobUsageRow.job_id)))
            .where(JobUsageRow.finished_at >= start, JobUsageRow.finished_at < end)
            .group_by(JobUsageRow.org_id)
        ).all()
    )
    month = start.astimezone(BILLING_TZ).strftime("%Y-%m")
    return [
        OrgMonth(
            org_id=o.id,
            slug=o.slug,
            month=month,
            cpu_hours=round(used[o.id]["cpu"], 6),
            gpu_hours=round(used[o.id]["gpu"], 6),
            cpu_quota=limits[o.id]["cpu"],
            gpu_quota=limits[o.id]["gpu"],
            jobs=int(counts.get(o.id, 0)),
        )
        for o in orgs
    ]


def _bucket_start(ts: datetime, bucket: str) -> datetime:
    local = ts.astimezone(BILLING_TZ)
    if bucket == "hour":
        local = local.replace(minute=0, second=0, microsecond=0)
    elif bucket == "day":
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:  # month
        local = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return local


def _next_bucket(start: datetime, bucket: str) -> datetime:
    if bucket == "hour":
        return (start + timedelta(hours=1)).astimezone(BILLING_TZ)
    if bucket == "day":
        return (start + timedelta(days=1)).replace(hour=0)
    return (start + timedelta(days=32)).replace(day=1)


def usage_series(
    session: Session, *, since: datetime, until: datetime, bucket: str = "day"
) -> list[dict[str, Any]]:
    """Hours per company, class and period (Asia/Seoul hours, days or months), by finish time."""
    rows = session.execute(
        select(
            JobUsageRow.org_id, JobUsageRow.resource_class, JobUsageRow.finished_at, JobUsageRow.run_seconds
        ).where(JobUsageRow.finished_at >= since, JobUsageRow.finished_at < until)
    ).all()
    slugs = dict(session.execute(select(OrganizationRow.id, OrganizationRow.slug)).all())
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for org_id, cls, finished, seconds in rows:
        period = _bucket_start(_aware(finished), bucket).isoformat()
        acc[(period, org_id, cls)][0] += float(seconds) / 3600.0
        acc[(period, org_id, cls)][1] += 1
    return [
        {
            "period": p,
            "org_id": o,
            "slug": slugs.get(o, ""),
            "resource_class": c,
            "hours": round(h, 6),
            "attempts": int(n),
        }
        for (p, o, c), (h, n) in sorted(acc.items())
    ]


def utilisation(
    session: Session, *, since: datetime, until: datetime, bucket: str = "hour", now: datetime | None = None
) -> dict[str, Any]:
    """Busy worker time and queue wait per period, plus what is queued and running now.

    ``busy_workers`` is the mean number of jobs running over the period (worker-seconds busy
    divided by the period's length), per class; running jobs count up to ``now``.
    """
    now = now or utcnow()
    spans: list[tuple[str, datetime, datetime]] = [
        (cls, _aware(s), _aware(f))
        for cls, s, f in session.execute(
            select(JobUsageRow.resource_class, JobUsageRow.started_at, JobUsageRow.finished_at).where(
                JobUsageRow.finished_at >= since, JobUsageRow.started_at < until
            )
        ).all()
    ]
    running = session.execute(
        select(JobRow.resource_class, JobRow.started_at).where(
            JobRow.state == "running", JobRow.started_at.is_not(None), JobRow.started_at < until
        )
    ).all()
    spans += [(cls, _aware(s), min(now, until)) for cls, s in running if s is not None]
    waits = session.execute(
        select(JobUsageRow.started_at, JobUsageRow.wait_seconds).where(
            JobUsageRow.started_at >= since,
            JobUsageRow.started_at < until,
            JobUsageRow.wait_seconds.is_not(None),
        )
    ).all()
    buckets: list[dict[str, Any]] = []
    start = _bucket_start(since, bucket)
    while start < until and len(buckets) < 2000:
        end = _next_bucket(start, bucket)
        length = (end - start).total_seconds()
        busy = dict.fromkeys(CLASSES, 0.0)
        for cls, s, f in spans:
            overlap = (min(f, end) - max(s, start)).total_seconds()
            if overlap > 0:
                busy[cls] = busy.get(cls, 0.0) + overlap
        in_bucket = sorted(float(w) for s, w in waits if w is not None and start <= _aware(s) < end)
        buckets.append(
            {
                "start": start.isoformat(),
                "busy_workers": {c: round(v / length, 4) for c, v in busy.items()},
                "jobs_started": len(in_bucket),
                "wait_mean_s": round(sum(in_bucket) / len(in_bucket), 3) if in_bucket else None,
                "wait_p95_s": round(in_bucket[min(len(in_bucket) - 1, int(0.95 * len(in_bucket)))], 3)
                if in_bucket
                else None,
            }
        )
        start = end
    queued = dict(
        session.execute(
            select(JobRow.resource_class, func.count())
            .where(JobRow.state == "queued")
            .group_by(JobRow.resource_class)
        ).all()
    )
    return {
        "buckets": buckets,
        "queued_now": {c: int(queued.get(c, 0)) for c in CLASSES},
        "running_now": {c: sum(1 for cls, _ in running if cls == c) for c in CLASSES},
    }
