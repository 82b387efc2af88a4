"""Compute metering for the data center: quotas (operator), hours per company over time,
utilisation and queue wait (operator), and a company's own month (any member)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from axhub.api.deps import DbSession, Operator, Reader
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.schemas.metering import ComputeQuotaIn, OrgMonthOut, UsagePoint, UtilisationOut
from axhub.core.errors import InputProblem, InputValidationError, NotFoundError
from axhub.core.timeutil import as_utc, utcnow
from axhub.store import accounts_repo, metering

router = APIRouter(tags=["metering"], responses=ERROR_RESPONSES)
MAX_SPAN = timedelta(days=400)


def _window(since: datetime | None, until: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    end = as_utc(until) if until else utcnow()
    start = as_utc(since) if since else end - default
    if start >= end or end - start > MAX_SPAN:
        raise InputValidationError(
            InputProblem("query", None, "since", "must be before 'until' and at most 400 days before it"),
            hint="give since < until, e.g. since=2026-12-01T00:00:00+09:00",
        )
    return start, end


@router.get("/org/compute-usage", operation_id="get_org_compute_usage", response_model=OrgMonthOut)
def own_usage(principal: Reader, session: DbSession) -> OrgMonthOut:
    """Your organisation's compute hours this month against its quota."""
    (month,) = metering.org_summary(session, [principal.org_id])
    return OrgMonthOut.model_validate(month)


@router.put(
    "/platform/orgs/{org_id}/compute-quota", operation_id="set_org_compute_quota", response_model=OrgMonthOut
)
def set_quota(org_id: str, body: ComputeQuotaIn, _: Operator, session: DbSession) -> OrgMonthOut:
    """Set a company's monthly CPU- and GPU-hours (operator only; null = unlimited)."""
    if accounts_repo.org_by_id(session, org_id) is None:
        raise NotFoundError(f"organisation '{org_id}' not found")
    metering.set_quota(
        session, org_id, cpu_hours=body.cpu_hours_per_month, gpu_hours=body.gpu_hours_per_month
    )
    (month,) = metering.org_summary(session, [org_id])
    return OrgMonthOut.model_validate(month)


@router.get(
    "/platform/metering/orgs", operation_id="list_org_compute_usage", response_model=list[OrgMonthOut]
)
def month_by_org(_: Operator, session: DbSession) -> list[OrgMonthOut]:
    """Every company's compute hours this month against its quota (operator only)."""
    return [OrgMonthOut.model_validate(m) for m in metering.org_summary(session)]


@router.get(
    "/platform/metering/usage", operation_id="get_compute_usage_series", response_model=list[UsagePoint]
)
def usage_series(
    _: Operator,
    session: DbSession,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: Annotated[Literal["hour", "day", "month"], Query()] = "day",
) -> list[UsagePoint]:
    """Hours per company, class and period over time (operator only; default the last 30 days)."""
    start, end = _window(since, until, timedelta(days=30))
    return [
        UsagePoint.model_validate(p)
        for p in metering.usage_series(session, since=start, until=end, bucket=bucket)
    ]


@router.get(
    "/platform/metering/utilisation", operation_id="get_compute_utilisation", response_model=UtilisationOut
)
def utilisation(
    _: Operator,
    session: DbSession,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: Annotated[Literal["hour", "day"], Query()] = "hour",
) -> UtilisationOut:
    """Busy workers and queue wait per period, and the queue now (operator only; default 24 h)."""
    start, end = _window(since, until, timedelta(hours=24))
    if bucket == "hour" and end - start > timedelta(days=31):
        raise InputValidationError(
            InputProblem("query", None, "bucket", "hourly buckets cover at most 31 days"),
            hint="use bucket=day for longer spans",
        )
    return UtilisationOut.model_validate(metering.utilisation(session, since=start, until=end, bucket=bucket))
