"""Datasets, uploads, jobs and model versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, computed_field

from axhub.api.schemas.common import In, Out
from axhub.registry.baseline import beats_baseline


class DatasetOut(Out):
    id: str
    name: str
    version: int
    kind: str
    spec: dict[str, Any]
    created_at: datetime


class DatasetCreate(In):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["readings", "records", "images", "table"] = "table"
    spec: dict[str, Any] = Field(
        description="Where the rows come from: {'source': 'upload', 'blob_sha256': ...}, "
        "{'source': 'readings', 'asset', 'signals', 'start', 'end'} or {'source': 'example', 'estimator'}"
    )


class RejectOut(Out):
    file: str
    row: int | None
    field: str | None
    problem: str


class UploadOut(Out):
    kind: Literal["table", "image"]
    filename: str
    bytes: int
    sha256: str
    rows_read: int = 0
    points_written: int = 0
    rows_rejected: int = 0
    rejects: list[RejectOut] = Field(default_factory=list)
    dataset: DatasetOut | None = None
    ingest_run_id: str | None = None


class JobOut(Out):
    id: str
    kind: str
    state: str
    spec: dict[str, Any]
    priority: int
    resource_class: str
    progress: float
    attempts: int
    max_attempts: int
    cancel_requested: bool
    result: dict[str, Any]
    error: str | None
    submitted_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobLogOut(Out):
    id: int
    ts: datetime
    level: str
    message: str


class ModelVersionOut(Out):
    id: str
    name: str
    version: int
    family: str
    estimator: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    dataset_id: str | None
    dataset_version: int | None
    code_version: str
    stage: str
    bundle_sha256: str | None
    created_by: str | None
    created_at: datetime
    shared: bool = Field(default=False, description="True when another organisation shared it with you")

    @computed_field(  # type: ignore[prop-decorator]
        description="False when its evaluation did not beat the trivial baseline (majority class, mean "
        "life, always alarming); null when it was never compared. Deploying a False one needs an override."
    )
    @property
    def beats_baseline(self) -> bool | None:
        return beats_baseline(self.metrics)


class StageIn(In):
    stage: Literal["candidate", "production", "archived"]


class CompareRow(Out):
    id: str
    name: str
    version: int
    estimator: str
    stage: str
    dataset_id: str | None
    values: dict[str, float | None]


class CompareOut(Out):
    metrics: list[str]
    versions: list[CompareRow]


class ShareIn(In):
    share_code: str = Field(
        min_length=1,
        max_length=40,
        description="The other company's share code (its administrators see it under /org); "
        "company slugs are not accepted, so sharing never tells which companies exist",
    )


class ShareOut(Out):
    id: str
    model_version_id: str
    grantee_org_id: str
    created_at: datetime


class EstimatorOut(Out):
    key: str
    family: str
    name: str
    params: list[str]
