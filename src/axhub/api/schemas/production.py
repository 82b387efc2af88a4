"""Production performance: machine configs, shift calendars, counts, stops, OEE and the complex view."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from axhub.api.schemas.common import In, Out

StateName = Literal["running", "idle", "setup", "down", "planned_stop"]


class ProductionConfigIn(In):
    state_source: Literal["tag", "rules", "none"] = "none"
    state_signal: str | None = Field(default=None, max_length=200)
    state_codes: dict[str, StateName] = Field(default_factory=dict, max_length=64)
    state_rules: list[dict[str, Any]] = Field(default_factory=list, max_length=20)
    good_signal: str | None = Field(default=None, max_length=200)
    scrap_signal: str | None = Field(default=None, max_length=200)
    count_mode: Literal["increment", "cumulative"] = "increment"
    ideal_cycle_s: float = Field(default=60.0, gt=0, le=86_400)
    micro_stop_s: float = Field(default=120.0, ge=0, le=3_600)


class ProductionConfigOut(Out):
    asset_id: str
    configured: bool = True
    state_source: str
    state_signal: str | None
    state_codes: dict[str, str]
    state_rules: list[dict[str, Any]]
    good_signal: str | None
    scrap_signal: str | None
    count_mode: str
    ideal_cycle_s: float
    micro_stop_s: float


class ShiftIn(In):
    name: str = Field(min_length=1, max_length=40)
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["06:00"])
    end: str = Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", examples=["14:00"])
    days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], max_length=7)


class ShiftsIn(In):
    shifts: list[ShiftIn] = Field(max_length=12)


class ShiftsOut(Out):
    site_id: str
    timezone: str
    shifts: list[dict[str, Any]]


class PlannedDowntimeIn(In):
    start: datetime
    end: datetime
    reason: str = Field(default="", max_length=200)


class PlannedDowntimeOut(Out):
    id: str
    site_id: str
    start: datetime
    end: datetime
    reason: str


class CountIn(In):
    ts: datetime
    good: float = Field(default=0, ge=0, le=1e9)
    scrap: float = Field(default=0, ge=0, le=1e9)
    product: str = Field(default="", max_length=200)
    ideal_cycle_s: float | None = Field(default=None, gt=0, le=86_400)


class CountsIn(In):
    counts: list[CountIn] = Field(min_length=1, max_length=10_000)


class CountsStored(Out):
    stored: int


class StopOut(Out):
    start: datetime
    end: datetime
    state: str
    duration_s: float
    reason: str | None


class ReasonIn(In):
    start: datetime
    end: datetime
    reason: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)


class ReasonOut(Out):
    id: str
    asset_id: str
    start: datetime
    end: datetime
    reason: str
    note: str
    entered_by: str | None
    created_at: datetime


class OeeFiguresOut(Out):
    planned_operation_s: float
    planned_down_s: float
    planned_busy_s: float
    production_s: float
    down_s: float
    setup_s: float
    idle_s: float
    unknown_s: float
    produced: float
    good: float
    scrap: float
    ideal_time_s: float
    micro_stops: int
    micro_stop_s: float
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None


class OeeRowOut(OeeFiguresOut):
    key: str


class LossOut(Out):
    cause: str
    kind: str
    seconds: float
    share: float


class OeeOut(Out):
    level: str
    start: datetime
    end: datetime
    by: str
    machines: list[str]
    total: OeeFiguresOut
    by_period: list[OeeRowOut]
    by_machine: list[OeeRowOut]
    losses: list[LossOut]


class ConsentIn(In):
    named: bool = False
    complex_name: str = Field(default="", max_length=200)


class ConsentOut(Out):
    consented: bool
    named: bool = False
    complex_name: str = ""
    given_at: datetime | None = None
    given_by: str | None = None
