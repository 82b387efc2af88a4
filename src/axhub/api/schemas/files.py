"""Shapes of the file wizard: preview (settings, columns, first rows, whole-file counts), ingest,
and the mapping saved per machine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from axhub.api.schemas.common import In, Out
from axhub.ingest.file_mapping import FileMapping


class ProblemOut(BaseModel):
    """One problem, in the request's language, with where it is."""

    file: str
    row: int | None = None
    field: str | None = None
    problem: str
    code: str | None = Field(default=None, description="Stable code, e.g. 'not_a_number', 'bad_time'")


class RefusedOut(BaseModel):
    """Why the whole file cannot be used (nothing would be stored)."""

    message: str
    hint: str = ""
    problems: list[ProblemOut]


class ColumnOut(BaseModel):
    name: str = Field(description="The column's header in the file")
    role: str = Field(description="time | signal | ignore (long files: signal_name | value | asset ...)")
    signal: str | None = Field(default=None, description="The signal id it is stored as")
    unit: str | None = None
    display_name: str | None = None
    numeric_share: float = Field(description="Share of filled cells in the first rows that are numbers")
    sample: list[str] = Field(default_factory=list)


class RowOut(BaseModel):
    line: int = Field(description="Row number in the file (header = 1)")
    time: str | None = Field(description="Parsed time, ISO 8601 in the file's time zone; null = unreadable")
    raw_time: str | None
    values: dict[str, float | None]


class CountsOut(BaseModel):
    """Over the WHOLE file (a dry run of the real engine)."""

    rows_read: int = 0
    rows_rejected: int = 0
    values_rejected: int = 0
    empty_cells: int = 0
    points: int = 0
    points_by_signal: dict[str, int] = Field(default_factory=dict)
    first_time: datetime | None = None
    last_time: datetime | None = None


class FilePreviewOut(BaseModel):
    sha256: str = Field(description="The upload's id: preview again or ingest with it")
    filename: str
    bytes: int
    asset_id: str | None = None
    asset: str | None = Field(default=None, description="The machine's slug")
    settings: dict[str, Any] = Field(
        description="How the file is read: kind, encoding, delimiter, decimal, thousands, sheet, "
        "time_column, time_format, timezone, layout (detected or given; all editable via mapping)"
    )
    mapping: dict[str, Any] = Field(description="The complete mapping to edit and send back (FileMapping)")
    mapping_source: str = Field(description="given | saved (the machine's last mapping) | detected")
    columns: list[ColumnOut]
    rows: list[RowOut]
    counts: CountsOut
    problems: list[ProblemOut] = Field(description="First rejected cells/rows, in the request's language")
    refused: RefusedOut | None = Field(default=None, description="Set when the whole file would be refused")


class PreviewIn(In):
    asset: str | None = Field(default=None, max_length=100, description="Machine id or slug")
    mapping: FileMapping | None = Field(
        default=None, description="Settings and columns (default: saved or detected)"
    )
    rows: int = Field(default=20, ge=1, le=200)


class FileIngestIn(In):
    asset: str = Field(max_length=100, description="Machine id or slug")
    mapping: FileMapping | None = None
    save_mapping: bool = Field(default=True, description="Offer this mapping for the machine's next file")
    score: bool = Field(
        default=True, description="Score the file's period with the machine's deployed models"
    )


class FileIngestOut(BaseModel):
    sha256: str
    filename: str
    asset_id: str
    asset: str
    settings: dict[str, Any]
    mapping: dict[str, Any]
    mapping_source: str
    rows_read: int
    points_written: int
    duplicates: int
    rows_rejected: int
    values_rejected: int
    empty_cells: int
    first_time: datetime | None
    last_time: datetime | None
    signals: list[str]
    new_signals: int
    problems: list[ProblemOut]
    alerts: list[str] = Field(description="Ids of the alerts the deployed models raised on this file")
    ingest_run_id: str | None


class SavedMappingOut(Out):
    asset_id: str
    mapping: dict[str, Any] | None
    updated_by: str | None = None
    updated_at: datetime | None = None


class SavedMappingIn(In):
    mapping: FileMapping
