"""Investigating and handling alerts; user-defined rules; notification channels."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from axhub.api.schemas.common import In, Out
from axhub.api.schemas.ops import AlertOut

SeverityName = Literal["info", "warning", "critical"]


class NoteIn(In):
    text: str = Field(min_length=1, max_length=10_000)


class AckIn(In):
    note: str | None = Field(default=None, max_length=10_000, description="Kept as the alert's note")


class NoteOut(Out):
    id: str
    alert_id: str
    author: str | None
    text: str
    created_at: datetime


class SignalExplained(BaseModel):
    signal: str
    display_name: str | None = None
    value: float | None = None
    unit: str = ""
    z: float | None = None
    normal_mean: float | None = None
    normal_std: float | None = None
    state: int | None = Field(default=None, description="Operating state whose normal range applies")
    text: str = Field(description="e.g. '4.40 mm/s, normal 1.80 ± 0.10' (in the request's language)")


class AssetBrief(BaseModel):
    id: str
    slug: str
    name: str
    timezone: str


class AlertDetailOut(BaseModel):
    alert: AlertOut
    asset: AssetBrief | None
    title: str = Field(description="In the request's language")
    severity_ratio: float | None = Field(description="score / threshold")
    signals: list[SignalExplained] = Field(description="Contributing signals, most off first")
    window_start: datetime = Field(description="A chart window around the alert (for the page)")
    window_end: datetime
    notes: list[NoteOut]


class RuleOut(Out):
    id: str
    asset_id: str
    signal: str
    kind: str
    low: float | None
    high: float | None
    max_per_s: float | None
    severity: str
    enabled: bool
    created_by: str | None
    created_at: datetime


class RuleIn(In):
    asset_id: str = Field(max_length=40)
    signal: str = Field(min_length=1, max_length=200)
    kind: Literal["limit", "rate"] = "limit"
    low: float | None = None
    high: float | None = None
    max_per_s: float | None = Field(default=None, gt=0, description="Rate rules: units per second")
    severity: SeverityName = "warning"
    enabled: bool = True

    @model_validator(mode="after")
    def _complete(self) -> RuleIn:
        if self.kind == "limit" and self.low is None and self.high is None:
            raise ValueError("a limit rule needs low, high or both")
        if self.kind == "limit" and self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError("low must be below high")
        if self.kind == "rate" and self.max_per_s is None:
            raise ValueError("a rate rule needs max_per_s")
        return self


class RuleUpdate(In):
    low: float | None = None
    high: float | None = None
    max_per_s: float | None = Field(default=None, gt=0)
    severity: SeverityName | None = None
    enabled: bool | None = None


class ChannelOut(Out):
    id: str
    name: str
    kind: str
    target: str
    min_severity: str
    lang: str
    enabled: bool
    settings: dict[str, Any] = Field(description="SMTP settings (the password is never returned)")
    last_error: str | None
    created_at: datetime


class SmtpSettings(In):
    host: str = Field(max_length=200)
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(default="axhub@localhost", max_length=254)
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=500)
    starttls: bool = False


class ChannelIn(In):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["webhook", "email"]
    target: str = Field(
        min_length=3, max_length=1000, description="Webhook URL, or comma-separated e-mail addresses"
    )
    min_severity: SeverityName = "warning"
    lang: Literal["ko", "en"] = "ko"
    smtp: SmtpSettings | None = Field(default=None, description="Required for e-mail channels")
    headers: dict[str, str] | None = Field(default=None, description="Extra webhook headers")
    enabled: bool = True

    @model_validator(mode="after")
    def _complete(self) -> ChannelIn:
        if self.kind == "email" and self.smtp is None:
            raise ValueError("an e-mail channel needs smtp settings")
        if self.kind == "webhook" and not self.target.startswith(("http://", "https://")):
            raise ValueError("a webhook target must be an http(s) URL")
        return self


class ChannelUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    target: str | None = Field(default=None, min_length=3, max_length=1000)
    min_severity: SeverityName | None = None
    lang: Literal["ko", "en"] | None = None
    smtp: SmtpSettings | None = None
    enabled: bool | None = None


class ChannelTestOut(BaseModel):
    ok: bool
    error: str | None = None
