"""Answers of the time-series deletion routes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SeriesDeleted(BaseModel):
    id: str = Field(description="The machine or signal whose readings were deleted")
    rows: int = Field(description="Readings deleted (those still in the write-ahead log included)")
