"""The domain vocabulary shared by every layer (ARCHITECTURE.md, 'Domain').

These are plain value types: the metadata store maps them to tables, the API to schemas.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    """What a user may do inside their organisation (operator: the data-center staff)."""

    ADMIN = "admin"
    ENGINEER = "engineer"
    VIEWER = "viewer"
    OPERATOR = "operator"
    # An engineer who may also approve setpoint changes that reach a machine (process optimisation).
    APPROVER = "approver"


# Who may approve a setpoint write to a machine (a person, in a session: never an API key).
APPROVER_ROLES = frozenset({Role.ADMIN.value, Role.APPROVER.value})


class Quality(IntEnum):
    """Quality of one reading, in the spirit of OPC UA status codes (stored as uint8)."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


class AssetKind(StrEnum):
    LINE = "line"
    CNC = "cnc"
    PUMP = "pump"
    TURBINE = "turbine"
    COMPRESSOR = "compressor"
    CAMERA = "camera"
    OTHER = "other"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ModelStage(StrEnum):
    CANDIDATE = "candidate"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class Organization(_Value):
    id: str
    name: str
    created_at: datetime


class Site(_Value):
    id: str
    org_id: str
    name: str
    timezone: str = "Asia/Seoul"


class Asset(_Value):
    id: str
    org_id: str
    site_id: str
    name: str
    kind: AssetKind = AssetKind.OTHER
    parent_id: str | None = None


class Signal(_Value):
    id: str
    org_id: str
    asset_id: str
    name: str
    unit: str = ""
    dtype: str = "float"
    source_address: str | None = None


class SignalRef(_Value):
    """Where one input column goes: an asset and a signal name (with optional unit)."""

    asset: str
    signal: str
    unit: str = ""


class Alert(_Value):
    id: str
    org_id: str
    asset_id: str
    time: datetime
    severity: Severity
    title: str
    # Top contributing signals and how far off each was, e.g. [{"signal": "vib", "z": 6.1}].
    explanation: list[dict[str, float | str]] = Field(default_factory=list)
    acknowledged_by: str | None = None
