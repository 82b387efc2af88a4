"""Deployments and alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from axhub.api.schemas.common import In, Out


class DeploymentOut(Out):
    id: str
    model_version_id: str
    asset_id: str | None
    target: str
    edge_device_id: str | None
    active: bool
    created_at: datetime


class DeploymentCreate(In):
    model_version_id: str = Field(max_length=40)
    asset_id: str | None = Field(default=None, max_length=40)
    target: Literal["hub", "edge"] = "hub"
    edge_device_id: str | None = Field(default=None, max_length=40)
    allow_below_baseline: bool = Field(
        default=False,
        description="deploy even if the version does not beat its trivial baseline (explicit override)",
    )


class DeploymentUpdate(In):
    active: bool


class AlertOut(Out):
    id: str
    asset_id: str
    ts: datetime
    severity: str
    kind: str
    source: str
    title: str
    score: float | None
    threshold: float | None
    explanation: list[Any]
    count: int
    last_seen_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    created_at: datetime
    resolved_by: str | None = None
    resolved_at: datetime | None = None
