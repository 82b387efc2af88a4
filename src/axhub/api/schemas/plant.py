"""Sites, assets, signals and readings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from axhub.api.schemas.common import In, Out
from axhub.core.reading_rules import MAX_NAME_CHARS, signal_name_problem

AssetKindName = Literal["line", "cnc", "pump", "turbine", "compressor", "camera", "other"]


def _signal_name(value: str) -> str:
    problem = signal_name_problem(value)
    if problem is not None:
        raise ValueError(problem.en)
    return value


SignalName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS), AfterValidator(_signal_name)]
Slug = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SiteOut(Out):
    id: str
    name: str
    timezone: str
    created_at: datetime
    name_ko: str = ""
    name_en: str = ""


class SiteCreate(In):
    name: str = Field(min_length=1, max_length=200)
    # Default: the company's zone (Asia/Seoul for a Korean company).
    timezone: str | None = Field(default=None, max_length=64)
    name_ko: str = Field(default="", max_length=200)
    name_en: str = Field(default="", max_length=200)


class SiteUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    name_ko: str | None = Field(default=None, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)


class AssetOut(Out):
    id: str
    site_id: str
    parent_id: str | None
    name: str
    slug: str
    kind: str
    description: str
    created_at: datetime
    name_ko: str = ""
    name_en: str = ""


class AssetCreate(In):
    site_id: str = Field(max_length=40)
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Slug
    kind: AssetKindName = "other"
    parent_id: str | None = Field(default=None, max_length=40)
    description: str = Field(default="", max_length=4000)
    name_ko: str = Field(default="", max_length=200)
    name_en: str = Field(default="", max_length=200)


class AssetUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: AssetKindName | None = None
    parent_id: str | None = Field(default=None, max_length=40)
    description: str | None = Field(default=None, max_length=4000)
    name_ko: str | None = Field(default=None, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)


class SignalOut(Out):
    id: str
    asset_id: str
    name: str
    unit: str
    dtype: str
    source_address: str | None
    description: str
    low_limit: float | None
    high_limit: float | None
    name_ko: str = ""
    name_en: str = ""


class SignalCreate(In):
    asset_id: str = Field(max_length=40)
    # The one naming rule of every path (core.reading_rules): Korean and other letters welcome.
    name: SignalName
    unit: str = Field(default="", max_length=40)
    dtype: Literal["float", "int", "bool"] = "float"
    source_address: str | None = Field(default=None, max_length=500)
    description: str = Field(default="", max_length=4000)
    low_limit: float | None = None
    high_limit: float | None = None
    name_ko: str = Field(default="", max_length=200)
    name_en: str = Field(default="", max_length=200)


class SignalUpdate(In):
    unit: str | None = Field(default=None, max_length=40)
    source_address: str | None = Field(default=None, max_length=500)
    description: str | None = Field(default=None, max_length=4000)
    low_limit: float | None = None
    high_limit: float | None = None
    name_ko: str | None = Field(default=None, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)


class SeriesOut(Out):
    signal: str
    unit: str = ""
    times: list[datetime]
    # An integer beyond +-2^53 (which float64 rounds) comes back as that JSON integer.
    values: list[int | float | None]


class ReadingsOut(Out):
    asset_id: str
    start: datetime
    end: datetime
    interval: str | None
    agg: str
    series: list[SeriesOut]


class ReadingIn(In):
    time: datetime
    signal: str = Field(min_length=1, max_length=200)
    # int first: a JSON integer stays a Python int (a plain float field would round
    # 9007199254740993), is checked against int64 and stored exactly (``core.readings``).
    value: int | float
    quality: int = Field(default=0, ge=0, le=2)


class ReadingsIn(In):
    readings: list[ReadingIn] = Field(min_length=1, max_length=100_000)


class WriteOut(Out):
    written: int
    details: dict[str, Any] = Field(default_factory=dict)
