"""Learning from a machine's own data: datasets from a time window, training on a normal
period, backtests, one-call deployment, and events people mark on the timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from axhub.api.schemas.common import In, Out
from axhub.api.schemas.ops import DeploymentOut
from axhub.api.schemas.work import DatasetOut, JobOut

Interval = Field(
    default="10s",
    max_length=20,
    pattern=r"^\d+(ms|s|min|h)$",
    description="Readings are averaged into buckets of this length (live scoring does the same)",
)


class WindowDatasetIn(In):
    name: str | None = Field(default=None, max_length=200, description="Default: '<machine>-<start date>'")
    start: datetime
    end: datetime
    signals: list[str] | None = Field(
        default=None, max_length=500, description="Default: every stored signal"
    )
    interval: str | None = Interval


class TrainIn(In):
    """Train an anomaly model on a period the user says was normal."""

    start: datetime
    end: datetime
    signals: list[str] | None = Field(
        default=None, max_length=500, description="Default: every stored signal"
    )
    interval: str | None = Interval
    estimator: str = Field(default="anomaly/mspc", max_length=100, description="'<family>/<name>'")
    params: dict[str, Any] | None = Field(default=None, description="Default: the recommended settings")
    model_name: str | None = Field(default=None, max_length=200, description="Default: '<machine>-anomaly'")


class TrainOut(BaseModel):
    job: JobOut
    dataset: DatasetOut


class BacktestIn(In):
    model_version_id: str = Field(max_length=40)
    start: datetime | None = Field(default=None, description="Default: the machine's first reading")
    end: datetime | None = Field(default=None, description="Default: the machine's last reading")
    store_alerts: bool = Field(default=False, description="Backfill: store the alerts that would have fired")


class DeployIn(In):
    asset_id: str = Field(max_length=40)
    promote: bool = Field(default=True, description="Also move the version to the 'production' stage")
    allow_below_baseline: bool = Field(
        default=False, description="Deploy even if its evaluation did not beat the trivial baseline"
    )


class DeployOut(BaseModel):
    deployment: DeploymentOut
    replaced: list[str] = Field(description="Ids of the deployments on that machine it replaced")


class EventOut(Out):
    id: str
    asset_id: str
    start: datetime
    end: datetime | None
    kind: str
    title: str
    note: str
    created_by: str | None
    created_at: datetime


EventKind = Literal["maintenance", "fault", "repair", "inspection", "note", "other"]


class EventIn(In):
    start: datetime
    end: datetime | None = None
    kind: EventKind = "maintenance"
    title: str = Field(min_length=1, max_length=500)
    note: str = Field(default="", max_length=10_000)


class EventUpdate(In):
    start: datetime | None = None
    end: datetime | None = None
    kind: EventKind | None = None
    title: str | None = Field(default=None, min_length=1, max_length=500)
    note: str | None = Field(default=None, max_length=10_000)
