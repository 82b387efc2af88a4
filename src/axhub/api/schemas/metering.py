"""Data-center metering: compute quotas, hours used, utilisation and queue wait."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from axhub.api.schemas.common import In, Out


class ComputeQuotaIn(In):
    """Hours per Asia/Seoul calendar month; null means no limit."""

    cpu_hours_per_month: float | None = Field(default=None, ge=0, le=1e7)
    gpu_hours_per_month: float | None = Field(default=None, ge=0, le=1e7)


class OrgMonthOut(Out):
    org_id: str
    slug: str
    month: str = Field(description="billing month, Asia/Seoul, e.g. '2026-12'")
    cpu_hours: float
    gpu_hours: float
    cpu_quota: float | None
    gpu_quota: float | None
    jobs: int


class UsagePoint(Out):
    period: str = Field(description="start of the period (Asia/Seoul, ISO 8601)")
    org_id: str
    slug: str
    resource_class: str
    hours: float
    attempts: int


class UtilisationBucket(BaseModel):
    start: datetime
    busy_workers: dict[str, float] = Field(description="mean jobs running over the period, per class")
    jobs_started: int
    wait_mean_s: float | None
    wait_p95_s: float | None


class UtilisationOut(BaseModel):
    buckets: list[UtilisationBucket]
    queued_now: dict[str, int]
    running_now: dict[str, int]
