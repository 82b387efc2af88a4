"""Request bodies of the process-optimisation routes (responses are the service's JSON)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CellIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    limits: dict[str, Any] = Field(description="bounds, max_step, forbidden, trust_radius")
    target: dict[str, Any] = Field(description="protocol opcua|modbus and the setpoint addresses")
    context_names: list[str] = Field(default_factory=list, max_length=20)
    asset_id: str | None = Field(default=None, description="the machine whose signals give features")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_key: str = Field(min_length=1, max_length=200)
    settings: dict[str, float]
    n_parts: int = Field(ge=1, le=10_000_000)
    n_passed: int = Field(ge=0)
    lot: str = Field(default="", max_length=200)
    context: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    defects: dict[str, int] = Field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None


class BatchesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batches: list[BatchIn] = Field(min_length=1, max_length=10_000)


class ProposeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lot: str = Field(default="", max_length=200)
    context: dict[str, float] = Field(default_factory=dict)
    yield_weight: float = 1.0
    metric_weights: dict[str, float] = Field(default_factory=dict)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000)


class Stored(BaseModel):
    added: int
