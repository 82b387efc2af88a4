"""What was refused: connector dead letters and file rejects, per source."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from axhub.api.schemas.files import ProblemOut


class DeadLetterOut(BaseModel):
    received_at: datetime
    source: str = Field(description="The connection, e.g. 'mqtt:plant-broker'")
    origin: str = Field(description="Where in it, e.g. the MQTT topic")
    reason: str
    payload: str = Field(description="The payload as text (first 2,000 characters)")
    payload_bytes: int


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    total: int
    limit: int
    offset: int


class FileRejectsOut(BaseModel):
    ingest_run_id: str
    source: str = Field(description="The file as its user named it (upload or CLI)")
    started_at: datetime
    rows_read: int
    points_written: int
    rows_rejected: int
    problems: list[ProblemOut] = Field(description="The first rejected rows/cells")


class SourceSummary(BaseModel):
    source: str
    kind: str = Field(description="connector | file")
    refused: int
    last_at: datetime | None
