"""What a job does, as data: the same spec runs on the local pool and on Ray.

A spec is validated when it is submitted (bad estimator names, missing ids and unknown
fields are refused at the API, not discovered by a worker an hour later).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ResourceClass = Literal["cpu", "gpu"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource_class: ResourceClass = "cpu"
    priority: int = Field(default=0, ge=-10, le=10)


class TrainSpec(_Spec):
    """Fit an estimator on a dataset, evaluate it on a held-out tail, register the version."""

    kind: Literal["train"] = "train"
    estimator: str = Field(description="'<family>/<name>', e.g. 'anomaly/iforest'", max_length=100)
    dataset_id: str = Field(max_length=40)
    params: dict[str, Any] = Field(default_factory=dict)
    model_name: str | None = Field(default=None, max_length=200)
    # The last fraction of rows (time order) is held out for the metrics.
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)


class EvaluateSpec(_Spec):
    """Score a registered model version on a dataset and report its metrics."""

    kind: Literal["evaluate"] = "evaluate"
    model_version_id: str = Field(max_length=40)
    dataset_id: str = Field(max_length=40)


class ExportSpec(_Spec):
    """Extract a model version's ONNX graph into the blob store (for edge devices, other runtimes)."""

    kind: Literal["export"] = "export"
    model_version_id: str = Field(max_length=40)
    format: Literal["onnx", "bundle"] = "onnx"


class BacktestSpec(_Spec):
    """Score a past period of a machine through a model version: the scores, the threshold and
    the alerts that would have fired (beside the events people marked). With ``store_alerts``
    it is a backfill: those alerts are stored."""

    kind: Literal["backtest"] = "backtest"
    model_version_id: str = Field(max_length=40)
    asset_id: str = Field(max_length=40)
    start: datetime
    end: datetime
    store_alerts: bool = False


class FederatedRunSpec(_Spec):
    """A collaboration's federated run in the hub, started by its lead: one process per active
    member, each reading only through its own organisation's scope (``federated.hub``)."""

    kind: Literal["federated_run"] = "federated_run"
    collaboration_id: str = Field(max_length=40)
    rounds: int = Field(default=5, ge=1, le=100)


class ProbeSpec(_Spec):
    """A job that only waits and reports progress: checks workers and measures the queue."""

    kind: Literal["probe"] = "probe"
    seconds: float = Field(default=0.0, ge=0.0, le=600.0)
    steps: int = Field(default=1, ge=1, le=1000)
    fail: bool = False


JobSpec = Annotated[
    TrainSpec | EvaluateSpec | ExportSpec | BacktestSpec | FederatedRunSpec | ProbeSpec,
    Field(discriminator="kind"),
]
AnySpec = TrainSpec | EvaluateSpec | ExportSpec | BacktestSpec | FederatedRunSpec | ProbeSpec


def parse_spec(data: dict[str, Any]) -> AnySpec:
    from pydantic import TypeAdapter

    return TypeAdapter(JobSpec).validate_python(data)
